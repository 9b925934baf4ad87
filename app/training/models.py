"""What a run optimizes: the MLP, its data loss and its parameter penalty, built from a spec.

The loss functions are PyTorch's own (``F.binary_cross_entropy_with_logits``, ``F.cross_entropy``,
``F.mse_loss``, ``F.huber_loss``) with the spec's parameters bound, plus the binary focal loss in
torchvision's formulation, which matches :func:`app.core.losses.focal` on logits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.training.cnn import CNN, n_pixels
from app.training.spec import CNNSpec, LossSpec, TrainingSpec

#: ``loss(outputs, targets) -> scalar``: outputs of shape (n, n_outputs), targets of shape (n,)
#: (float for binary and regression, int64 class indices for multiclass). Mean over the batch.
LossFn = Callable[[Tensor, Tensor], Tensor]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class MLP(nn.Sequential):
    """Linear → activation → dropout blocks, then a Linear output layer.

    Layers are named ``hidden0``, ``hidden1``, ..., ``output`` (so state-dict keys read
    ``hidden0.weight``), and the per-layer diagnostics of the fit loop use the same names.

    Parameters
    ----------
    n_features : int
    hidden : tuple of int
        Hidden widths; empty for a linear model.
    n_outputs : int
    activation : {"relu", "gelu", "tanh", "silu"}
    dropout : float
        After each hidden activation; no Dropout module at all when 0.

    Examples
    --------
    >>> MLP(3, (4,), 1, "relu", 0.0)
    MLP(
      (hidden0): Linear(in_features=3, out_features=4, bias=True)
      (act0): ReLU()
      (output): Linear(in_features=4, out_features=1, bias=True)
    )
    """

    def __init__(
        self,
        n_features: int,
        hidden: tuple[int, ...],
        n_outputs: int,
        activation: str,
        dropout: float,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = n_features
        for i, h in enumerate(hidden):
            layers[f"hidden{i}"] = nn.Linear(width, h)
            layers[f"act{i}"] = _ACTIVATIONS[activation]()
            if dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(dropout)
            width = h
        layers["output"] = nn.Linear(width, n_outputs)
        super().__init__(layers)

    def linear_layers(self) -> list[tuple[str, nn.Linear]]:
        """The Linear layers with their names, input side first."""
        return [(name, m) for name, m in self.named_children() if isinstance(m, nn.Linear)]


def build_model(spec: TrainingSpec, n_features: int, n_outputs: int | None = None) -> MLP:
    """The spec's MLP with PyTorch's default initialization (seed the RNG first to reproduce it).

    ``n_outputs`` defaults to ``spec.n_outputs`` (1 for binary and regression, ``n_classes``
    for multiclass); pass it for a multiclass spec whose ``n_classes`` was inferred.
    A ``cnn`` spec builds a :class:`~app.training.cnn.CNN` (typed as the MLP it stands in for:
    same layer names, same ``linear_layers``), whose ``n_features`` is C·H·W of its input shape.
    """
    n_out = spec.n_outputs if n_outputs is None else n_outputs
    if n_out is None:
        raise ValueError("a multiclass spec without n_classes needs n_outputs")
    m = spec.model
    if isinstance(m, CNNSpec):
        if m.input_shape is None or n_pixels(m.input_shape) != n_features:
            raise ValueError(f"the cnn's input shape {m.input_shape} does not hold {n_features}")
        return CNN(m, n_out)  # type: ignore[return-value]
    return MLP(n_features, m.hidden, n_out, m.activation, m.dropout)


def focal_loss_with_logits(
    logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: float | None = 0.25
) -> Tensor:
    """Mean binary focal loss on logits (Lin et al., 2017; ``torchvision.ops.sigmoid_focal_loss``).

    ``α_t (1 - p_t)^γ BCE(y, σ(x))`` with ``p_t = σ(x) y + (1 - σ(x))(1 - y)`` and
    ``α_t = α y + (1 - α)(1 - y)``; no ``α_t`` factor when ``alpha`` is None.
    """
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    one_minus_pt = p * (1 - targets) + (1 - p) * targets
    loss = ce * one_minus_pt.pow(gamma)
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.mean()


def build_loss(loss: LossSpec, device: torch.device | str = "cpu") -> LossFn:
    """The mean data loss named by ``loss`` with its parameters bound.

    Weight tensors (``pos_weight``, ``class_weights``) are created once on ``device`` so the
    batch loop does no host-to-device copies.

    Examples
    --------
    >>> fn = build_loss(LossSpec(name="mse"))
    >>> float(fn(torch.tensor([[1.0], [3.0]]), torch.tensor([1.0, 1.0])))
    2.0
    """
    name = loss.name
    if name == "bce_with_logits":
        pw = None if loss.pos_weight is None else torch.tensor(loss.pos_weight, device=device)
        return lambda out, y: F.binary_cross_entropy_with_logits(out[:, 0], y, pos_weight=pw)
    if name == "focal":
        gamma, alpha = loss.gamma, loss.alpha
        return lambda out, y: focal_loss_with_logits(out[:, 0], y, gamma=gamma, alpha=alpha)
    if name == "cross_entropy":
        cw = None
        if loss.class_weights is not None:
            cw = torch.tensor(loss.class_weights, dtype=torch.float32, device=device)
        ls = loss.label_smoothing
        return lambda out, y: F.cross_entropy(out, y, weight=cw, label_smoothing=ls)
    if name == "mse":
        return lambda out, y: F.mse_loss(out[:, 0], y)
    if name == "huber":
        delta = loss.delta
        return lambda out, y: F.huber_loss(out[:, 0], y, delta=delta)
    raise ValueError(f"unknown loss {name!r}")  # the spec's validation makes this unreachable


def weight_penalty(weights: list[Tensor], *, l1: float, l2: float) -> Tensor | None:
    """``l1 Σ|w| + l2 Σ w²`` over the given weight matrices, differentiable; None when both are 0.

    The same definition as :func:`app.core.losses.penalty` (no 1/2 factor).
    """
    terms: list[Tensor] = []
    if l1:
        terms += [l1 * w.abs().sum() for w in weights]
    if l2:
        terms += [l2 * w.square().sum() for w in weights]
    if not terms:
        return None
    return torch.stack(terms).sum()
