"""Plots of stored reports: ROC, precision-recall, reliability, confusion and calibration.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with an Agg canvas, never through
``pyplot``, so nothing here touches pyplot's global figure registry and rendering is safe from the
worker threads of a web server. :func:`render` returns the image as bytes (SVG or PNG);
:func:`figure` returns the unsaved figure for callers (and tests) that want to inspect it.

The input is the plain data of a stored report, as produced by :func:`app.core.report.evaluate`
and round-tripped through JSON: lists of floats where undefined values are ``None``. Data that a
report lacks (a curve it was not asked for, a confusion matrix of a regression) raises
:class:`~app.errors.InvalidInput`, never ``KeyError``.

SVG output is byte-for-byte deterministic: element ids are hashed with a fixed salt and no date
is written, so the same report always gives the same bytes (and the same ETag). Text is written
as SVG ``<text>`` (``svg.fonttype = "none"``): smaller files, selectable and searchable text.

>>> report = {"curves": {"roc": {"1": {"fpr": [0, 0, 1], "tpr": [0, 1, 1], "auc": 1.0}}}}
>>> render("roc", report)[:5]
b'<?xml'
>>> render("roc", report, fmt="png")[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, get_args

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.typing import LegendLocType

from app.errors import InvalidInput

__all__ = [
    "DEFAULT_TITLES",
    "FORMATS",
    "KINDS",
    "MEDIA_TYPES",
    "PlotFormat",
    "PlotKind",
    "check_format",
    "figure",
    "new_figure",
    "optional_float",
    "render",
    "save",
]

PlotKind = Literal["roc", "pr", "reliability", "confusion", "calibration"]
PlotFormat = Literal["svg", "png"]

#: Every plot kind :func:`render` draws.
KINDS: Final[tuple[str, ...]] = get_args(PlotKind)
#: Every output format :func:`render` writes.
FORMATS: Final[tuple[str, ...]] = get_args(PlotFormat)
#: The HTTP ``Content-Type`` of each format.
MEDIA_TYPES: Final[dict[str, str]] = {"svg": "image/svg+xml", "png": "image/png"}
#: The title a plot gets when the caller gives none.
DEFAULT_TITLES: Final[dict[str, str]] = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "reliability": "Reliability diagram",
    "confusion": "Confusion matrix",
    "calibration": "Reliability before and after calibration",
}

#: Annotate confusion cells with their row share only up to this many classes.
MAX_ANNOTATED_CLASSES: Final = 30
#: Show every class name as a tick label only up to this many classes.
MAX_TICK_LABELS: Final = 50
#: Draw at most this many per-label 2x2 matrices of a multilabel confusion.
MAX_MULTILABEL_PANELS: Final = 20
#: Curves beyond this many share the plot without a legend entry each.
MAX_LEGEND_ENTRIES: Final = 20

_DPI: Final = 100
_SVG_SALT: Final = "evalserve"
_DIAGONAL: Final[dict[str, Any]] = {"color": "0.5", "linestyle": "--", "linewidth": 1.0}

# ``rc_context`` swaps process-wide rcParams: two threads saving SVG at once would restore each
# other's values (and lose the salt), so SVG saves are serialized.
_SVG_LOCK = threading.Lock()


def render(
    kind: PlotKind,
    report: Mapping[str, Any],
    *,
    fmt: PlotFormat = "svg",
    title: str | None = None,
) -> bytes:
    """Draw ``kind`` from ``report`` and return the image as SVG or PNG bytes.

    Parameters
    ----------
    kind
        ``"roc"``, ``"pr"``, ``"reliability"`` or ``"confusion"`` (from an evaluation report), or
        ``"calibration"`` (from a calibration resource with ``reliability.before/after``).
    report
        The stored report (plain JSON data).
    fmt
        ``"svg"`` (deterministic bytes) or ``"png"``.
    title
        The figure title; :data:`DEFAULT_TITLES` when omitted.

    Raises
    ------
    InvalidInput
        Unknown ``kind`` or ``fmt``, or the report lacks (or has malformed) data for the plot.
    """
    check_format(fmt, field="fmt")
    return save(figure(kind, report, title=title), fmt)


def check_format(fmt: str, *, field: str) -> None:
    """Raise :class:`InvalidInput` on ``field`` unless ``fmt`` is one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unknown plot format {fmt!r}: expected one of {', '.join(FORMATS)}", field=field
        )


