"""Semantic segmentation metrics from the confusion matrix over pixels.

Masks: ``y_true`` of shape (N, H, W) holds class ids in ``[0, C)`` (or ``ignore_index``);
``y_pred`` holds class ids of the same shape, or class scores of shape (N, C, H, W) (probabilities
or logits: the predicted class is the argmax over axis 1, the first maximum on ties). Pixels whose
true id is ``ignore_index`` are left out of every count.

The confusion matrix ``M`` (rows: true class, columns: predicted class) equals
``sklearn.metrics.confusion_matrix(t, p, labels=range(C))`` over the flattened non-ignored
pixels. It is counted with one ``np.bincount`` of ``C·t + p`` per block of at most 256 Ki
pixels, the blocks' counts summed in int64: exact for any batch (a 4k × 4k mask has 1.6e7
pixels, past float32's 2^24; int64 holds 9.2e18). With
``TP_c = M_cc``, ``T_c = Σ_j M_cj`` (true pixels of class c, its support) and
``P_c = Σ_i M_ic`` (predicted pixels)::

    IoU_c  = TP_c / (T_c + P_c - TP_c)        Dice_c = 2 TP_c / (T_c + P_c)
    precision_c = TP_c / P_c                  recall_c = TP_c / T_c
    pixel_accuracy = Σ_c TP_c / Σ_c T_c
    mean_accuracy = mean of recall_c over the classes with T_c > 0
    mean_iou  = mean of IoU_c  over the classes present in y_true ∪ y_pred (T_c + P_c > 0)
    mean_dice = mean of Dice_c over the same classes
    frequency_weighted_iou = Σ_c (T_c / Σ_j T_j) IoU_c

**Undefined values.** A class with no pixel in ``y_true`` or ``y_pred`` (after ignoring) has no
IoU or Dice (0/0): it is NaN here, ``null`` in a report, with a warning, and the means skip it,
as scikit-learn's ``jaccard_score`` / ``f1_score`` with ``zero_division=np.nan`` and mmseg's
nan-mean. A class predicted somewhere but absent from ``y_true`` has IoU 0 and counts in the
means. When every pixel is ignored, every metric is undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core._masks import DEFAULT_CHUNK_PIXELS, Masks, check_masks, iter_blocks
from app.errors import InvalidInput

Float64Array = NDArray[np.float64]
Int64Array = NDArray[np.int64]

#: Class ids listed by name in a warning before "and k more".
_LISTED = 20


def pixel_confusion(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
) -> Int64Array:
    """The ``C × C`` confusion matrix over pixels, int64 (rows: true class, columns: predicted).

    Parameters
    ----------
    y_true : array-like of shape (N, H, W)
        Class ids in ``[0, num_classes)``, or ``ignore_index``. Integer dtypes of any width, bool,
        or floats holding whole numbers.
    y_pred : array-like of shape (N, H, W) or (N, C, H, W)
        Class ids, or class scores (probabilities or logits; argmax over axis 1).
    num_classes : int
        ``C``, the size of the matrix.
    ignore_index : int, optional
        True id of the pixels to leave out (often 255 or -1); may also be a class id in
        ``[0, C)``, which then drops that class's true pixels.
    chunk_pixels : int, default 256 Ki
        Pixels counted per ``np.bincount`` call (bounds the temporaries; does not change counts).

    Returns
    -------
    ndarray of int64, shape (num_classes, num_classes)
        ``M[i, j]``: pixels of true class i predicted as j. ``M.sum()`` is the number of
        non-ignored pixels.

    Raises
    ------
    InvalidInput
        Masks of different shapes, wrong ``ndim``, ids outside ``[0, C)`` that are not
        ``ignore_index``, non-whole ids, non-finite scores (naming ``field[i][h][w]``).

    Examples
    --------
    >>> pixel_confusion([[[0, 1], [1, 255]]], [[[0, 1], [0, 1]]], 2, ignore_index=255)
    array([[1, 0],
           [1, 1]])
    """
    masks = check_masks(y_true, y_pred, num_classes, ignore_index)
    return _confusion(masks, chunk_pixels)


def _confusion(masks: Masks, chunk_pixels: int) -> Int64Array:
    c = masks.num_classes
    cells = c * c
    # C·t + p < C² fits uint16 up to C = 255 (a quarter of int64's memory traffic); the cast
    # comes before the product, so uint8 masks cannot wrap around.
    dtype = np.uint16 if cells < np.iinfo(np.uint16).max else np.int64
    counts = np.zeros(cells, dtype=np.int64)
    for block in iter_blocks(masks, chunk_pixels):
        flat = block.true.astype(dtype)
        # Unsafe casts only touch ignored pixels, whose cells are overwritten just below.
        np.multiply(flat, c, out=flat, casting="unsafe")
        np.add(flat, block.pred, out=flat, casting="unsafe")
        if block.ignored is not None:
            np.copyto(flat, cells, where=block.ignored)  # a spill bin, dropped below
        counts += np.bincount(flat.ravel(), minlength=cells + 1)[:cells]
    return counts.reshape(c, c)


def _ratio(num: NDArray[Any], den: NDArray[Any]) -> Float64Array:
    """``num / den`` in float64, NaN where ``den == 0``."""
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class and summary metrics of one confusion matrix (NaN: undefined, see module doc).

    Attributes
    ----------
    confusion : ndarray of int64, shape (C, C)
    support, predicted : ndarray of int64, shape (C,)
        ``T_c`` and ``P_c``: true and predicted pixels per class.
    iou, dice, precision, recall : ndarray of float64, shape (C,)
    pixel_accuracy, mean_accuracy, mean_iou, mean_dice, frequency_weighted_iou : float
    """

    confusion: Int64Array
    support: Int64Array
    predicted: Int64Array
    iou: Float64Array
    dice: Float64Array
    precision: Float64Array
    recall: Float64Array
    pixel_accuracy: float
    mean_accuracy: float
    mean_iou: float
    mean_dice: float
    frequency_weighted_iou: float

    @property
    def n_pixels(self) -> int:
        """Pixels counted (not ignored)."""
        return int(self.support.sum())

    def metrics(self) -> dict[str, float]:
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_accuracy": self.mean_accuracy,
            "mean_iou": self.mean_iou,
            "mean_dice": self.mean_dice,
            "frequency_weighted_iou": self.frequency_weighted_iou,
        }


