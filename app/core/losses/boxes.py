"""Bounding-box regression losses of the IoU family, equal to ``torchvision.ops``.

``y_true`` and ``y_pred`` hold one box per row, shape ``(n_boxes, 4)``; row ``i`` of ``y_pred`` is
compared with row ``i`` of ``y_true`` (the diagonal of a pairwise IoU matrix), so the losses are per
box and reduce over boxes. Boxes are ``xyxy`` (``x1, y1, x2, y2``), ``xywh`` (corner, width,
height) or ``cxcywh`` (centre, width, height), converted to ``xyxy`` with ``torchvision.ops.
box_convert``'s arithmetic before anything else.

With ``I`` the intersection area, ``U`` the union area, ``C`` the smallest box enclosing both,
``ρ²`` the squared distance of the two centres and ``c²`` the squared diagonal of ``C``:

==========  ============================================================================
``iou``     ``1 - I / (U + eps)``                        (``1 - box_iou`` diagonal, eps 0)
``giou``    ``1 - I / (U + eps) + (|C| - U) / (|C| + eps)``  (``generalized_box_iou_loss``)
``diou``    ``1 - I / (U + eps) + ρ² / (c² + eps)``           (``distance_box_iou_loss``)
``ciou``    ``diou + a v``, ``v = 4/π² (atan(w_t/h_t) - atan(w_p/h_p))²``,
            ``a = v / (1 - I / (U + eps) + v + eps)``        (``complete_box_iou_loss``)
==========  ============================================================================

NaN policy: evalserve never returns NaN. torchvision does in two places; we return the finite
value that torchvision's own eps-regularized formulas give for the same pair:

- **IoU of two zero-area boxes** (``U = 0``, ``box_iou`` gives ``0/0``): IoU is 0, loss 1, even
  for two identical points. A zero-area box covers no area, so it overlaps nothing, and
  torchvision's ``giou``/``diou``/``ciou`` also count the IoU of such a pair as
  ``0 / (0 + eps) = 0``. More generally every ratio whose denominator is 0 (possible only with
  ``eps=0``) is taken as 0; its numerator is then 0 too.
- **CIoU with a point box** (``w = h = 0`` for either box, ``atan(0/0)``): the aspect ratio is
  undefined, so the aspect term ``a v`` is 0 and the CIoU loss equals the DIoU loss (finite in
  torchvision). A line box, ``h = 0 < w``, has aspect angle ``atan(+inf) = π/2``, as in
  torchvision, which is finite there.

Zero-area boxes are valid input; boxes with ``x2 < x1`` or ``y2 < y1`` (negative width or height)
and non-finite coordinates are rejected, naming the field and the box. Coordinates so large that
the squared distances overflow float64 are rejected too rather than turned into NaN.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core._checks import check_consistent_length
from app.core.losses._base import (
    Float64Array,
    LossValue,
    Reduction,
    check_real,
    check_reduction,
    reduce_loss,
    sample_weights,
)
from app.errors import InvalidInput

BoxFormat: TypeAlias = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: Final[tuple[BoxFormat, ...]] = ("xyxy", "xywh", "cxcywh")
#: torchvision's default ``eps`` of the GIoU, DIoU and CIoU losses.
BOX_EPS: Final[float] = 1e-7


def check_box_format(box_format: object) -> BoxFormat:
    """Return ``box_format`` if it is one of :data:`BOX_FORMATS`, else raise naming the field."""
    if not isinstance(box_format, str) or box_format not in BOX_FORMATS:
        raise InvalidInput(
            f"is {box_format!r}: must be one of {', '.join(BOX_FORMATS)}", field="box_format"
        )
    return box_format


def as_boxes(values: ArrayLike, field: str, box_format: BoxFormat = "xyxy") -> Float64Array:
    """Validate boxes in ``box_format`` and return them as float64 ``xyxy``, shape ``(n, 4)``.

    Raises
    ------
    InvalidInput
        Not a non-empty ``(n, 4)`` array of numbers; a non-finite coordinate; a negative width or
        height (``x2 < x1`` / ``y2 < y1`` in ``xyxy``, ``w < 0`` / ``h < 0`` otherwise). The
        detail names the first bad box: ``"y_pred[3] has x2 < x1: [2.0, 0.0, 1.0, 1.0] is not a
        valid xyxy box (...)"``.
    """
    try:
        raw = np.asarray(values)
        arr = raw.astype(np.float64, copy=False) if raw.dtype != np.float32 else raw
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"must be an array of numbers ({exc})", field=field) from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InvalidInput(
            f"must be boxes of shape (n_boxes, 4) in {box_format} format, got shape {arr.shape}",
            field=field,
        )
    if arr.shape[0] == 0:
        raise InvalidInput("is empty: the batch needs at least one box", field=field)
    if not np.isfinite(arr).all():  # a flat pass; locate the first bad box only on failure
        i = int(np.argmax(~np.isfinite(arr).all(axis=1)))
        raise InvalidInput(
            f"{field}[{i}] is {arr[i].tolist()!r}: box coordinates must be finite", field=field
        )
    if box_format == "xyxy":
        bad_x, bad_y, what = arr[:, 2] < arr[:, 0], arr[:, 3] < arr[:, 1], ("x2 < x1", "y2 < y1")
    else:
        bad_x, bad_y, what = arr[:, 2] < 0, arr[:, 3] < 0, ("w < 0", "h < 0")
    bad = bad_x | bad_y
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(
            f"{field}[{i}] has {what[0] if bad_x[i] else what[1]}: {arr[i].tolist()!r} is not a "
            f"valid {box_format} box (widths and heights must be >= 0)",
            field=field,
        )
    return _to_xyxy(np.asarray(arr, dtype=np.float64), box_format)


def _to_xyxy(b: Float64Array, box_format: BoxFormat) -> Float64Array:
    """``torchvision.ops.box_convert(b, box_format, "xyxy")``, operation for operation."""
    if box_format == "xyxy":
        return b
    with np.errstate(over="ignore"):  # overflow is caught by the finiteness check of the loss
        if box_format == "xywh":
            x, y, w, h = b.T
            return np.stack([x, y, x + w, y + h], axis=1)
        cx, cy, w, h = b.T
        return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)


def _ratio(num: Float64Array, den: Float64Array) -> Float64Array:
    """``num / den``, and 0 where ``den == 0`` (then ``num == 0`` too: see the NaN policy)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


