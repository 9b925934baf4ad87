"""Segmentation evaluations: check the request's options, run the core report on the masks.

A row of a mask batch is a pixel: masks of shape (N, H, W) are N·H·W rows against
``EVALSERVE_MAX_ROWS`` (the work and the memory grow with pixels, not with images).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from app.api.schemas.evaluations import EvaluationOptions
from app.core.segmentation import segmentation_report
from app.errors import InvalidInput, PayloadTooLarge

#: Options of classification and regression reports that a segmentation report does not take.
_NOT_FOR_MASKS = (
    "pos_label",
    "threshold",
    "metrics",
    "losses",
    "penalty",
    "curves",
    "max_curve_points",
    "n_bins",
    "binning",
    "groups",
    "ids",
    "top_errors",
    "bootstrap",
)
#: Options only a segmentation report takes.
_MASK_ONLY = ("num_classes", "ignore_index")


def mask_rows(y_true: Any) -> int | None:
    """Pixels of a mask batch (y_true with three or more dimensions), else None.

    JSON nested lists are measured along their first entries (a ragged list is refused later).
    """
    shape = getattr(y_true, "shape", None)
    if shape is None:
        dims: list[int] = []
        item = y_true
        while isinstance(item, list) and item:
            dims.append(len(item))
            item = item[0]
        shape = tuple(dims)
    return int(np.prod(shape, dtype=np.int64)) if len(shape) >= 3 else None


def check_pixel_limit(arrays: dict[str, Any], max_rows: int) -> None:
    """413 when a mask batch has more pixels than ``max_rows`` (a row of masks is a pixel)."""
    pixels = mask_rows(arrays.get("y_true"))
    if pixels is not None and pixels > max_rows:
        raise PayloadTooLarge(
            f"the masks have {pixels} pixels; the limit is {max_rows} rows, and a row of a mask "
            "batch is a pixel (EVALSERVE_MAX_ROWS)",
            field="y_true",
        )


def check_task_options(options: EvaluationOptions) -> None:
    """Refuse options that do not apply to the request's task, naming the first one."""
    given = options.model_fields_set
    if options.task == "segmentation":
        if options.num_classes is None:
            raise InvalidInput(
                "is required for task 'segmentation' (class ids lie in [0, num_classes))",
                field="num_classes",
            )
        for name in _NOT_FOR_MASKS:
            if name in given:
                raise InvalidInput(
                    "does not apply to task 'segmentation' (the report carries every "
                    "segmentation metric)",
                    field=name,
                )
        return
    for name in _MASK_ONLY:
        if name in given:
            raise InvalidInput(
                f"applies to task 'segmentation' only, not {options.task!r}", field=name
            )


def compute_segmentation_report(options: EvaluationOptions, arrays: dict[str, Any]) -> dict:
    """The report of a mask batch, as plain JSON-ready data (no numpy left in it)."""
    check_task_options(options)
    for name in ("y_score", "sample_weight", "ids", "groups"):
        if arrays.get(name) is not None:
            hint = " (post class ids or class scores as y_pred)" if name == "y_score" else ""
            raise InvalidInput(f"does not apply to task 'segmentation'{hint}", field=name)
    if arrays.get("y_pred") is None:
        raise InvalidInput("is required for task 'segmentation'", field="y_pred")
    report = segmentation_report(
        arrays["y_true"],
        arrays["y_pred"],
        options.num_classes or 0,  # set: check_task_options refuses None
        ignore_index=options.ignore_index,
        class_names=options.labels,
    )
    plain: dict[str, Any] = orjson.loads(orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY))
    plain.update(
        id=None, created_at=None, name=options.name, model=options.model, tags=list(options.tags)
    )
    return plain
