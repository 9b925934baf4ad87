"""Object-detection evaluation: COCO mAP/mAR, AP per class, PR curves, a confusion matrix.

A pure library (numpy and the ``faster-coco-eval`` engine; no web or database imports):

>>> from app.core.detection import DetectionOptions, evaluate_detections, from_images
>>> ds = from_images([{"image_id": 1,
...     "ground_truth": {"boxes": [[0, 0, 40, 40]], "labels": ["car"]},
...     "predictions": {"boxes": [[2, 0, 40, 40]], "labels": ["car"], "scores": [0.8]}}])
>>> evaluate_detections(ds, DetectionOptions())["metrics"]["map_50"]
1.0
"""

from app.core.detection._boxes import BOX_FORMATS, BoxFormat
from app.core.detection._gc import gc_paused
from app.core.detection._inputs import DetectionSet, from_coco, from_images
from app.core.detection.coco import (
    DEFAULT_MAX_DETS,
    CocoArrays,
    check_max_dets,
    evaluate_coco,
    summary,
    to_coco,
)
from app.core.detection.confusion import (
    DEFAULT_IOU,
    DEFAULT_SCORE_THRESHOLD,
    detection_confusion,
    greedy_match,
)
from app.core.detection.report import BACKGROUND, DetectionOptions, evaluate_detections

__all__ = [
    "BACKGROUND",
    "BOX_FORMATS",
    "DEFAULT_IOU",
    "DEFAULT_MAX_DETS",
    "DEFAULT_SCORE_THRESHOLD",
    "BoxFormat",
    "CocoArrays",
    "DetectionOptions",
    "DetectionSet",
    "check_max_dets",
    "detection_confusion",
    "evaluate_coco",
    "evaluate_detections",
    "from_coco",
    "from_images",
    "gc_paused",
    "greedy_match",
    "summary",
    "to_coco",
]