class _Pairs:
    """Intersection, union, IoU and enclosing box of paired xyxy boxes, as torchvision has them."""

    def __init__(self, pred: Float64Array, true: Float64Array, eps: float) -> None:
        # One transposing copy each: every later operation then streams contiguous columns
        # instead of striding over the rows of an (n, 4) array.
        self.p, self.t = np.ascontiguousarray(pred.T), np.ascontiguousarray(true.T)
        x1, y1, x2, y2 = self.p
        x1g, y1g, x2g, y2g = self.t
        # torchvision's _loss_inter_union zeroes the intersection where the boxes do not overlap;
        # clamping each side at 0 (box_iou's clamp(min=0)) gives the same numbers, in fewer passes.
        w = np.minimum(x2, x2g)
        w -= np.maximum(x1, x1g)
        np.maximum(w, 0.0, out=w)
        h = np.minimum(y2, y2g)
        h -= np.maximum(y1, y1g)
        np.maximum(h, 0.0, out=h)
        self.inter = w * h
        self.union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - self.inter
        self.iou = _ratio(self.inter, self.union + eps)
        self.eps = eps

    @cached_property
    def enclosing(self) -> tuple[Float64Array, Float64Array, Float64Array, Float64Array]:
        """The smallest box enclosing both, ``(x1, y1, x2, y2)``; not needed by the IoU loss."""
        (x1, y1, x2, y2), (x1g, y1g, x2g, y2g) = self.p, self.t
        return np.minimum(x1, x1g), np.minimum(y1, y1g), np.maximum(x2, x2g), np.maximum(y2, y2g)

    def giou_loss(self) -> Float64Array:
        xc1, yc1, xc2, yc2 = self.enclosing
        area_c = (xc2 - xc1) * (yc2 - yc1)
        return 1.0 - (self.iou - _ratio(area_c - self.union, area_c + self.eps))

    def diou_loss(self) -> Float64Array:
        xc1, yc1, xc2, yc2 = self.enclosing
        diagonal_sq = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + self.eps
        x1, y1, x2, y2 = self.p
        x1g, y1g, x2g, y2g = self.t
        centres_sq = (((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2) + (
            ((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2
        )
        return 1.0 - self.iou + _ratio(centres_sq, diagonal_sq)

    def ciou_loss(self) -> Float64Array:
        diou = self.diou_loss()
        x1, y1, x2, y2 = self.p
        x1g, y1g, x2g, y2g = self.t
        w_pred, h_pred, w_gt, h_gt = x2 - x1, y2 - y1, x2g - x1g, y2g - y1g
        v = (4 / (np.pi**2)) * ((_aspect_angle(w_gt, h_gt) - _aspect_angle(w_pred, h_pred)) ** 2)
        # A point box has no aspect ratio (torchvision: atan(0/0) = NaN): no aspect term.
        v[((w_pred == 0) & (h_pred == 0)) | ((w_gt == 0) & (h_gt == 0))] = 0.0
        alpha = _ratio(v, 1.0 - self.iou + v + self.eps)
        return diou + alpha * v


def _aspect_angle(w: Float64Array, h: Float64Array) -> Float64Array:
    """``atan(w / h)``, with ``atan(+inf) = π/2`` where ``h == 0`` (torchvision's value)."""
    return np.arctan(np.divide(w, h, out=np.full_like(w, np.inf), where=h != 0))


def _box_loss(
    kind: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    sample_weight: ArrayLike | None,
    reduction: Reduction,
    box_format: BoxFormat,
    eps: float,
) -> LossValue:
    red = check_reduction(reduction)
    fmt = check_box_format(box_format)
    e = check_real(eps, "eps", low=0.0)
    t = as_boxes(y_true, "y_true", fmt)
    p = as_boxes(y_pred, "y_pred", fmt)
    check_consistent_length(t.shape[0], y_pred=p)
    w = sample_weights(sample_weight, t.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        pairs = _Pairs(p, t, e)
        loss: NDArray[Any] = {
            "iou": lambda: 1.0 - pairs.iou,
            "giou": pairs.giou_loss,
            "diou": pairs.diou_loss,
            "ciou": pairs.ciou_loss,
        }[kind]()
    bad = ~np.isfinite(loss)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(
            f"y_pred[{i}] and y_true[{i}]: the {kind} loss overflows float64; box coordinates "
            "this large (squared distances above 1.8e308) cannot be compared",
            field="y_pred",
        )
    return reduce_loss(loss, w, red)


def iou(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    box_format: BoxFormat = "xyxy",
    eps: float = 0.0,
) -> LossValue:
    """IoU loss ``1 - I / (U + eps)``: ``1 - torchvision.ops.box_iou(y_pred, y_true).diag()``.

    Lies in [0, 1]. ``box_iou`` has no ``eps``, hence the default 0; ``eps=1e-7`` gives the IoU
    term of torchvision's GIoU/DIoU/CIoU losses. Two zero-area boxes have IoU 0 (loss 1), also
    when they are the same point (torchvision: NaN); see the module's NaN policy.

    Parameters
    ----------
    y_true : array-like of shape (n_boxes, 4)
        Target boxes.
    y_pred : array-like of shape (n_boxes, 4)
        Predicted boxes; row ``i`` is compared with ``y_true[i]``.
    sample_weight : array-like of shape (n_boxes,), optional
    reduction : {"mean", "sum", "none"}
        ``"none"`` gives one loss per box.
    box_format : {"xyxy", "xywh", "cxcywh"}, default "xyxy"
    eps : float, default 0.0
        Added to the union, >= 0.

    Examples
    --------
    >>> iou([[0, 0, 2, 2], [0, 0, 1, 1]], [[1, 0, 3, 2], [0, 0, 1, 1]], reduction="none")
    array([0.66667, 0.     ])
    >>> iou([[0, 0, 2, 2]], [[1, 1, 2, 2]], box_format="xywh")  # I = 1, U = 7
    0.85714
    >>> iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])  # two identical points: IoU 0 by policy
    1.0
    """
    return _box_loss("iou", y_true, y_pred, sample_weight, reduction, box_format, eps)


def giou(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    box_format: BoxFormat = "xyxy",
    eps: float = BOX_EPS,
) -> LossValue:
    """Generalized IoU loss (Rezatofighi et al. 2019), ``generalized_box_iou_loss``.

    ``1 - IoU + (|C| - U) / (|C| + eps)`` with ``IoU = I / (U + eps)`` and ``C`` the smallest box
    enclosing both. Lies in [0, 2); disjoint boxes still get a gradient from the ``C`` term.

    Parameters
    ----------
    y_true : array-like of shape (n_boxes, 4)
        Target boxes.
    y_pred : array-like of shape (n_boxes, 4)
        Predicted boxes; row ``i`` is compared with ``y_true[i]``.
    sample_weight : array-like of shape (n_boxes,), optional
    reduction : {"mean", "sum", "none"}
        ``"none"`` gives one loss per box.
    box_format : {"xyxy", "xywh", "cxcywh"}, default "xyxy"
    eps : float, default 1e-7
        Added to the union and to ``|C|``, >= 0 (torchvision's default).

    Examples
    --------
    >>> giou([[5, 5, 6, 6]], [[0, 0, 1, 1]])
    1.94444
    """
    return _box_loss("giou", y_true, y_pred, sample_weight, reduction, box_format, eps)


def diou(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    box_format: BoxFormat = "xyxy",
    eps: float = BOX_EPS,
) -> LossValue:
    """Distance IoU loss (Zheng et al. 2020), ``torchvision.ops.distance_box_iou_loss``.

    ``1 - IoU + ρ² / (c² + eps)``: ``ρ`` the distance between the box centres, ``c`` the diagonal
    of the smallest enclosing box, ``IoU = I / (U + eps)``. Lies in [0, 2).

    Parameters
    ----------
    y_true : array-like of shape (n_boxes, 4)
        Target boxes.
    y_pred : array-like of shape (n_boxes, 4)
        Predicted boxes; row ``i`` is compared with ``y_true[i]``.
    sample_weight : array-like of shape (n_boxes,), optional
    reduction : {"mean", "sum", "none"}
        ``"none"`` gives one loss per box.
    box_format : {"xyxy", "xywh", "cxcywh"}, default "xyxy"
    eps : float, default 1e-7
        Added to the union and to ``c²``, >= 0.

    Examples
    --------
    >>> diou([[0, 0, 10, 10]], [[2, 2, 4, 4]])
    1.0
    """
    return _box_loss("diou", y_true, y_pred, sample_weight, reduction, box_format, eps)


def ciou(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    reduction: Reduction = "mean",
    box_format: BoxFormat = "xyxy",
    eps: float = BOX_EPS,
) -> LossValue:
    """Complete IoU loss (Zheng et al. 2020), ``torchvision.ops.complete_box_iou_loss``.

    ``diou + a v`` with the aspect-ratio term ``v = 4/π² (atan(w_t / h_t) - atan(w_p / h_p))²``
    and its weight ``a = v / (1 - IoU + v + eps)`` (torchvision computes ``a`` without gradient;
    the value is the same). Where either box is a point (``w = h = 0``), torchvision gives NaN;
    here ``v = 0`` and the loss equals :func:`diou`.

    Parameters
    ----------
    y_true : array-like of shape (n_boxes, 4)
        Target boxes.
    y_pred : array-like of shape (n_boxes, 4)
        Predicted boxes; row ``i`` is compared with ``y_true[i]``.
    sample_weight : array-like of shape (n_boxes,), optional
    reduction : {"mean", "sum", "none"}
        ``"none"`` gives one loss per box.
    box_format : {"xyxy", "xywh", "cxcywh"}, default "xyxy"
    eps : float, default 1e-7
        Added to the union, to ``c²`` and to the denominator of ``a``, >= 0.

    Examples
    --------
    >>> ciou([[4, 0, 6, 10]], [[0, 4, 10, 6]])  # same centre, crossed: diou 0.88889
    1.10564
    >>> ciou([[0, 0, 10, 10]], [[3, 3, 3, 3]]) == diou([[0, 0, 10, 10]], [[3, 3, 3, 3]])
    True
    """
    return _box_loss("ciou", y_true, y_pred, sample_weight, reduction, box_format, eps)
