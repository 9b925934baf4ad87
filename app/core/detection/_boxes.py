"""Boxes of the detection engine: validation, conversion to COCO ``xywh``, pairwise IoU.

Boxes arrive as ``xyxy`` (``x1, y1, x2, y2``), ``xywh`` (corner, width, height; COCO's own) or
``cxcywh`` (centre, width, height) and are kept as float64 ``xywh``, the form COCO evaluates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput

BoxFormat: TypeAlias = Literal["xyxy", "xywh", "cxcywh"]
BOX_FORMATS: Final[tuple[BoxFormat, ...]] = ("xyxy", "xywh", "cxcywh")

Float64Array: TypeAlias = NDArray[np.float64]
#: Maps a flat row number to the field path a client sent it under (``images[3].boxes[1]``).
Where: TypeAlias = Callable[[int], str]


def check_box_format(box_format: object) -> BoxFormat:
    """``box_format`` if it is one of :data:`BOX_FORMATS`, else :class:`InvalidInput`."""
    if not isinstance(box_format, str) or box_format not in BOX_FORMATS:
        raise InvalidInput(
            f"is {box_format!r}: must be one of {', '.join(BOX_FORMATS)}", field="box_format"
        )
    return box_format


def numbers(values: Sequence[Any], where: Where, what: str) -> NDArray[np.float64]:
    """A list of JSON numbers as float64; the first non-number or non-finite one is named.

    >>> numbers([1, 2.5], lambda i: f"scores[{i}]", "scores").tolist()
    [1.0, 2.5]
    """
    arr = np.asarray(values) if len(values) else np.zeros(0)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        bad_at = next((i for i, v in enumerate(values) if not _is_number(v)), None)
        if bad_at is not None:
            raise InvalidInput(
                f"is {values[bad_at]!r}: {what} must be numbers", field=where(bad_at)
            )
        arr = np.asarray(values, dtype=np.float64)  # integers too large for int64
    out = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"is {values[i]!r}: {what} must be finite", field=where(i))
    return out


def as_xywh(values: Sequence[Any], where: Where, box_format: BoxFormat) -> Float64Array:
    """Validate boxes in ``box_format``; return them as float64 COCO ``xywh``, shape ``(n, 4)``.

    ``xyxy → xywh``: ``(x1, y1, x2 - x1, y2 - y1)``; ``cxcywh → xywh``:
    ``(cx - w/2, cy - h/2, w, h)``. Zero-area boxes are valid (they overlap nothing).

    Raises
    ------
    InvalidInput
        For the first box that is not 4 numbers, has a non-finite coordinate, or a negative
        width or height (``x2 < x1`` / ``y2 < y1`` in ``xyxy``, ``w < 0`` / ``h < 0`` else);
        ``field`` is the box's path, e.g. ``images[2].predictions.boxes[7]``.

    >>> as_xywh([[1, 2, 4, 8]], lambda i: f"boxes[{i}]", "xyxy").tolist()
    [[1.0, 2.0, 3.0, 6.0]]
    >>> as_xywh([[2, 2, 2, 4]], lambda i: f"boxes[{i}]", "cxcywh").tolist()
    [[1.0, 0.0, 2.0, 4.0]]
    """
    if not len(values):
        return np.zeros((0, 4))
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged
        arr = np.zeros(0, dtype=object)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.kind not in "iuf":
        bad_at = next((i for i, b in enumerate(values) if not _is_box(b)), None)
        if bad_at is not None:
            raise InvalidInput(
                f"is {values[bad_at]!r}: a box must be 4 numbers ({box_format})",
                field=where(bad_at),
            )
        arr = np.asarray(values, dtype=np.float64)  # integers too large for int64
    b = arr.astype(np.float64, copy=False)
    finite = np.isfinite(b).all(axis=1)
    if not finite.all():
        i = int(np.argmax(~finite))
        raise InvalidInput(f"is {values[i]!r}: box coordinates must be finite", field=where(i))
    if box_format == "xyxy":
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        what = ("x2 < x1", "y2 < y1")
    else:
        w, h = b[:, 2], b[:, 3]
        what = ("negative width", "negative height")
    bad = (w < 0) | (h < 0)
    if bad.any():
        i = int(np.argmax(bad))
        problem = what[0] if w[i] < 0 else what[1]
        raise InvalidInput(
            f"is {values[i]!r}: {problem}, not a valid {box_format} box (widths and heights "
            "must be >= 0)",
            field=where(i),
        )
    if box_format == "xywh":
        return b
    if box_format == "xyxy":
        return np.stack([b[:, 0], b[:, 1], w, h], axis=1)
    return np.stack([b[:, 0] - 0.5 * w, b[:, 1] - 0.5 * h, w, h], axis=1)


def pair_iou(a: Float64Array, b: Float64Array) -> Float64Array:
    """IoU of ``a[i]`` and ``b[i]`` (``xywh``), COCO's bbox formula, 0 where the union is 0.

    ``IoU = |a ∩ b| / (w_a h_a + w_b h_b - |a ∩ b|)``.

    >>> pair_iou(np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 1, 2, 2]])).tolist()  # 1 / 7
    [0.14285714285714285]
    """
    inter = _intersection(a, b)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def pair_coverage(a: Float64Array, region: Float64Array) -> Float64Array:
    """The share of box ``a[i]`` inside ``region[i]``: ``|a ∩ r| / |a|`` (COCO's crowd IoU)."""
    inter = _intersection(a, region)
    area = a[:, 2] * a[:, 3]
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)


def _intersection(a: Float64Array, b: Float64Array) -> Float64Array:
    w = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return np.maximum(w, 0.0) * np.maximum(h, 0.0)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_box(b: object) -> bool:
    return isinstance(b, list | tuple) and len(b) == 4 and all(_is_number(v) for v in b)
