"""Plots of stored detection reports: PR curves per class at IoU .50, the confusion matrix.

:func:`app.plots.figure` hands a report with ``task == "detection"`` here for the kinds this
module draws (``pr``, ``confusion``); rendering (SVG/PNG bytes, deterministic SVG) stays in
:mod:`app.plots`. Figures are Agg canvases, never pyplot, like every plot of the service.

>>> from app import plots
>>> report = {"task": "detection", "metrics": {"map_50": 0.5},
...     "curves": {"pr": {"cat": {"recall": [0, 0.5, 1], "precision": [1, 1, 0],
...     "average_precision": 0.5}}},
...     "confusion_matrix": {"labels": ["cat", "background"], "counts": [[1, 1], [2, 0]]}}
>>> plots.render("pr", report)[:5], plots.render("confusion", report)[:5]
(b'<?xml', b'<?xml')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
from matplotlib.figure import Figure

from app.errors import InvalidInput
from app.plots import (
    MAX_LEGEND_ENTRIES,
    _array,
    _curve_section,
    _fmt4,
    _labels,
    _legend,
    _paired,
    _single_axes,
    _text,
    _unit_square,
    confusion_heatmap,
    optional_float,
)

#: Default titles of the detection plots.
TITLES: Final[dict[str, str]] = {
    "pr": "Precision-recall per class at IoU 0.50 (COCO, 101 recall points)",
    "confusion": "Detection confusion matrix",
}


def figure(kind: str, report: Mapping[str, Any], title: str | None) -> Figure:
    """The detection figure of ``kind`` (``pr`` or ``confusion``).

    Raises
    ------
    InvalidInput
        Another kind (a detection report has no ROC curve or reliability diagram), or the
        report lacks the data.
    """
    draw = _DRAWERS.get(kind)
    if draw is None:
        raise InvalidInput(
            f"a detection report has no {kind} plot: its plots are {', '.join(_DRAWERS)}",
            field="kind",
        )
    return draw(report, _text(title if title is not None else TITLES[kind]))


def _pr(report: Mapping[str, Any], title: str) -> Figure:
    curves = _curve_section(report, "pr")
    fig, ax = _single_axes()
    ranked = []
    for label, curve in curves.items():
        where = f"curves.pr.{label}"
        recall, precision = _paired(curve, "recall", "precision", where)
        ap = optional_float(curve.get("average_precision"), f"{where}.average_precision")
        ranked.append((-(ap if ap is not None else -1.0), str(label), recall, precision, ap))
    ranked.sort(key=lambda r: (r[0], r[1]))
    many = len(ranked) > MAX_LEGEND_ENTRIES
    for _, label, recall, precision, ap in ranked:
        ax.plot(
            recall,
            precision,
            drawstyle="steps-post",
            clip_on=False,
            linewidth=0.8 if many else 1.5,
            alpha=0.5 if many else 1.0,
            label=None if many else f"{_text(label)} (AP50 = {_fmt4(ap)})",
        )
    if len(ranked) > 1 and all(np.array_equal(r[2], ranked[0][2]) for r in ranked):
        # COCO's AP50 is the mean of the per-class curves at each recall point.
        mean = np.mean(np.stack([r[3] for r in ranked]), axis=0)
        m = report.get("metrics", {})
        map50 = optional_float(m.get("map_50") if isinstance(m, Mapping) else None, "metrics")
        ax.plot(
            ranked[0][2],
            mean,
            drawstyle="steps-post",
            clip_on=False,
            color="black",
            linewidth=2.5,
            label=f"all classes (mAP50 = {_fmt4(map50)})",
        )
    _unit_square(ax, "Recall", "Precision", title)
    if many:
        ax.legend(loc="best", fontsize="small")
        ax.text(0.98, 0.02, f"{len(ranked)} classes", transform=ax.transAxes, ha="right")
    else:
        _legend(ax, len(ranked) + 1, loc="best")
    return fig


def _confusion(report: Mapping[str, Any], title: str) -> Figure:
    cm = report.get("confusion_matrix")
    if not isinstance(cm, Mapping) or cm.get("counts") is None:
        raise InvalidInput("this detection report has no confusion matrix", field="kind")
    counts = _array(cm["counts"], "confusion_matrix.counts")
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < 2:
        raise InvalidInput(
            f"detection confusion counts must be a (K+1) x (K+1) matrix, got shape {counts.shape}",
            field="confusion_matrix.counts",
        )
    k = counts.shape[0]
    names = _labels(cm.get("labels"), k, "confusion_matrix.labels")
    with np.errstate(invalid="ignore", divide="ignore"):
        # Share of each ground-truth class's boxes (the background row: of all false positives).
        share = counts / counts.sum(axis=1, keepdims=True)
    fig, ax = confusion_heatmap(
        counts,
        share,
        names,
        title + _caption(cm),
        "Predicted class (background: missed)",
        "Ground-truth class (background: false positive)",
    )
    for edge in (ax.axhline, ax.axvline):  # set the background row and column apart
        edge(k - 1.5, color="0.3", linewidth=1.0)
    return fig


def _caption(cm: Mapping[str, Any]) -> str:
    """The matching rule as a second title line, when the report states it."""
    iou = optional_float(cm.get("iou"), "confusion_matrix.iou")
    score = optional_float(cm.get("score_threshold"), "confusion_matrix.score_threshold")
    return "" if iou is None or score is None else f"\n(IoU ≥ {iou:g}, score ≥ {score:g})"


_DRAWERS: Final[dict[str, Callable[[Mapping[str, Any], str], Figure]]] = {
    "pr": _pr,
    "confusion": _confusion,
}