def save(fig: Figure, fmt: str) -> bytes:
    """The figure as SVG (deterministic bytes: fixed hash salt, no date, a frozen layout) or
    PNG bytes; every plot of the service is saved here."""
    _freeze_layout(fig)
    buf = io.BytesIO()
    if fmt == "svg":
        with (
            _SVG_LOCK,
            matplotlib.rc_context({"svg.hashsalt": _SVG_SALT, "svg.fonttype": "none"}),
        ):
            fig.savefig(buf, format="svg", metadata={"Date": None})
    else:
        fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _freeze_layout(fig: Figure) -> None:
    """Solve the figure's layout once, round the axes positions and keep them.

    The constrained-layout solver can place an axes differently in the last bit from one
    figure to the next in the same process; the SVG names each clip path by a hash of its
    exact rectangle, so such a bit changed the bytes (and the ETag) of the same plot. Rounded
    to 1e-9 of the figure and fixed, the positions, and so the bytes, are the same every time.
    """
    if fig.get_layout_engine() is None:
        return
    fig.draw_without_rendering()
    for ax in fig.axes:
        x0, y0, width, height = (round(float(v), 9) for v in ax.get_position().bounds)
        ax.set_position((x0, y0, width, height))
    fig.set_layout_engine("none")


def figure(kind: PlotKind, report: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """The unsaved figure :func:`render` would draw (an Agg canvas, no pyplot state).

    Raises
    ------
    InvalidInput
        As :func:`render`.
    """
    draw = _DRAWERS.get(kind) if isinstance(kind, str) else None
    if draw is None:
        raise InvalidInput(
            f"unknown plot kind {kind!r}: expected one of {', '.join(KINDS)}", field="kind"
        )
    if not isinstance(report, Mapping):
        raise InvalidInput(
            f"a plot is drawn from a report object, got {type(report).__name__}", field="report"
        )
    if title is not None and not isinstance(title, str):
        raise InvalidInput(f"title must be a string, got {type(title).__name__}", field="title")
    if report.get("task") == "detection":
        from app import plots_detection  # imports this module: import on first use

        return plots_detection.figure(kind, report, title)
    return draw(report, _text(title if title is not None else DEFAULT_TITLES[kind]))


# -- the plots ------------------------------------------------------------------------------


def _roc(report: Mapping[str, Any], title: str) -> Figure:
    curves = _curve_section(report, "roc")
    fig, ax = _single_axes()
    for label, curve in curves.items():
        where = f"curves.roc.{label}"
        fpr, tpr = _paired(curve, "fpr", "tpr", where)
        auc = optional_float(curve.get("auc"), f"{where}.auc")
        ax.plot(fpr, tpr, clip_on=False, label=f"{_text(label)} (AUC = {_fmt4(auc)})")
    ax.plot([0, 1], [0, 1], label="Chance", **_DIAGONAL)
    _unit_square(ax, "False positive rate", "True positive rate", title)
    _legend(ax, len(curves), loc="lower right")
    return fig


def _pr(report: Mapping[str, Any], title: str) -> Figure:
    curves = _curve_section(report, "pr")
    fig, ax = _single_axes()
    for label, curve in curves.items():
        where = f"curves.pr.{label}"
        recall, precision = _paired(curve, "recall", "precision", where)
        ap = optional_float(curve.get("average_precision"), f"{where}.average_precision")
        ax.plot(
            recall,
            precision,
            drawstyle="steps-post",
            clip_on=False,
            label=f"{_text(label)} (AP = {_fmt4(ap)})",
        )
    _unit_square(ax, "Recall", "Precision", title)
    _legend(ax, len(curves), loc="lower left")
    return fig


def _reliability(report: Mapping[str, Any], title: str) -> Figure:
    curves = report.get("curves")
    if not isinstance(curves, Mapping) or curves.get("reliability") is None:
        raise InvalidInput(
            "this evaluation has no reliability curve: it was computed without "
            "curves=['reliability']",
            field="kind",
        )
    bins = _bins(curves["reliability"], "curves.reliability")
    fig, top, bottom = _reliability_axes()
    _plot_reliability(top, bins, label="Model", marker="o")
    top.set_title(title)
    _legend(top, 1, loc="upper left")
    _count_bars(bottom, bins, label=None)
    return fig


def _calibration(report: Mapping[str, Any], title: str) -> Figure:
    section = report.get("reliability")
    phases = (
        {p: section[p] for p in ("before", "after") if section.get(p) is not None}
        if isinstance(section, Mapping)
        else {}
    )
    if not phases:
        raise InvalidInput(
            "this calibration has no reliability diagram: expected reliability.before and "
            "reliability.after",
            field="kind",
        )
    fig, top, bottom = _reliability_axes()
    markers = {"before": "o", "after": "s"}
    for phase, data in phases.items():
        bins = _bins(data, f"reliability.{phase}")
        _plot_reliability(top, bins, label=phase, marker=markers[phase])
        _count_bars(bottom, bins, label=phase, alpha=0.5 if len(phases) > 1 else 1.0)
    top.set_title(title)
    _legend(top, len(phases), loc="upper left")
    if len(phases) > 1:
        bottom.set_ylim(0.0, 1.35 * max(bottom.get_ylim()[1], 1.0))  # room for the legend
        bottom.legend(loc="upper center", fontsize="small", ncols=2, frameon=False)
    return fig


def _confusion(report: Mapping[str, Any], title: str) -> Figure:
    cm = report.get("confusion_matrix")
    if not isinstance(cm, Mapping) or cm.get("counts") is None:
        task = report.get("task")
        why = f"task {task!r} has none" if task == "regression" else "the report holds none"
        raise InvalidInput(f"this evaluation has no confusion matrix: {why}", field="kind")
    counts = _array(cm["counts"], "confusion_matrix.counts")
    labels = cm.get("labels")
    if counts.ndim == 3 and counts.shape[1:] == (2, 2):
        names = _labels(labels, counts.shape[0], "confusion_matrix.labels")
        return _multilabel_confusion(counts, names, title)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise InvalidInput(
            f"confusion counts must be a K x K matrix (or L x 2 x 2 per label), got shape "
            f"{counts.shape}",
            field="confusion_matrix.counts",
        )
    k = counts.shape[0]
    names = _labels(labels, k, "confusion_matrix.labels")
    fig, _ = confusion_heatmap(counts, _row_share(cm, counts), names, title, "Predicted", "True")
    return fig


def confusion_heatmap(
    counts: np.ndarray,
    share: np.ndarray,
    names: list[str],
    title: str,
    xlabel: str,
    ylabel: str,
) -> tuple[Figure, Axes]:
    """A K x K count matrix as a heat map, rows true and columns predicted, with class ticks and,
    up to MAX_ANNOTATED_CLASSES, each cell's count and row share."""
    k = counts.shape[0]
    side = min(max(5.0, 0.3 * k + 2.5), 16.0)
    fig, ax = _single_axes(figsize=(side + 1.2, side))
    norm = Normalize(vmin=0.0, vmax=_finite_max(counts))
    im = ax.imshow(np.ma.masked_invalid(counts), cmap="Blues", norm=norm, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="Count", aspect=max(20.0, 2.5 * side))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    cell_pt = 0.8 * side * 72.0 / k  # a cell's approximate width in points
    _class_ticks(ax, names, fontsize=max(5.0, min(10.0, cell_pt / 2.5)))
    if k <= MAX_ANNOTATED_CLASSES:
        _annotate(ax, counts, share, norm, fontsize=max(4.0, min(10.0, cell_pt / 3.5)))
    return fig, ax


def _multilabel_confusion(counts: np.ndarray, names: list[str], title: str) -> Figure:
    n_labels = counts.shape[0]
    shown = min(n_labels, MAX_MULTILABEL_PANELS)
    ncols = min(shown, 5)
    nrows = math.ceil(shown / ncols)
    fig = new_figure((2.3 * ncols + 1.2, 2.3 * nrows + 0.9))
    norm = Normalize(vmin=0.0, vmax=_finite_max(counts[:shown]))
    im = None
    axes: list[Axes] = []
    for i in range(shown):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        axes.append(ax)
        cell = counts[i]
        with np.errstate(invalid="ignore", divide="ignore"):
            share = cell / np.nansum(cell, axis=1, keepdims=True)
        im = ax.imshow(np.ma.masked_invalid(cell), cmap="Blues", norm=norm, interpolation="nearest")
        ax.set_title(names[i], fontsize="small")
        ax.set_xticks([0, 1], ["0", "1"])
        ax.set_yticks([0, 1], ["0", "1"])
        if i + ncols >= shown:  # no panel below: label the x axis
            ax.set_xlabel("Predicted", fontsize="small")
        if i % ncols == 0:
            ax.set_ylabel("True", fontsize="small")
        _annotate(ax, cell, share, norm, fontsize=8.0)
    if im is not None:
        fig.colorbar(im, ax=axes, label="Count")
    if shown < n_labels:
        title = f"{title} (first {shown} of {n_labels} labels)"
    fig.suptitle(title)
    return fig


_DRAWERS: Final[dict[str, Callable[[Mapping[str, Any], str], Figure]]] = {
    "roc": _roc,
    "pr": _pr,
    "reliability": _reliability,
    "confusion": _confusion,
    "calibration": _calibration,
}


# -- figure helpers -------------------------------------------------------------------------


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure on an Agg canvas with constrained layout (no pyplot involved)."""
    fig = Figure(figsize=figsize, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _single_axes(figsize: tuple[float, float] = (6.0, 5.5)) -> tuple[Figure, Axes]:
    fig = new_figure(figsize)
    return fig, fig.add_subplot()


def _reliability_axes() -> tuple[Figure, Axes, Axes]:
    """The diagram on top and the bin-count histogram below, sharing the x axis."""
    fig = new_figure((6.0, 7.0))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], label="Perfectly calibrated", **_DIAGONAL)
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_xlabel("Mean predicted probability")
    top.set_ylabel("Observed frequency")
    top.tick_params(labelbottom=True)
    top.grid(True, alpha=0.3)
    bottom.set_xlabel("Predicted probability")
    bottom.set_ylabel("Count")
    return fig, top, bottom


def _unit_square(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def _legend(ax: Axes, n_entries: int, *, loc: LegendLocType) -> None:
    """A legend, unless there are too many curves to name (then a note says how many)."""
    if n_entries <= MAX_LEGEND_ENTRIES:
        ax.legend(loc=loc, fontsize="small")
    else:
        ax.text(0.98, 0.02, f"{n_entries} classes", transform=ax.transAxes, ha="right")


def _plot_reliability(ax: Axes, bins: dict[str, np.ndarray], *, label: str, marker: str) -> None:
    """Observed frequency against mean confidence, over the non-empty bins only."""
    conf, freq = bins["mean_confidence"], bins["observed_frequency"]
    filled = (bins["count"] > 0) & np.isfinite(conf) & np.isfinite(freq)
    ax.plot(conf[filled], freq[filled], marker=marker, clip_on=False, label=label)


def _count_bars(
    ax: Axes, bins: dict[str, np.ndarray], *, label: str | None, alpha: float = 1.0
) -> None:
    edges, count = bins["edges"], bins["count"]
    ax.bar(
        edges[:-1],
        np.nan_to_num(count),
        width=np.diff(edges),
        align="edge",
        alpha=alpha,
        edgecolor="white",
        linewidth=0.5,
        label=label,
    )
    ax.set_xlim(0.0, 1.0)


def _class_ticks(ax: Axes, names: list[str], *, fontsize: float) -> None:
    """One tick per class, or (for many classes) a few ticks still named by class."""
    k = len(names)
    ax.tick_params(labelsize=fontsize)
    if k <= MAX_TICK_LABELS:
        rotate = k > 4 or max(len(n) for n in names) > 6
        ax.set_xticks(
            range(k),
            names,
            rotation=45 if rotate else 0,
            ha="right" if rotate else "center",
            rotation_mode="anchor",
        )
        ax.set_yticks(range(k), names)
        return

    def name(x: float, _pos: int | None) -> str:
        i = round(x)
        return names[i] if 0 <= i < k and abs(x - i) < 1e-9 else ""

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=20, integer=True))
        axis.set_major_formatter(FuncFormatter(name))
    ax.tick_params(axis="x", labelrotation=45)


def _annotate(
    ax: Axes, counts: np.ndarray, share: np.ndarray, norm: Normalize, *, fontsize: float
) -> None:
    """Write each cell's count and row share, in a colour that reads on the cell."""
    threshold = 0.5 * (norm.vmax if norm.vmax is not None else 1.0)
    for (i, j), value in np.ndenumerate(counts):
        if not np.isfinite(value):
            text, colour = "n/a", "black"
        else:
            text = _fmt_count(value)
            if np.isfinite(share[i, j]):
                text += f"\n{100.0 * share[i, j]:.1f}%"
            colour = "white" if value > threshold else "black"
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)