def _mean(values: Float64Array, where: NDArray[np.bool_]) -> float:
    return float(np.mean(values[where])) if where.any() else float("nan")


def segmentation_scores(confusion: ArrayLike) -> SegmentationScores:
    """Every metric of the module docstring from a ``C × C`` pixel confusion matrix.

    Sums stay in int64; only the final ratios are float64, so counts past 2^53 lose no pixel
    before the division.

    Examples
    --------
    >>> s = segmentation_scores([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    >>> s.iou.round(4).tolist(), s.mean_iou, s.pixel_accuracy
    ([0.75, 0.6667, nan], 0.70833, 0.83333)
    """
    m = np.asarray(confusion)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0 or m.dtype.kind not in "iu":
        raise InvalidInput(
            f"must be a square matrix of integer counts, got shape {m.shape}, dtype {m.dtype}",
            field="confusion",
        )
    m = m.astype(np.int64, copy=False)
    tp = np.diagonal(m).copy()
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    union = support + predicted - tp
    iou = _ratio(tp, union)
    dice = _ratio(2 * tp, support + predicted)
    recall = _ratio(tp, support)
    total = int(support.sum())
    present = union > 0
    seen = support > 0
    accuracy = int(tp.sum()) / total if total else float("nan")
    fw_iou = float(np.sum(support[seen] * iou[seen]) / total) if total else float("nan")
    return SegmentationScores(
        confusion=m,
        support=support,
        predicted=predicted,
        iou=iou,
        dice=dice,
        precision=_ratio(tp, predicted),
        recall=recall,
        pixel_accuracy=accuracy,
        mean_accuracy=_mean(recall, seen),
        mean_iou=_mean(iou, present),
        mean_dice=_mean(dice, present),
        frequency_weighted_iou=fw_iou,
    )


def _none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _classes(ids: NDArray[np.intp], names: list[Any], singular: str, plural: str) -> str:
    """``class 'car' has`` / ``classes 'car', 'bus' have``: the subject of a warning."""
    shown = ", ".join(repr(names[i]) for i in ids[:_LISTED])
    more = f" and {ids.size - _LISTED} more" if ids.size > _LISTED else ""
    if ids.size == 1:
        return f"class {shown} {singular}"
    return f"classes {shown}{more} {plural}"


