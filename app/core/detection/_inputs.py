"""Posted detection data → a columnar :class:`DetectionSet`, validated once, errors with paths.

Two input forms are read, both as plain JSON data (dicts and lists):

- **per image** (the ``torchmetrics`` ``MeanAveragePrecision`` layout): a list of
  ``{"image_id", "ground_truth": {"boxes", "labels", "iscrowd"?, "area"?},
  "predictions": {"boxes", "labels", "scores"}}``; labels are integers or strings.
- **COCO**: a ground-truth dataset ``{"images", "annotations", "categories"}`` and the results
  list ``[{"image_id", "category_id", "bbox", "score"}]`` exactly as COCO tools write them.

Every check names the offending element by its path (``images[2].predictions.scores[5]``,
``detections[17].image_id``). Columns are read in one pass and checked with numpy, so a
COCO-val-sized set (500k predictions) costs a fraction of the evaluation itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from app.core.detection._boxes import BoxFormat, Float64Array, as_xywh, check_box_format, numbers
from app.errors import InvalidInput

Label: TypeAlias = int | str
IntArray: TypeAlias = NDArray[np.int64]

_IMAGE_KEYS = frozenset({"image_id", "ground_truth", "predictions"})
_GT_KEYS = frozenset({"boxes", "labels", "iscrowd", "area"})
_PRED_KEYS = frozenset({"boxes", "labels", "scores"})


@dataclass(frozen=True, eq=False)
class DetectionSet:
    """Ground truth and predictions of a set of images, one array per column.

    Images and categories are numbered ``0 .. n-1`` in *engine order*: the order COCO sorts them
    in (by id) when ids are integers, else the posted order. ``image_ids`` and
    ``category_ids`` hold the client's ids in that order. Boxes are float64 ``xywh``. Rows keep
    the posted order (COCO breaks score ties and equal-IoU matches by it).
    """

    image_ids: list[Label]
    category_ids: list[Label]
    category_names: list[str]
    gt_image: IntArray
    gt_category: IntArray
    gt_boxes: Float64Array
    gt_area: Float64Array
    gt_crowd: NDArray[np.bool_]
    pred_image: IntArray
    pred_category: IntArray
    pred_boxes: Float64Array
    pred_scores: Float64Array
    #: The posted COCO results (``xywh``), checked to match the columns above. The engine takes
    #: them as its detections, completing each in place with ``id``, ``area`` and ``iscrowd``
    #: as pycocotools' ``loadRes`` does, instead of building 100 dicts an image again.
    results: list[dict[str, Any]] | None = None

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_categories(self) -> int:
        return len(self.category_ids)


# -- the per-image form ---------------------------------------------------------------------


def from_images(
    images: Any,
    *,
    categories: Sequence[Label] | None = None,
    box_format: BoxFormat = "xyxy",
) -> DetectionSet:
    """Read the per-image form.

    Parameters
    ----------
    images : list of dict
        One entry per image, listed even if it has no objects (then ``ground_truth`` may be
        omitted: every prediction on it is a false positive). ``image_id`` (int or str, unique)
        defaults to the entry's position. ``iscrowd`` defaults to 0 and ``area`` (used for the
        small/medium/large ranges) to the box's ``w * h``.
    categories : sequence of int or str, optional
        Every class, in report order; a label outside it is an error. Without it the classes are
        the labels seen in ground truth and predictions, sorted (integers first).
    box_format : {"xyxy", "xywh", "cxcywh"}

    >>> ds = from_images([{"image_id": "a", "ground_truth": {"boxes": [[0, 0, 2, 2]],
    ...     "labels": ["cat"]}, "predictions": {"boxes": [[0, 0, 2, 3]], "labels": ["cat"],
    ...     "scores": [0.9]}}])
    >>> ds.image_ids, ds.category_names, ds.pred_boxes.tolist()
    (['a'], ['cat'], [[0.0, 0.0, 2.0, 3.0]])
    """
    fmt = check_box_format(box_format)
    if not isinstance(images, list) or not images:
        raise InvalidInput("must be a non-empty list of images", field="images")
    ids: list[Any] = []
    gt = _Columns()
    pred = _Columns()
    for i, entry in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(entry, dict):
            raise InvalidInput("must be an object", field=where)
        _no_unknown_keys(entry, _IMAGE_KEYS, where)
        ids.append(entry.get("image_id", i))
        truth = entry.get("ground_truth")
        if truth is not None:
            gt.add_image(i, truth, f"{where}.ground_truth", _GT_KEYS)
        preds = entry.get("predictions")
        if preds is not None:
            pred.add_image(i, preds, f"{where}.predictions", _PRED_KEYS)
    image_order, image_ids = _image_order(ids, lambda i: f"images[{i}].image_id")

    gt_where, pred_where = gt.where("ground_truth"), pred.where("predictions")
    if categories is None:
        seen = _distinct(gt.labels, gt_where("labels")) | _distinct(
            pred.labels, pred_where("labels")
        )
        cats: list[Label] = sorted(seen, key=_label_order)
    else:
        cats = _distinct_labels(list(categories), "categories")
    lookup = {c: k for k, c in enumerate(cats)}
    gt_boxes = as_xywh(gt.boxes, gt_where("boxes"), fmt)
    area = numbers(gt.area, gt_where("area"), "areas")
    _check_nonnegative(area, gt.area, gt_where("area"), "areas")
    no_area = ~np.repeat(
        np.asarray(gt.area_given, dtype=bool), np.asarray(gt.counts, dtype=np.int64)
    )
    area[no_area] = gt_boxes[no_area, 2] * gt_boxes[no_area, 3]
    return DetectionSet(
        image_ids=image_ids,
        category_ids=cats,
        category_names=_names([str(c) for c in cats], cats),
        gt_image=image_order[gt.rows_image()],
        gt_category=_encode(gt.labels, lookup, gt_where("labels"), _unknown_category),
        gt_boxes=gt_boxes,
        gt_area=area,
        gt_crowd=_crowd(gt.iscrowd, gt_where("iscrowd")),
        pred_image=image_order[pred.rows_image()],
        pred_category=_encode(pred.labels, lookup, pred_where("labels"), _unknown_category),
        pred_boxes=as_xywh(pred.boxes, pred_where("boxes"), fmt),
        pred_scores=numbers(pred.scores, pred_where("scores"), "scores"),
    )


class _Columns:
    """The boxes of one side (ground truth or predictions) of every image, concatenated."""

    def __init__(self) -> None:
        self.image_index: list[int] = []
        self.counts: list[int] = []
        self.boxes: list[Any] = []
        self.labels: list[Any] = []
        self.scores: list[Any] = []
        self.iscrowd: list[Any] = []
        self.area: list[Any] = []
        self.area_given: list[bool] = []

    def add_image(self, i: int, part: Any, where: str, keys: frozenset[str]) -> None:
        if not isinstance(part, dict):
            raise InvalidInput("must be an object with boxes and labels", field=where)
        _no_unknown_keys(part, keys, where)
        boxes = _list(part, "boxes", where)
        n = len(boxes)
        self.labels.extend(_sized(part, "labels", n, where))
        if "scores" in keys:
            self.scores.extend(_sized(part, "scores", n, where))
        else:
            self.iscrowd.extend(_sized(part, "iscrowd", n, where, default=0))
            self.area.extend(_sized(part, "area", n, where, default=0.0))
            self.area_given.append(part.get("area") is not None)
        self.boxes.extend(boxes)
        self.image_index.append(i)
        self.counts.append(n)

    def rows_image(self) -> IntArray:
        """The posted image number of every row."""
        return np.repeat(np.asarray(self.image_index, dtype=np.int64), self.counts)

    def where(self, side: str) -> Callable[[str], Callable[[int], str]]:
        """``where(side)(key)(row)``: the path a flat row was posted under."""
        starts = np.cumsum([0, *self.counts])

        def of_key(key: str) -> Callable[[int], str]:
            def path(row: int) -> str:
                j = int(np.searchsorted(starts, row, side="right")) - 1
                return f"images[{self.image_index[j]}].{side}.{key}[{row - int(starts[j])}]"

            return path

        return of_key


# -- the COCO form --------------------------------------------------------------------------


def from_coco(
    ground_truth: Any, detections: Any, *, box_format: BoxFormat = "xywh"
) -> DetectionSet:
    """Read a COCO ground-truth dataset and a COCO results list, as COCO tools write them.

    Parameters
    ----------
    ground_truth : dict
        ``images`` (each with an integer ``id``), ``annotations`` (``image_id``,
        ``category_id``, ``bbox``, optional ``iscrowd`` and ``area``, default ``w * h``) and
        ``categories`` (``id``, optional ``name``). Other keys (``info``, ``segmentation``, ...)
        are ignored.
    detections : list of dict
        ``image_id``, ``category_id``, ``bbox``, ``score``. A detection on an image that is not
        in ``ground_truth.images`` or of an unknown category is an error (pycocotools asserts on
        the first and silently drops the second).
    box_format : {"xywh", "xyxy", "cxcywh"}
        COCO's own is ``xywh``. Then the detection dicts themselves become the engine's input:
        evaluating the set adds ``id``, ``area`` and ``iscrowd`` to each, as pycocotools'
        ``loadRes`` does (pass copies to keep them unchanged).

    >>> ds = from_coco({"images": [{"id": 7}], "categories": [{"id": 3, "name": "dog"}],
    ...     "annotations": [{"image_id": 7, "category_id": 3, "bbox": [0, 0, 4, 4]}]},
    ...     [{"image_id": 7, "category_id": 3, "bbox": [1, 1, 4, 4], "score": 0.5}])
    >>> ds.image_ids, ds.category_names, ds.gt_area.tolist()
    ([7], ['dog'], [16.0])
    """
    fmt = check_box_format(box_format)
    if not isinstance(ground_truth, dict):
        raise InvalidInput(
            "must be a COCO dataset object with images, annotations and categories",
            field="ground_truth",
        )
    images = _list(ground_truth, "images", "ground_truth")
    if not images:
        raise InvalidInput("is empty: the dataset needs at least one image", field="ground_truth")
    cat_items = _list(ground_truth, "categories", "ground_truth")
    anns = _list(ground_truth, "annotations", "ground_truth")
    if not isinstance(detections, list):
        raise InvalidInput("must be a list of COCO results", field="detections")

    raw_ids = _column(images, "id", "ground_truth.images")
    image_order, image_ids = _image_order(
        raw_ids, lambda i: f"ground_truth.images[{i}].id", integers=True
    )
    image_lookup = {v: int(image_order[i]) for i, v in enumerate(raw_ids)}
    cat_ids = _distinct_labels(
        _column(cat_items, "id", "ground_truth.categories"),
        "ground_truth.categories",
        integers=True,
        key="id",
    )
    order = sorted(range(len(cat_ids)), key=cat_ids.__getitem__)
    names = [_name(cat_items[k], cat_ids[k], k) for k in order]
    cats = [cat_ids[k] for k in order]
    cat_lookup = {c: k for k, c in enumerate(cats)}

    def rows(field: str, key: str) -> Callable[[int], str]:
        return lambda i: f"{field}[{i}].{key}"

    g, d = "ground_truth.annotations", "detections"
    gt_boxes = as_xywh(_column(anns, "bbox", g), rows(g, "bbox"), fmt)
    raw_area = _column(anns, "area", g, default=None)
    given = np.fromiter((a is not None for a in raw_area), bool, len(raw_area))
    area = gt_boxes[:, 2] * gt_boxes[:, 3]
    if given.any():
        picked = [a for a in raw_area if a is not None]
        where_given = np.flatnonzero(given)
        values = numbers(picked, lambda j: f"{g}[{int(where_given[j])}].area", "areas")
        _check_nonnegative(values, picked, lambda j: f"{g}[{int(where_given[j])}].area", "areas")
        area[given] = values
    return DetectionSet(
        image_ids=image_ids,
        category_ids=cats,
        category_names=_names(names, cats),
        gt_image=_encode(
            _column(anns, "image_id", g), image_lookup, rows(g, "image_id"), _unknown_image
        ),
        gt_category=_encode(
            _column(anns, "category_id", g), cat_lookup, rows(g, "category_id"), _unknown_category
        ),
        gt_boxes=gt_boxes,
        gt_area=area,
        gt_crowd=_crowd(_column(anns, "iscrowd", g, default=0), rows(g, "iscrowd")),
        pred_image=_encode(
            _column(detections, "image_id", d), image_lookup, rows(d, "image_id"), _unknown_image
        ),
        pred_category=_encode(
            _column(detections, "category_id", d),
            cat_lookup,
            rows(d, "category_id"),
            _unknown_category,
        ),
        pred_boxes=as_xywh(_column(detections, "bbox", d), rows(d, "bbox"), fmt),
        pred_scores=numbers(_column(detections, "score", d), rows(d, "score"), "scores"),
        results=detections if fmt == "xywh" else None,
    )


# -- shared helpers -------------------------------------------------------------------------

_MISSING: Any = object()


def _column(items: list[Any], key: str, field: str, default: Any = _MISSING) -> list[Any]:
    """``[item[key] for item in items]``; a missing key or a non-object is named by index."""
    try:
        if default is _MISSING:
            return [item[key] for item in items]
        return [item.get(key, default) for item in items]
    except (KeyError, TypeError, AttributeError):
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInput("must be an object", field=f"{field}[{i}]") from None
            if key not in item:
                raise InvalidInput(f"is missing {key!r}", field=f"{field}[{i}].{key}") from None
        raise  # pragma: no cover - every failure above is one of the two


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        problem = "is missing" if value is None else f"is {type(value).__name__}"
        raise InvalidInput(f"{problem}: must be a list", field=f"{where}.{key}")
    return value


def _sized(
    part: dict[str, Any], key: str, n: int, where: str, default: Any = _MISSING
) -> list[Any]:
    """``part[key]``, a list of one entry per box (``[default] * n`` if absent and optional)."""
    if default is not _MISSING and part.get(key) is None:
        return [default] * n
    values = _list(part, key, where)
    if len(values) != n:
        raise InvalidInput(
            f"has {len(values)} entries for {n} boxes: one per box", field=f"{where}.{key}"
        )
    return values


def _no_unknown_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = obj.keys() - allowed
    if extra:
        key = sorted(extra)[0]
        raise InvalidInput(
            f"unknown field {key!r}; expected {', '.join(sorted(allowed))}", field=f"{where}.{key}"
        )


def _is_label(v: object, integers: bool = False) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (not integers and isinstance(v, str))


def _image_order(
    ids: list[Any], where: Callable[[int], str], *, integers: bool = False
) -> tuple[IntArray, list[Label]]:
    """Engine position of each posted image (sorted by id if all are integers), and the ids in
    engine order. Ids must be unique integers (or strings, unless ``integers``)."""
    seen: dict[Any, int] = {}
    for i, v in enumerate(ids):
        if not _is_label(v, integers):
            kind = "an integer" if integers else "an integer or a string"
            raise InvalidInput(f"is {v!r}: an image id must be {kind}", field=where(i))
        if v in seen:
            raise InvalidInput(
                f"image id {v!r} is listed twice (first at index {seen[v]})", field=where(i)
            )
        seen[v] = i
    n = len(ids)
    if all(isinstance(v, int) for v in ids):
        perm = np.asarray(sorted(range(n), key=ids.__getitem__), dtype=np.int64)
    else:
        perm = np.arange(n, dtype=np.int64)
    position = np.empty(n, dtype=np.int64)
    position[perm] = np.arange(n)
    return position, [ids[int(p)] for p in perm]


def _label_order(v: Label) -> tuple[bool, Label]:
    return (isinstance(v, str), v)


def _distinct(labels: list[Any], where: Callable[[int], str]) -> set[Label]:
    """The distinct class labels; the first that is not an integer or a string is named."""
    try:
        distinct: set[Any] | None = set(labels)
    except TypeError:  # an unhashable label (a list, an object)
        distinct = None
    if distinct is None or not all(_is_label(v) for v in distinct):
        i = next(i for i, v in enumerate(labels) if not _is_label(v))
        raise InvalidInput(
            f"is {labels[i]!r}: a class label must be an integer or a string", field=where(i)
        )
    return distinct


def _distinct_labels(
    values: list[Any], field: str, *, integers: bool = False, key: str | None = None
) -> list[Label]:
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        at = f"{field}[{i}]" + (f".{key}" if key else "")
        if not _is_label(v, integers):
            kind = "an integer" if integers else "an integer or a string"
            raise InvalidInput(f"is {v!r}: a category id must be {kind}", field=at)
        if v in seen:
            raise InvalidInput(f"category {v!r} is listed twice", field=at)
        seen[v] = i
    if not values:
        raise InvalidInput("is empty: at least one category is needed", field=field)
    return list(values)


def _encode(
    values: list[Any],
    lookup: dict[Any, int],
    where: Callable[[int], str],
    problem: Callable[[Any, list[Any]], str],
) -> IntArray:
    """``[lookup[v] for v in values]`` as int64; the first unknown value is named by its path."""
    try:
        return np.fromiter(map(lookup.__getitem__, values), np.int64, len(values))
    except (KeyError, TypeError):
        i = next(i for i, v in enumerate(values) if not _known(v, lookup))
        raise InvalidInput(problem(values[i], list(lookup)), field=where(i)) from None


def _unknown_category(value: Any, known: list[Any]) -> str:
    return f"{value!r} is not a known category (categories: {_preview(known)})"


def _unknown_image(value: Any, known: list[Any]) -> str:
    return (
        f"image {value!r} has no entry in ground_truth.images: every image that annotations or "
        "predictions refer to must be listed there (an image without objects is listed with "
        "no annotations)"
    )


def _known(v: Any, lookup: dict[Any, int]) -> bool:
    try:
        return v in lookup and not isinstance(v, bool)
    except TypeError:
        return False


def _preview(values: list[Any], n: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:n])
    return shown + (f", ... {len(values)} in all" if len(values) > n else "")


def _crowd(values: list[Any], where: Callable[[int], str]) -> NDArray[np.bool_]:
    arr = np.asarray(values) if values else np.zeros(0, dtype=np.int64)
    ok = arr.ndim == 1 and arr.dtype.kind in "biu"
    bad = ~np.isin(arr, (0, 1)) if ok else np.ones(len(values), dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"is {values[i]!r}: iscrowd must be 0 or 1", field=where(i))
    return arr.astype(bool)


def _check_nonnegative(
    values: Float64Array, raw: list[Any], where: Callable[[int], str], what: str
) -> None:
    bad = values < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"is {raw[i]!r}: {what} must be >= 0", field=where(i))


def _name(item: dict[str, Any], cat_id: Label, k: int) -> str:
    name = item.get("name")
    if name is None:
        return str(cat_id)
    if not isinstance(name, str) or not name:
        raise InvalidInput(
            f"is {name!r}: a category name must be a non-empty string",
            field=f"ground_truth.categories[{k}].name",
        )
    return name


def _names(names: list[str], ids: list[Label]) -> list[str]:
    """Display names, made unique (``"dog (17)"``) where two categories share one."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [n if counts[n] == 1 else f"{n} ({i})" for n, i in zip(names, ids, strict=True)]
