"""COCO bbox evaluation of a :class:`DetectionSet` with ``faster-coco-eval`` as the engine.

``faster-coco-eval`` reimplements pycocotools' ``COCOeval`` in C++ with identical numbers (tested
here to 1e-9 against pycocotools). The COCO objects are built in memory from the set's columns —
no files, nothing printed — and the summary metrics are read off the accumulated arrays with
pycocotools' own rule.

**The COCO protocol.** For every IoU threshold ``t ∈ {0.50, 0.55, …, 0.95}``, category ``k``,
area range ``a`` and detection cap ``m``: each image's detections of ``k`` are sorted by score
(stable) and cut to the ``m`` best; each is matched greedily to the unmatched ground truth of the
same image and category with the highest IoU ``≥ t``. Crowd regions (``iscrowd``) use
``IoU = |d ∩ g| / |d|``, may absorb any number of detections, and neither count as ground truth
nor make those detections false positives; ground truth outside the area range is ignored the
same way, and unmatched detections outside it are dropped. Over all images, detections sorted by
score give precision ``P(i)`` and recall ``R(i) = TP(i) / N_gt``; the precision envelope
``P̂(r) = max_{R(i) ≥ r} P(i)`` (0 past the last recall reached) is sampled at the 101 recall
points ``r ∈ {0, 0.01, …, 1}``:

    AP[t, k, a, m] = (1/101) Σ_r P̂(r),        AR[t, k, a, m] = TP / N_gt  (the final recall).

The headline numbers average these over ``t`` and over the categories that have ground truth in
the range (a category with none is ``-1`` in COCO's arrays, and skipped):
``map = mean AP[:, :, all, M]`` (``M`` the largest cap), ``map_50``/``map_75`` at ``t = .5/.75``,
``map_small`` etc. per area range (``small < 32² ≤ medium < 96² ≤ large``, in pixels² of the
annotation's ``area``), ``mar_<m> = mean AR[:, :, all, m]``, ``mar_small`` etc. at ``M``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count, pairwise
from typing import Any, Final

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster
from numpy.typing import NDArray

from app.core.detection._gc import gc_paused
from app.core.detection._inputs import DetectionSet
from app.errors import InvalidInput

DEFAULT_MAX_DETS: Final[tuple[int, ...]] = (1, 10, 100)
AREA_RANGES: Final[tuple[str, ...]] = ("all", "small", "medium", "large")
#: The most detections per image and category any cap may ask for.
MAX_DETS_LIMIT: Final = 10_000


@dataclass(frozen=True, eq=False)
class CocoArrays:
    """COCO's accumulated arrays (``-1`` where a category has no ground truth in the range).

    Attributes
    ----------
    precision, scores : ndarray of shape (T, R, K, A, M)
        Interpolated precision, and the detection score reached, at each recall point.
    recall : ndarray of shape (T, K, A, M)
        Final recall.
    iou_thresholds : ndarray of shape (T,)
    recall_points : ndarray of shape (R,)
    max_dets : tuple of int, length M
    """

    precision: NDArray[np.float64]
    recall: NDArray[np.float64]
    scores: NDArray[np.float64]
    iou_thresholds: NDArray[np.float64]
    recall_points: NDArray[np.float64]
    max_dets: tuple[int, ...]

    def iou_index(self, t: float) -> int:
        """Index of IoU threshold ``t`` (compared exactly, as pycocotools does)."""
        return int(np.flatnonzero(self.iou_thresholds == t)[0])


def check_max_dets(max_dets: Sequence[int]) -> tuple[int, ...]:
    """``max_dets`` as a tuple: positive, strictly increasing integers (e.g. ``(1, 10, 100)``)."""
    values = list(max_dets)
    if not values or any(
        isinstance(m, bool) or not isinstance(m, int | np.integer) for m in values
    ):
        raise InvalidInput(f"is {values!r}: must be a non-empty list of integers", field="max_dets")
    if values[0] < 1 or values[-1] > MAX_DETS_LIMIT or any(b <= a for a, b in pairwise(values)):
        raise InvalidInput(
            f"is {values!r}: caps must be strictly increasing, between 1 and {MAX_DETS_LIMIT}",
            field="max_dets",
        )
    return tuple(int(m) for m in values)


def to_coco(ds: DetectionSet) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The set as a COCO ground-truth dataset and a COCO results list.

    Images and categories keep the client's ids when these are positive integers in engine
    order (COCO's own files), else they get ``1 .. n`` in engine order; annotations and
    detections are numbered ``1 .. n`` in posted order. Detections carry ``area = w * h`` and
    ``iscrowd = 0``, as pycocotools' ``loadRes`` gives them; posted COCO results
    (``ds.results``) are completed in place rather than copied. Usable as they are by
    pycocotools.

    >>> from app.core.detection._inputs import from_coco
    >>> ds = from_coco({"images": [{"id": 5}], "categories": [{"id": 2}], "annotations": []},
    ...                [{"image_id": 5, "category_id": 2, "bbox": [0, 0, 2, 3], "score": 0.5}])
    >>> to_coco(ds)[1]
    [{'image_id': 5, 'category_id': 2, 'bbox': [0, 0, 2, 3], 'score': 0.5, 'id': 1, \
'area': 6.0, 'iscrowd': 0}]
    """
    image_ids, own_images = _engine_ids(ds.image_ids)
    cat_ids, own_cats = _engine_ids(ds.category_ids)
    images = [{"id": i} for i in image_ids.tolist()]
    categories = [
        {"id": k, "name": name} for k, name in zip(cat_ids.tolist(), ds.category_names, strict=True)
    ]
    annotations = [
        {"id": n, "image_id": i, "category_id": c, "bbox": b, "area": a, "iscrowd": z}
        for n, i, c, b, a, z in zip(
            count(1),
            image_ids[ds.gt_image].tolist(),
            cat_ids[ds.gt_category].tolist(),
            ds.gt_boxes.tolist(),
            ds.gt_area.tolist(),
            ds.gt_crowd.astype(np.int64).tolist(),
        )
    ]
    pb = ds.pred_boxes
    areas = (pb[:, 2] * pb[:, 3]).tolist()
    if ds.results is not None and own_images and own_cats:
        results = ds.results
        for n, (det, area) in enumerate(zip(results, areas, strict=True), start=1):
            det["id"] = n
            det["area"] = area
            det["iscrowd"] = 0
    else:
        results = [
            {"id": n, "image_id": i, "category_id": c, "bbox": b, "score": s, "area": a,
             "iscrowd": 0}
            for n, i, c, b, s, a in zip(
                count(1),
                image_ids[ds.pred_image].tolist(),
                cat_ids[ds.pred_category].tolist(),
                pb.tolist(),
                ds.pred_scores.tolist(),
                areas,
            )
        ]  # fmt: skip
    dataset = {"images": images, "annotations": annotations, "categories": categories}
    return dataset, results


