"""Requests and responses of /v1/detection-evaluations.

The route reads its (possibly very large) body with orjson and checks the boxes column-wise in
the core (:mod:`app.core.detection`); pydantic validates the options only
(:class:`DetectionOptions`). :class:`DetectionEvaluationRequest` documents the whole body for
OpenAPI and is what a client can validate against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import Label, StoreOptions, StrictModel

Box = Annotated[list[float], Field(min_length=4, max_length=4)]
BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
Cap = Annotated[int, Field(ge=1, le=10_000)]

#: The fields that carry boxes; everything else in the body is an option.
DATA_FIELDS = ("images", "ground_truth", "detections")


class DetectionOptions(StoreOptions):
    """Everything in the body except the boxes."""

    box_format: BoxFormat | None = Field(
        None,
        description="How boxes are written: xyxy (x1, y1, x2, y2), xywh (corner, width, "
        "height) or cxcywh (centre, width, height). Default: xyxy for `images`, xywh (COCO's "
        "own) for `ground_truth` + `detections`.",
    )
    categories: list[Label] | None = Field(
        None,
        description="`images` form: every class, in report order (a label outside it is a "
        "422). Default: the labels seen, sorted. The COCO form takes ground_truth.categories.",
        examples=[["person", "car"]],
    )
    max_dets: list[Cap] = Field(
        [1, 10, 100],
        min_length=1,
        max_length=10,
        description="COCO's detection caps per image and class, strictly increasing; AP and "
        "AR by size use the largest, and there is one mar_<cap> per cap.",
    )
    confusion_iou: float = Field(
        0.5, gt=0, le=1, description="Confusion matrix: least IoU of a matched pair."
    )
    confusion_score_threshold: float = Field(
        0.25,
        allow_inf_nan=False,
        description="Confusion matrix: predictions scored below this are left out.",
    )


class GroundTruthBoxes(StrictModel):
    boxes: list[Box] = Field(description="One box per object, in box_format.")
    labels: list[Label] = Field(description="The class of each box.")
    iscrowd: list[Literal[0, 1]] | None = Field(
        None, description="1 for a crowd region (COCO: ignored, absorbs detections)."
    )
    area: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, description="Object area for the small/medium/large ranges; default w * h."
    )


class PredictedBoxes(StrictModel):
    boxes: list[Box]
    labels: list[Label]
    scores: list[float] = Field(description="Confidence of each box (any finite number).")


class ImageEntry(StrictModel):
    """One image: its ground truth (omit it for an image with no objects) and predictions."""

    image_id: Label | None = Field(None, description="Unique; default: the entry's position.")
    ground_truth: GroundTruthBoxes | None = None
    predictions: PredictedBoxes | None = None


class _Open(BaseModel):
    """COCO objects keep whatever else they hold (file names, segmentation, ...)."""

    model_config = ConfigDict(extra="allow")


class CocoImage(_Open):
    id: int


class CocoCategory(_Open):
    id: int
    name: str | None = None


class CocoAnnotation(_Open):
    image_id: int
    category_id: int
    bbox: Box = Field(description="[x, y, width, height] (box_format xywh).")
    iscrowd: Literal[0, 1] = 0
    area: float | None = Field(None, ge=0, description="Default: width * height.")


class CocoDataset(_Open):
    """A COCO ground-truth file (``instances_val2017.json``), as it is."""

    images: list[CocoImage] = Field(min_length=1)
    annotations: list[CocoAnnotation]
    categories: list[CocoCategory] = Field(min_length=1)


class CocoDetection(_Open):
    """One entry of a COCO results file, as detectors write it."""

    image_id: int
    category_id: int
    bbox: Box
    score: float


class DetectionEvaluationRequest(DetectionOptions):
    """Either `images` (per image) or `ground_truth` + `detections` (COCO files as they are)."""

    images: list[ImageEntry] | None = Field(
        None,
        description="Per image ground truth and predictions (the torchmetrics MeanAveragePrecision "
        "layout).",
        examples=[
            [
                {
                    "image_id": "img-1",
                    "ground_truth": {"boxes": [[10, 10, 50, 80]], "labels": ["person"]},
                    "predictions": {
                        "boxes": [[12, 8, 52, 78], [100, 40, 160, 90]],
                        "labels": ["person", "car"],
                        "scores": [0.92, 0.40],
                    },
                }
            ]
        ],
    )
    ground_truth: CocoDataset | None = None
    detections: list[CocoDetection] | None = Field(
        None,
        description="COCO results; an image_id missing from ground_truth.images or an unknown "
        "category_id is a 422.",
    )


class DetectionEvaluationRead(BaseModel):
    """A detection report; ``id`` and ``created_at`` are set when it was stored."""

    id: str | None = None
    created_at: datetime | None = None
    task: Literal["detection"]
    n_samples: int = Field(description="Images.")
    name: str | None = None
    model: str | None = None
    tags: list[str] = Field(default_factory=list)
    counts: dict[str, int]
    metrics: dict[str, float | None] = Field(
        description="map, map_50, map_75, map_small/medium/large, mar_<cap> per max_dets cap, "
        "mar_small/medium/large (COCO; null where undefined)."
    )
    per_class: list[dict[str, Any]] = Field(
        description="Per class: n_ground_truth, n_crowd, n_predictions, ap, ap_50, ap_75, ar."
    )
    curves: dict[str, Any] = Field(
        description="pr: per class, COCO's interpolated precision at 101 recall points at IoU "
        ".50 and the score reached there."
    )
    confusion_matrix: dict[str, Any] = Field(
        description="counts (K+1)x(K+1): rows ground truth, columns prediction, last row and "
        "column background."
    )
    params: dict[str, Any]
    warnings: list[dict[str, str]] = Field(default_factory=list)