# -- reading the report ---------------------------------------------------------------------


def _curve_section(report: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    curves = report.get("curves")
    section = curves.get(name) if isinstance(curves, Mapping) else None
    if section is None:
        raise InvalidInput(
            f"this evaluation has no {name} curve: it was computed without curves=[{name!r}]",
            field="kind",
        )
    if not isinstance(section, Mapping) or not section:
        raise InvalidInput(
            f"the {name} curves must be an object of one curve per class", field=f"curves.{name}"
        )
    for label, curve in section.items():
        if not isinstance(curve, Mapping):
            raise InvalidInput(
                f"the {name} curve of class {label!r} must be an object",
                field=f"curves.{name}.{label}",
            )
    return section


def _paired(
    curve: Mapping[str, Any], x_key: str, y_key: str, where: str
) -> tuple[np.ndarray, np.ndarray]:
    x = _vector(curve.get(x_key), f"{where}.{x_key}")
    y = _vector(curve.get(y_key), f"{where}.{y_key}")
    if x.shape != y.shape:
        raise InvalidInput(
            f"{x_key} and {y_key} differ in length ({x.size} and {y.size})", field=where
        )
    return x, y


def _bins(data: Any, where: str) -> dict[str, np.ndarray]:
    """The reliability bins as float arrays (``None`` → NaN), lengths checked."""
    if not isinstance(data, Mapping):
        raise InvalidInput("the reliability bins must be an object", field=where)
    out = {
        key: _vector(data.get(key), f"{where}.{key}")
        for key in ("edges", "count", "mean_confidence", "observed_frequency")
    }
    n = out["count"].size
    if out["edges"].size != n + 1 or not np.isfinite(out["edges"]).all():
        raise InvalidInput(
            f"expected {n + 1} finite bin edges for {n} bins, got {out['edges'].size}",
            field=f"{where}.edges",
        )
    for key in ("mean_confidence", "observed_frequency"):
        if out[key].size != n:
            raise InvalidInput(
                f"expected {n} values (one per bin), got {out[key].size}", field=f"{where}.{key}"
            )
    return out


def _row_share(cm: Mapping[str, Any], counts: np.ndarray) -> np.ndarray:
    """The row-normalized matrix of the report, or computed from the counts if it has none."""
    normalized = cm.get("normalized")
    stored = normalized.get("true") if isinstance(normalized, Mapping) else None
    if stored is not None:
        share = _array(stored, "confusion_matrix.normalized.true")
        if share.shape == counts.shape:
            return share
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / np.nansum(counts, axis=1, keepdims=True)


def _vector(value: Any, where: str) -> np.ndarray:
    arr = _array(value, where)
    if arr.ndim != 1:
        raise InvalidInput(f"expected a list of numbers, got shape {arr.shape}", field=where)
    return arr


def _array(value: Any, where: str) -> np.ndarray:
    """``value`` as a float array, ``None`` entries as NaN."""
    if value is None or isinstance(value, str | bytes | Mapping):
        raise InvalidInput("expected a (nested) list of numbers", field=where)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"expected a (nested) list of numbers: {exc}", field=where) from None


def _labels(labels: Any, k: int, where: str) -> list[str]:
    if labels is None:
        return [str(i) for i in range(k)]
    if not isinstance(labels, Sequence) or isinstance(labels, str) or len(labels) != k:
        raise InvalidInput(f"expected {k} labels, one per class", field=where)
    return [_text(lab) for lab in labels]


def optional_float(value: Any, where: str) -> float | None:
    """A stored number as a float (None for null or non-finite); 422 on ``where`` otherwise."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"expected a number or null, got {value!r}", field=where) from None
    return out if math.isfinite(out) else None


def _finite_max(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def _fmt4(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _fmt_count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def _text(value: Any) -> str:
    """``value`` as literal text: dollar signs escaped so matplotlib never parses mathtext."""
    return str(value).replace("$", r"\$")
