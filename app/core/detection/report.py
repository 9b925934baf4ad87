"""The detection report: COCO metrics, AP per class, PR curves at IoU .50, confusion matrix.

Undefined values follow the service's policy: a metric with no ground truth to measure against
(``map_small`` with no small objects, the AP of a class that has no ground-truth box) is
``None`` with a warning that says why — never COCO's ``-1``, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from app.core.detection._inputs import DetectionSet
from app.core.detection.coco import (
    AREA_RANGES,
    DEFAULT_MAX_DETS,
    CocoArrays,
    evaluate_coco,
    per_class,
    summary,
)
from app.core.detection.confusion import (
    DEFAULT_IOU,
    DEFAULT_SCORE_THRESHOLD,
    detection_confusion,
)

BACKGROUND: Final = "background"
#: Warnings name at most this many classes each.
_MAX_NAMED: Final = 20

_AREA_TEXT: Final = {
    "small": "small (area < 32²)",
    "medium": "medium (32² ≤ area < 96²)",
    "large": "large (area ≥ 96²)",
}


@dataclass(frozen=True)
class DetectionOptions:
    """What to compute besides the COCO summary.

    Attributes
    ----------
    max_dets
        COCO's detection caps per image and category; AP uses the largest.
    confusion_iou, confusion_score_threshold
        IoU for a match, and the least score of a prediction that counts, in the confusion
        matrix (see :mod:`app.core.detection.confusion`).
    """

    max_dets: Sequence[int] = DEFAULT_MAX_DETS
    confusion_iou: float = DEFAULT_IOU
    confusion_score_threshold: float = DEFAULT_SCORE_THRESHOLD


def evaluate_detections(ds: DetectionSet, opts: DetectionOptions | None = None) -> dict[str, Any]:
    """The full report of ``ds`` as JSON-ready data (floats, ints, lists, ``None``).

    Keys: ``task`` (``"detection"``), ``n_samples`` (images), ``counts``, ``metrics`` (the COCO
    summary, :func:`~app.core.detection.coco.summary`), ``per_class``, ``curves.pr`` (per class
    with ground truth: COCO's interpolated precision at the 101 recall points at IoU .50, the
    score reached there, and its mean, which is the class's AP50), ``confusion_matrix``,
    ``params`` and ``warnings``.

    >>> from app.core.detection._inputs import from_images
    >>> ds = from_images([{"ground_truth": {"boxes": [[0, 0, 10, 10]], "labels": ["cat"]},
    ...     "predictions": {"boxes": [[0, 0, 10, 9]], "labels": ["cat"], "scores": [0.9]}}])
    >>> report = evaluate_detections(ds)
    >>> report["metrics"]["map_50"], report["metrics"]["map_small"]
    (1.0, 1.0)
    >>> report["metrics"]["map_large"] is None, report["warnings"][1]["metric"]
    (True, 'map_large')
    """
    opts = opts or DetectionOptions()
    arrays = evaluate_coco(ds, opts.max_dets)
    warnings: list[dict[str, str]] = []
    metrics = summary(arrays)
    for name, value in metrics.items():
        if value is None:
            warnings.append({"metric": name, "message": _why_undefined(name)})
    classes = _per_class(ds, arrays)
    no_truth = [c["name"] for c in classes if c["ap"] is None]
    if no_truth:
        shown = ", ".join(repr(n) for n in no_truth[:_MAX_NAMED])
        more = f" and {len(no_truth) - _MAX_NAMED} more" if len(no_truth) > _MAX_NAMED else ""
        warnings.insert(
            0,
            {
                "metric": "per_class.ap",
                "message": f"{len(no_truth)} of {ds.n_categories} classes have no (non-crowd) "
                f"ground-truth box, so no AP, AR or PR curve: {shown}{more}",
            },
        )
    counts = detection_confusion(
        ds, iou_threshold=opts.confusion_iou, score_threshold=opts.confusion_score_threshold
    )
    return {
        "task": "detection",
        "n_samples": ds.n_images,
        "counts": {
            "images": ds.n_images,
            "ground_truth": int(np.count_nonzero(~ds.gt_crowd)),
            "crowd": int(np.count_nonzero(ds.gt_crowd)),
            "predictions": int(ds.pred_scores.size),
            "categories": ds.n_categories,
        },
        "metrics": metrics,
        "losses": {},
        "per_class": classes,
        "curves": {"pr": _pr_curves(ds, arrays)},
        "confusion_matrix": {
            "labels": [*ds.category_names, BACKGROUND],
            "counts": counts.tolist(),
            "rows": "ground truth (last: background, i.e. false positives)",
            "columns": "prediction (last: background, i.e. missed ground truth)",
            "iou": float(opts.confusion_iou),
            "score_threshold": float(opts.confusion_score_threshold),
        },
        "params": {
            "iou_thresholds": arrays.iou_thresholds.tolist(),
            "recall_points": int(arrays.recall_points.size),
            "area_ranges": list(AREA_RANGES),
            "max_dets": list(arrays.max_dets),
        },
        "warnings": warnings,
    }


def _per_class(ds: DetectionSet, arrays: CocoArrays) -> list[dict[str, Any]]:
    k = ds.n_categories
    n_truth = np.bincount(ds.gt_category[~ds.gt_crowd], minlength=k)
    n_crowd = np.bincount(ds.gt_category[ds.gt_crowd], minlength=k)
    n_pred = np.bincount(ds.pred_category, minlength=k)
    return [
        {
            "category_id": ds.category_ids[i],
            "name": ds.category_names[i],
            "n_ground_truth": int(n_truth[i]),
            "n_crowd": int(n_crowd[i]),
            "n_predictions": int(n_pred[i]),
            **per_class(arrays, i),
        }
        for i in range(k)
    ]


def _pr_curves(ds: DetectionSet, arrays: CocoArrays) -> dict[str, Any]:
    """Per class with ground truth: the precision envelope COCO averages for AP at IoU .50."""
    t = arrays.iou_index(0.5)
    recall = arrays.recall_points.tolist()
    curves: dict[str, Any] = {}
    for i, name in enumerate(ds.category_names):
        precision = arrays.precision[t, :, i, 0, -1]
        if (precision <= -1).all():
            continue
        curves[name] = {
            "recall": recall,
            "precision": precision.tolist(),
            "score": arrays.scores[t, :, i, 0, -1].tolist(),
            "average_precision": float(np.mean(precision)),
            "iou": 0.5,
        }
    return curves


def _why_undefined(name: str) -> str:
    area = name.split("_", 1)[1] if "_" in name else ""
    if area in _AREA_TEXT:
        return f"no (non-crowd) ground-truth box is {_AREA_TEXT[area]}: {name} is undefined"
    return f"no (non-crowd) ground-truth box in any class: {name} is undefined"
