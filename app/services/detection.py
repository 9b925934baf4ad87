"""Detection evaluations: read the body, run the core report, store it when asked."""

from __future__ import annotations

import json
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.api.schemas.detection import DATA_FIELDS, BoxFormat, DetectionOptions
from app.core.detection import DetectionOptions as CoreOptions
from app.core.detection import (
    DetectionSet,
    evaluate_detections,
    from_coco,
    from_images,
    gc_paused,
)
from app.db import repositories
from app.errors import InvalidInput, PayloadTooLarge
from app.services.evaluations import as_read


def parse_body(body: bytes, max_rows: int) -> tuple[DetectionOptions, DetectionSet]:
    """The options (validated by pydantic) and the boxes (checked column-wise by the core).

    The body is parsed once with orjson (the cyclic collector paused: see
    :mod:`app.core.detection._gc`); the boxes never go through per-object validation, which
    would cost more than the evaluation on a COCO-val-sized set.
    """
    with gc_paused():
        return _parse(body, max_rows)


def _parse(body: bytes, max_rows: int) -> tuple[DetectionOptions, DetectionSet]:
    data = _json(body)
    if not isinstance(data, dict):
        raise InvalidInput("must be a JSON object", field="body")
    parts = {key: data.pop(key) for key in DATA_FIELDS if key in data}
    options = DetectionOptions.model_validate(data)
    if "images" in parts:
        if "ground_truth" in parts or "detections" in parts:
            raise InvalidInput(
                "send either images, or ground_truth and detections (COCO), not both",
                field="images",
            )
        fmt: BoxFormat = options.box_format or "xyxy"
        options = options.model_copy(update={"box_format": fmt})
        ds = from_images(parts["images"], categories=options.categories, box_format=fmt)
    elif "ground_truth" in parts:
        if options.categories is not None:
            raise InvalidInput(
                "the COCO form takes its categories from ground_truth.categories",
                field="categories",
            )
        if "detections" not in parts:
            raise InvalidInput(
                "is missing: post the COCO results list (an empty list if there are none)",
                field="detections",
            )
        fmt = options.box_format or "xywh"
        options = options.model_copy(update={"box_format": fmt})
        ds = from_coco(parts["ground_truth"], parts["detections"], box_format=fmt)
    else:
        raise InvalidInput(
            "no boxes: send images (per image ground truth and predictions), or ground_truth "
            "(a COCO dataset) and detections (COCO results)",
            field="images" if "detections" not in parts else "ground_truth",
        )
    rows = ds.gt_boxes.shape[0] + ds.pred_boxes.shape[0]
    if rows > max_rows:
        raise PayloadTooLarge(
            f"the set has {rows} boxes; the limit is {max_rows} (EVALSERVE_MAX_ROWS)",
            field="body",
        )
    return options, ds


def compute_report(options: DetectionOptions, ds: DetectionSet) -> dict[str, Any]:
    """The report of one set, as plain JSON-ready data, with the request's names and tags."""
    report = evaluate_detections(
        ds,
        CoreOptions(
            max_dets=tuple(options.max_dets),
            confusion_iou=options.confusion_iou,
            confusion_score_threshold=options.confusion_score_threshold,
        ),
    )
    report["params"]["box_format"] = options.box_format
    report.update(
        id=None, created_at=None, name=options.name, model=options.model, tags=list(options.tags)
    )
    return report


def store_report(session: Session, report: dict[str, Any]) -> dict[str, Any]:
    """Persist a detection report beside the other evaluations; returns it with its id.

    Of the headline columns only ``average_precision`` fits: it holds COCO's mAP@[.50:.95].
    """
    row = repositories.create_evaluation(
        session,
        task="detection",
        n_samples=report["n_samples"],
        report=report,
        name=report.get("name"),
        model=report.get("model"),
        tags=report.get("tags", []),
        headline={"average_precision": report["metrics"]["map"]},
    )
    session.flush()
    return as_read(row)


def _json(body: bytes) -> Any:
    """The parsed body. orjson refuses ``NaN``, ``Infinity`` and overflowing numbers (which
    Python's ``json.dumps`` writes); the standard parser reads them, so the core's checks can
    name the box or score that holds one instead of answering "invalid JSON"."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"is not valid JSON: {exc}", field="body") from None