def _engine_ids(ids: list[Any]) -> tuple[NDArray[np.int64], bool]:
    """COCO ids for the engine (it sorts by id, so they must increase in engine order), and
    whether they are the client's own."""
    own = all(isinstance(v, int) and v >= 1 for v in ids) and all(b > a for a, b in pairwise(ids))
    return (np.asarray(ids, dtype=np.int64) if own else np.arange(1, len(ids) + 1)), own


def evaluate_coco(ds: DetectionSet, max_dets: Sequence[int] = DEFAULT_MAX_DETS) -> CocoArrays:
    """Run COCO bbox evaluation (faster-coco-eval) and return the accumulated arrays.

    >>> from app.core.detection._inputs import from_images
    >>> ds = from_images([{"ground_truth": {"boxes": [[0, 0, 10, 10]], "labels": [1]},
    ...     "predictions": {"boxes": [[0, 0, 10, 9], [20, 20, 30, 30]], "labels": [1, 1],
    ...     "scores": [0.6, 0.9]}}])
    >>> arrays = evaluate_coco(ds)
    >>> float(arrays.recall[0, 0, 0, -1])  # IoU 0.9 >= 0.5: found
    1.0
    >>> round(float(arrays.precision[0, :, 0, 0, -1].mean()), 4)  # 1/2 precision at recall 1
    0.5
    """
    caps = check_max_dets(max_dets)
    with gc_paused():
        dataset, results = to_coco(ds)
        gt = COCO(dataset)
        dt = COCO()
        dt.dataset = {"images": dataset["images"], "categories": dataset["categories"]}
        dt.dataset["annotations"] = results
        dt.createIndex()
        engine = COCOeval_faster(gt, dt, "bbox", print_function=_quiet)
        engine.params.maxDets = list(caps)
        engine.evaluate()
        engine.accumulate()
        out = engine.eval
    return CocoArrays(
        precision=np.asarray(out["precision"], dtype=np.float64),
        recall=np.asarray(out["recall"], dtype=np.float64),
        scores=np.asarray(out["scores"], dtype=np.float64),
        iou_thresholds=np.asarray(engine.params.iouThrs, dtype=np.float64),
        recall_points=np.asarray(engine.params.recThrs, dtype=np.float64),
        max_dets=caps,
    )


def summary(arrays: CocoArrays) -> dict[str, float | None]:
    """The COCO headline metrics; ``None`` where COCO reports ``-1`` (no ground truth).

    Keys: ``map, map_50, map_75, map_small, map_medium, map_large``, ``mar_<m>`` for each cap,
    ``mar_small, mar_medium, mar_large`` (the names torchmetrics uses).
    """
    p, r = arrays.precision, arrays.recall
    out: dict[str, float | None] = {
        "map": _mean_defined(p[:, :, :, 0, -1]),
        "map_50": _mean_defined(p[arrays.iou_index(0.5), :, :, 0, -1]),
        "map_75": _mean_defined(p[arrays.iou_index(0.75), :, :, 0, -1]),
    }
    for a, name in enumerate(AREA_RANGES[1:], start=1):
        out[f"map_{name}"] = _mean_defined(p[:, :, :, a, -1])
    for m, cap in enumerate(arrays.max_dets):
        out[f"mar_{cap}"] = _mean_defined(r[:, :, 0, m])
    for a, name in enumerate(AREA_RANGES[1:], start=1):
        out[f"mar_{name}"] = _mean_defined(r[:, :, a, -1])
    return out


def per_class(arrays: CocoArrays, k: int) -> dict[str, float | None]:
    """Category ``k``'s ``ap`` (IoU .50:.95), ``ap_50``, ``ap_75`` and ``ar`` (largest cap)."""
    p = arrays.precision[:, :, k, 0, -1]
    return {
        "ap": _mean_defined(p),
        "ap_50": _mean_defined(p[arrays.iou_index(0.5)]),
        "ap_75": _mean_defined(p[arrays.iou_index(0.75)]),
        "ar": _mean_defined(arrays.recall[:, k, 0, -1]),
    }


def _mean_defined(s: NDArray[np.float64]) -> float | None:
    """pycocotools' ``np.mean(s[s > -1])``, ``None`` where it would report ``-1``."""
    kept = s[s > -1]
    return float(np.mean(kept)) if kept.size else None


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """The engine's print function: the service never writes to stdout."""
