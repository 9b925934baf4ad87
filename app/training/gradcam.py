"""Grad-CAM (Selvaraju et al., 2017) for the :class:`~app.training.cnn.CNN` of image runs.

For a conv block with activation ``A`` (channels ``k``, shape h×w) and the score ``y`` of the
class explained, the map is ``ReLU(Σ_k α_k A_k)`` with ``α_k = mean_{ij} ∂y/∂A_k[i, j]``,
upsampled bilinearly to the image's H×W and divided by its maximum (so it lies in [0, 1]; an
all-zero map means the layer holds no evidence *for* the class).

:func:`gradcam` does a whole batch in one pass: the activations are computed without autograd,
only the part of the network above the chosen block is differentiated, and one backward pass of
the summed scores gives every image's gradient at once (images do not interact in eval mode).
:func:`gradcam_per_image` is the textbook loop (forward and backward hooks, one image at a time)
kept as a reference for tests and the benchmark.

Scores: multiclass, the logit of the class; binary, the logit for class 1 and its negation for
class 0; regression, the predicted value. The class explained defaults to the predicted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from app.errors import InvalidInput
from app.training.cnn import CNN

#: Images per forward/backward pass of :func:`gradcam`.
GRADCAM_BATCH: Final = 512


@dataclass(frozen=True, slots=True)
class GradCAMResult:
    """Grad-CAM maps of a batch of images.

    Attributes
    ----------
    layer : str
        The conv block explained (``conv0``, ``conv1``, ...).
    maps : ndarray of shape (n, H, W), float32
        Upsampled to the input size, in [0, 1] (each divided by its maximum).
    raw : ndarray of shape (n, h, w), float32
        ``ReLU(Σ_k α_k A_k)`` at the block's resolution, unnormalized.
    targets : ndarray of shape (n,), int64
        The class explained (0 for regression).
    outputs : ndarray of shape (n, n_outputs), float32
        The model's outputs (logits, or values).
    peaks : ndarray of shape (n, 2), int64
        (row, column) of each map's maximum (the first in row-major order).
    """

    layer: str
    maps: NDArray[np.float32]
    raw: NDArray[np.float32]
    targets: NDArray[np.int64]
    outputs: NDArray[np.float32]
    peaks: NDArray[np.int64]


def _images(model: CNN, X: ArrayLike | Tensor) -> Tensor:
    t = X if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X, dtype=np.float32))
    device = next(model.parameters()).device
    return model.as_images(t.to(device=device, dtype=torch.float32))


def resolve_targets(
    task: str, outputs: Tensor, target: int | ArrayLike | None, *, field: str = "target"
) -> Tensor:
    """The class explained per image: the given one(s), else the predicted one.

    Raises
    ------
    InvalidInput
        A class out of range, a target for a regression run, or one target per image whose
        count is not the number of images.
    """
    n, n_out = outputs.shape
    if task == "regression":
        if target is not None:
            raise InvalidInput("does not apply to a regression run", field=field)
        return torch.zeros(n, dtype=torch.int64, device=outputs.device)
    if target is None:
        if task == "binary":
            return (outputs[:, 0] >= 0).to(torch.int64)
        return outputs.argmax(dim=1)
    k = 2 if task == "binary" else n_out
    t = np.asarray(target)
    if t.ndim == 0:
        t = np.full(n, t)
    if t.ndim != 1 or t.shape[0] != n:
        raise InvalidInput(f"has {t.size} classes for {n} images", field=field)
    if t.dtype.kind not in "iu" or (t < 0).any() or (t >= k).any():
        raise InvalidInput(
            f"is {t.tolist()[:10]}: classes must be integers in [0, {k})", field=field
        )
    return torch.as_tensor(t.astype(np.int64), device=outputs.device)


def class_scores(task: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """The differentiated score per image (see the module docstring)."""
    if task == "multiclass":
        return outputs.gather(1, targets[:, None])[:, 0]
    if task == "binary":
        return torch.where(targets == 1, outputs[:, 0], -outputs[:, 0])
    return outputs[:, 0]


def _finish(cam: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Upsampled, max-normalized maps and their peaks."""
    up = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    top = up.flatten(1).amax(dim=1).clamp_min(torch.finfo(up.dtype).tiny)
    maps = up / top[:, None, None]
    flat = maps.flatten(1).argmax(dim=1)
    peaks = torch.stack([flat // size[1], flat % size[1]], dim=1)
    return maps, peaks


def gradcam(
    model: CNN,
    X: ArrayLike | Tensor,
    *,
    task: str,
    layer: str | None = None,
    target: int | ArrayLike | None = None,
    batch_size: int = GRADCAM_BATCH,
) -> GradCAMResult:
    """Grad-CAM maps of images, batched.

    Parameters
    ----------
    model : CNN
        Used on its own device, in eval mode (restored afterwards).
    X : array-like of shape (n, C, H, W) or (n, C·H·W)
    task : {"binary", "multiclass", "regression"}
    layer : str, optional
        The conv block (``conv0``, ...); default the last.
    target : int or array-like of shape (n,), optional
        The class to explain, for all images or per image; default the predicted class.
    batch_size : int
        Images per pass.

    Returns
    -------
    GradCAMResult

    Raises
    ------
    InvalidInput
        An unknown layer (field ``layer``) or a bad target (field ``target``).

    Examples
    --------
    >>> from app.training.spec import CNNSpec
    >>> _ = torch.manual_seed(0)
    >>> net = CNN(CNNSpec(blocks=[{"channels": 4}], head=(), input_shape=(1, 8, 8)), 3)
    >>> res = gradcam(net, np.random.default_rng(0).normal(size=(2, 1, 8, 8)), task="multiclass")
    >>> res.maps.shape, res.layer, float(res.maps.max()) <= 1.0
    ((2, 8, 8), 'conv0', True)
    """
    try:
        block = model.block_index(layer)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="layer") from None
    images = _images(model, X)
    n, size = images.shape[0], (images.shape[2], images.shape[3])
    all_targets = None
    if target is not None and np.ndim(target) == 1:
        all_targets = np.asarray(target)
        if all_targets.shape[0] != n:
            raise InvalidInput(f"has {all_targets.shape[0]} classes for {n} images", field="target")
    parts: dict[str, list[Tensor]] = {k: [] for k in ("maps", "raw", "targets", "out", "peaks")}
    was_training = model.training
    model.eval()
    try:
        for lo in range(0, n, batch_size):
            x = images[lo : lo + batch_size]
            with torch.no_grad():
                a = model.activations(x, block)
            a.requires_grad_(True)
            with torch.enable_grad():
                out = model.forward_from(a, block)
                tgt = target if all_targets is None else all_targets[lo : lo + x.shape[0]]
                targets = resolve_targets(task, out.detach(), tgt)
                (grad,) = torch.autograd.grad(class_scores(task, out, targets).sum(), a)
            with torch.no_grad():
                alpha = grad.mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((alpha * a).sum(dim=1))
                maps, peaks = _finish(cam, size)
            for key, value in zip(parts, (maps, cam, targets, out.detach(), peaks), strict=True):
                parts[key].append(value.cpu())
    finally:
        model.train(was_training)
    return _result(model.conv_layers()[block], parts)


def _result(layer: str, parts: dict[str, list[Tensor]]) -> GradCAMResult:
    """Concatenate the per-chunk (or per-image) pieces into one result of numpy arrays."""
    cat = {k: torch.cat(v) for k, v in parts.items()}
    return GradCAMResult(
        layer=layer,
        maps=cat["maps"].numpy().astype(np.float32),
        raw=cat["raw"].numpy().astype(np.float32),
        targets=cat["targets"].numpy().astype(np.int64),
        outputs=cat["out"].numpy().astype(np.float32),
        peaks=cat["peaks"].numpy().astype(np.int64),
    )


def gradcam_per_image(
    model: CNN,
    X: ArrayLike | Tensor,
    *,
    task: str,
    layer: str | None = None,
    target: int | None = None,
) -> GradCAMResult:
    """The reference implementation: one image at a time, hooks on the block's activation
    module, a full forward and backward pass each (what most Grad-CAM code does).

    Same results as :func:`gradcam` (to float32 rounding); much slower on many images.
    """
    block = model.block_index(layer)
    module = model.get_submodule(f"conv_act{block}")
    images = _images(model, X)
    size = (images.shape[2], images.shape[3])
    store: dict[str, Tensor] = {}

    def keep(_m: Any, _inputs: Any, output: Tensor) -> None:
        store["a"] = output
        output.register_hook(lambda g: store.__setitem__("g", g))

    handle = module.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    rows: dict[str, list[Tensor]] = {k: [] for k in ("maps", "raw", "targets", "out", "peaks")}
    try:
        for i in range(images.shape[0]):
            model.zero_grad(set_to_none=True)
            x = images[i : i + 1]
            out = model(x)
            targets = resolve_targets(task, out.detach(), target)
            class_scores(task, out, targets).sum().backward()
            a, g = store["a"].detach(), store["g"]
            cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1))
            maps, peaks = _finish(cam, size)
            for key, value in zip(rows, (maps, cam, targets, out.detach(), peaks), strict=True):
                rows[key].append(value.cpu())
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return _result(model.conv_layers()[block], rows)


def pointing_game(peaks: NDArray[np.int64], boxes: NDArray[np.int64], side: int) -> NDArray[Any]:
    """Whether each peak (row, col) falls inside its square box (top-left row, col; ``side``).

    >>> pointing_game(np.array([[5, 5], [0, 9]]), np.array([[4, 4], [0, 0]]), 4).tolist()
    [True, False]
    """
    inside = (peaks >= boxes) & (peaks < boxes + side)
    return np.asarray(inside.all(axis=1))
