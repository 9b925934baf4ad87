"""The image model of ``model: {type: "cnn"}``: conv blocks, then an MLP head.

The network takes images of shape (n, C, H, W) and also their flattened rows (n, C·H·W): the fit
loop, the validation pass and ``predict`` move 2-D arrays around unchanged, so image runs reuse
them as they are. Layers are named like the MLP's (``conv0`` ... ``hidden0`` ... ``output``), and
:meth:`CNN.linear_layers` lists every layer with a weight, so the loop's penalty, weight decay
and per-layer gradient norms cover the convolutions too.

:meth:`CNN.activations` and :meth:`CNN.forward_from` split the forward pass at a block's
activation, which is what Grad-CAM differentiates against (:mod:`app.training.gradcam`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from app.training.spec import CNNSpec

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class CNN(nn.Module):
    """Conv2d → [BatchNorm2d] → activation → pooling blocks, then flatten (or global average)
    and Linear → activation → dropout layers, then a Linear output layer.

    Parameters
    ----------
    spec : CNNSpec
        With ``input_shape`` set.
    n_outputs : int

    Examples
    --------
    >>> net = CNN(CNNSpec(blocks=[{"channels": 4}], head=(), input_shape=(1, 8, 8)), 3)
    >>> [name for name, _ in net.linear_layers()]
    ['conv0', 'output']
    >>> net(torch.zeros(5, 64)).shape, net(torch.zeros(5, 1, 8, 8)).shape
    (torch.Size([5, 3]), torch.Size([5, 3]))
    """

    def __init__(self, spec: CNNSpec, n_outputs: int) -> None:
        super().__init__()
        if spec.input_shape is None:
            raise ValueError("a cnn needs model.input_shape")
        self.input_shape: tuple[int, int, int] = spec.input_shape
        self.n_blocks = len(spec.blocks)
        self.head_pool = spec.head_pool
        width = self.input_shape[0]
        if spec.input_norm:
            # per-channel standardization by the training data's statistics: batch statistics
            # while training, then the cumulative average of them (momentum=None) in eval mode
            self.input_norm = nn.BatchNorm2d(width, affine=False, momentum=None)
        for i, b in enumerate(spec.blocks):
            self.add_module(f"conv{i}", nn.Conv2d(width, b.channels, b.kernel, padding="same"))
            if spec.batch_norm:
                self.add_module(f"bn{i}", nn.BatchNorm2d(b.channels))
            self.add_module(f"conv_act{i}", _ACTIVATIONS[spec.activation]())
            if b.pool == "max":
                self.add_module(f"pool{i}", nn.MaxPool2d(b.pool_size))
            elif b.pool == "avg":
                self.add_module(f"pool{i}", nn.AvgPool2d(b.pool_size))
            width = b.channels
        c, h, w = spec.feature_shape()
        width = c * h * w if spec.head_pool == "flatten" else c
        self.n_hidden = len(spec.head)
        for j, units in enumerate(spec.head):
            self.add_module(f"hidden{j}", nn.Linear(width, units))
            self.add_module(f"act{j}", _ACTIVATIONS[spec.activation]())
            if spec.dropout > 0:
                self.add_module(f"drop{j}", nn.Dropout(spec.dropout))
            width = units
        self.output = nn.Linear(width, n_outputs)

    # -- the forward pass, in pieces --------------------------------------------------------------
    def as_images(self, x: Tensor) -> Tensor:
        """(n, C·H·W) rows, or (n, H, W) one-channel images, as (n, C, H, W) images (a view);
        (n, C, H, W) images pass through."""
        return x if x.dim() == 4 else x.reshape(x.shape[0], *self.input_shape)

    def _optional(self, name: str) -> nn.Module | None:
        return self._modules.get(name)

    def _block(self, i: int, x: Tensor) -> Tensor:
        x = self._modules[f"conv{i}"](x)  # type: ignore[misc]
        bn = self._optional(f"bn{i}")
        if bn is not None:
            x = bn(x)
        return self._modules[f"conv_act{i}"](x)  # type: ignore[misc]

    def _pool(self, i: int, x: Tensor) -> Tensor:
        pool = self._optional(f"pool{i}")
        return x if pool is None else pool(x)

    def activations(self, x: Tensor, block: int) -> Tensor:
        """The activation of block ``block`` (before its pooling), shape (n, channels, h, w)."""
        x = self.as_images(x)
        norm = self._optional("input_norm")
        if norm is not None:
            x = norm(x)
        for i in range(block):
            x = self._pool(i, self._block(i, x))
        return self._block(block, x)

    def forward_from(self, a: Tensor, block: int) -> Tensor:
        """The outputs, given the activation of block ``block`` (from :meth:`activations`)."""
        x = self._pool(block, a)
        for i in range(block + 1, self.n_blocks):
            x = self._pool(i, self._block(i, x))
        x = x.mean(dim=(2, 3)) if self.head_pool == "avg" else x.flatten(1)
        for j in range(self.n_hidden):
            for prefix in ("hidden", "act", "drop"):
                layer = self._optional(f"{prefix}{j}")
                if layer is not None:
                    x = layer(x)
        return self.output(x)

    def forward(self, x: Tensor) -> Tensor:
        """Outputs (n, n_outputs) of images (n, C, H, W) or flattened rows (n, C·H·W)."""
        return self.forward_from(self.activations(x, self.n_blocks - 1), self.n_blocks - 1)

    # -- what the fit loop and the inspections look at -------------------------------------------
    def linear_layers(self) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
        """Every layer with a weight (convolutions, then the head), input side first."""
        return [
            (name, m) for name, m in self.named_children() if isinstance(m, nn.Conv2d | nn.Linear)
        ]

    def conv_layers(self) -> list[str]:
        """Names of the blocks Grad-CAM can look at: ``conv0``, ``conv1``, ..."""
        return [f"conv{i}" for i in range(self.n_blocks)]

    def block_index(self, layer: str | None) -> int:
        """The block of a layer name (None: the last); ValueError for an unknown name."""
        if layer is None:
            return self.n_blocks - 1
        names = self.conv_layers()
        if layer not in names:
            raise ValueError(f"is {layer!r}: the model's conv layers are {names}")
        return names.index(layer)


def n_pixels(shape: tuple[int, int, int]) -> int:
    """Values in one image of shape (C, H, W).

    >>> n_pixels((3, 4, 5))
    60
    """
    return int(torch.Size(shape).numel())