def _warnings(s: SegmentationScores, names: list[Any]) -> list[dict[str, str]]:
    c = s.support.size
    if s.n_pixels == 0:
        why = "every pixel is ignore_index: there is nothing to evaluate"
        return [{"metric": name, "message": why} for name in s.metrics()]
    out: list[dict[str, str]] = []
    absent = np.flatnonzero(s.support + s.predicted == 0)
    if absent.size:
        out.append(
            {
                "metric": "iou",
                "message": f"{_classes(absent, names, 'has', 'have')} no pixel in y_true or y_pred "
                "(ignored pixels excluded): IoU and Dice are null, and mean_iou / mean_dice "
                f"average the other {c - absent.size} classes",
            }
        )
    unseen = np.flatnonzero((s.support == 0) & (s.predicted > 0))
    if unseen.size:
        out.append(
            {
                "metric": "recall",
                "message": f"{_classes(unseen, names, 'is', 'are')} predicted but absent from "
                "y_true: recall is null (IoU and Dice are 0), and mean_accuracy averages the "
                "classes present in y_true",
            }
        )
    missed = np.flatnonzero((s.predicted == 0) & (s.support > 0))
    if missed.size:
        out.append(
            {
                "metric": "precision",
                "message": f"{_classes(missed, names, 'is', 'are')} never predicted: precision "
                "is null (IoU and Dice are 0)",
            }
        )
    return out


def segmentation_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    class_names: Sequence[Any] | None = None,
    chunk_pixels: int = DEFAULT_CHUNK_PIXELS,
) -> dict[str, Any]:
    """The report of a batch of masks, as plain data (undefined values ``None`` with a warning).

    Holds ``metrics`` (the summary metrics of the module docstring), ``per_class`` (IoU, Dice,
    precision, recall, support and predicted pixels per class), ``confusion_matrix`` (labels and
    int64 counts) and ``segmentation`` (mask geometry and pixel counts). ``n_samples`` is the
    number of posted pixels, ``N·H·W``.

    Parameters
    ----------
    y_true, y_pred, num_classes, ignore_index, chunk_pixels
        As :func:`pixel_confusion`.
    class_names : sequence, optional
        A name per class id, in id order (the report's labels; default: the ids).

    Examples
    --------
    >>> r = segmentation_report([[[0, 1], [1, 1]]], [[[0, 1], [0, 1]]], 3)
    >>> r["metrics"]["mean_iou"], r["per_class"][2]["iou"], r["warnings"][0]["metric"]
    (0.58333, None, 'iou')
    """
    masks = check_masks(y_true, y_pred, num_classes, ignore_index)
    names = list(range(masks.num_classes)) if class_names is None else list(class_names)
    if len(names) != masks.num_classes:
        raise InvalidInput(
            f"has {len(names)} names but num_classes is {masks.num_classes}: one name per class",
            field="labels",
        )
    s = segmentation_scores(_confusion(masks, chunk_pixels))
    height, width = masks.mask_shape
    posted = masks.n_images * height * width
    per_class = [
        {
            "label": names[c],
            "class_id": c,
            "iou": _none(s.iou[c]),
            "dice": _none(s.dice[c]),
            "precision": _none(s.precision[c]),
            "recall": _none(s.recall[c]),
            "support": int(s.support[c]),
            "predicted": int(s.predicted[c]),
        }
        for c in range(masks.num_classes)
    ]
    return {
        "task": "segmentation",
        "n_samples": posted,
        "metrics": {k: _none(v) for k, v in s.metrics().items()},
        "losses": {},
        "segmentation": {
            "num_classes": masks.num_classes,
            "ignore_index": masks.ignore_index,
            "n_images": masks.n_images,
            "mask_shape": [height, width],
            "prediction": "scores" if masks.scores else "class_ids",
            "n_pixels": s.n_pixels,
            "n_ignored": posted - s.n_pixels,
        },
        "confusion_matrix": {
            "labels": names,
            "layout": "rows: true class, columns: predicted class; pixel counts",
            "counts": s.confusion,
        },
        "per_class": per_class,
        "warnings": _warnings(s, names),
    }
