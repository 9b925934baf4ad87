"""Turning posted columns (JSON lists or Arrow columns) into the core's arrays."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from app.errors import InvalidInput, PayloadTooLarge

_INDEXED = re.compile(r"^(y_true|y_score|y_pred)_(\d+)$")


def arrow_arrays(columns: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """Map Arrow columns to batch fields.

    ``y_true``, ``y_score``, ``y_pred`` and ``sample_weight`` are taken as they are; numbered
    columns ``y_score_0 .. y_score_{K-1}`` (likewise ``y_true_j`` for multilabel targets and
    ``y_pred_j`` for multi-output regression) are stacked in index order into a matrix.
    ``id`` holds row ids and ``group_<name>`` a slicing column.
    """
    out: dict[str, Any] = {}
    numbered: dict[str, dict[int, np.ndarray[Any, Any]]] = {}
    for name, col in columns.items():
        m = _INDEXED.match(name)
        if m:
            numbered.setdefault(m.group(1), {})[int(m.group(2))] = col
        elif name in ("y_true", "y_score", "y_pred", "sample_weight"):
            out[name] = col
        elif name == "id":
            out["ids"] = col
        elif name.startswith("group_") and len(name) > len("group_"):
            out.setdefault("groups", {})[name.removeprefix("group_")] = col
        else:
            raise InvalidInput(
                f"unexpected column {name!r}; expected y_true, y_score or y_score_0..K-1, "
                "y_pred, sample_weight, id, group_<name>",
                field=name,
            )
    for base, cols in numbered.items():
        if base in out:
            raise InvalidInput(f"both {base} and {base}_0.. columns were sent", field=base)
        idx = sorted(cols)
        if idx != list(range(len(idx))):
            missing = sorted(set(range(max(idx) + 1)) - set(idx))
            raise InvalidInput(f"column {base}_{missing[0]} is missing", field=base)
        out[base] = np.column_stack([cols[i] for i in idx])
    if "y_true" not in out:
        raise InvalidInput("the Arrow stream has no y_true column", field="y_true")
    return out


def check_row_limit(arrays: dict[str, Any], max_rows: int) -> None:
    n = len(arrays["y_true"])
    if n > max_rows:
        raise PayloadTooLarge(
            f"the batch has {n} rows; the limit is {max_rows} (EVALSERVE_MAX_ROWS)",
            field="y_true",
        )
