"""The plot of a domain-validation run (``GET /v1/runs/{id}/domain-validation/plot``).

One horizontal bar per held-out domain (the time split's single ``"future"`` domain included) of
one validation metric — by default the summary's ``primary_metric``, the one that names the worst
domain — labelled with the value and the domain's support ``n`` (its held-out rows). The
support-weighted mean is a solid vertical line, the random split's score a dashed one, and the
gap between them (``random − domain``, :data:`app.core.domains.random_split_gap`) is annotated
above the bars, saying whether the random split overestimates. The worst domain for the metric
is drawn in :data:`WORST_COLOUR` (in both panels). Classification runs get a second panel: the
expected calibration error (ECE) per domain, with its weighted mean, random-split value and gap.

The input is the plain data of a succeeded parent's ``summary.domain_validation`` (see
:func:`app.services.domain_validation.parent_result`), optionally with ``run_id``. Figures and
bytes come from the shared helpers of :mod:`app.plots` (Agg canvas, no pyplot, deterministic
SVG), so the same summary always gives the same bytes.

>>> summary = {"primary_metric": "rmse", "domains": [
...     {"domain": "a", "n_val": 10, "metrics": {"rmse": 1.0}},
...     {"domain": "b", "n_val": 30, "metrics": {"rmse": 2.0}}],
...     "weighted_mean": {"rmse": 1.75}, "worst": {"rmse": {"domain": "b", "value": 2.0}},
...     "random_split": {"metrics": {"rmse": 1.2}}}
>>> render(summary)[:5]
b'<?xml'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from app import plots
from app.core.domains import GREATER_IS_BETTER
from app.errors import InvalidInput

__all__ = ["BAR_COLOUR", "WORST_COLOUR", "figure", "metric_of", "render"]

#: The bars of the domains, and of the worst domain for the plotted metric.
BAR_COLOUR: Final = "#4c72b0"
WORST_COLOUR: Final = "#c44e52"
#: The support-weighted mean (solid) and the random split's score (dashed).
MEAN_COLOUR: Final = "#222222"
RANDOM_COLOUR: Final = "#dd8452"

_LABEL_BOX: Final = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0}
_MODES: Final = {"leave_one_domain_out": "leave one domain out", "time_split": "time split"}

#: A stored number as a float, None for null; 422 naming the field otherwise.
_value = plots.optional_float


def render(
    summary: Mapping[str, Any],
    *,
    fmt: str = "svg",
    metric: str | None = None,
    title: str | None = None,
) -> bytes:
    """The domain-validation plot as SVG (deterministic bytes) or PNG.

    Raises
    ------
    InvalidInput
        An unknown ``fmt`` (field ``format``), a ``metric`` the summary does not hold (field
        ``metric``), or a summary without per-domain aggregates.
    """
    plots.check_format(fmt, field="format")
    return plots.save(figure(summary, metric=metric, title=title), fmt)


def metric_of(summary: Mapping[str, Any], metric: str | None) -> str:
    """The metric to plot: ``metric``, or the summary's ``primary_metric`` when None.

    Raises
    ------
    InvalidInput
        ``metric`` is not one of the summary's metrics (field ``metric``).
    """
    names = list(_mapping(summary.get("weighted_mean"), "weighted_mean"))
    chosen = metric if metric is not None else summary.get("primary_metric")
    if chosen is None and names:
        chosen = names[0]
    if chosen not in names:
        raise InvalidInput(
            f"unknown metric {chosen!r} for this run: expected one of {', '.join(names)}",
            field="metric",
        )
    return str(chosen)


def figure(
    summary: Mapping[str, Any], *, metric: str | None = None, title: str | None = None
) -> Figure:
    """The unsaved figure :func:`render` draws: ``fig.axes[0]`` holds the metric's bars,
    ``fig.axes[1]`` (classification only) the ECE per domain."""
    if not isinstance(summary, Mapping):
        raise InvalidInput(
            f"expected a domain-validation summary object, got {type(summary).__name__}",
            field="summary",
        )
    name = metric_of(summary, metric)
    domains = _domains(summary)
    ece = summary.get("ece_by_domain")
    with_ece = isinstance(ece, Mapping) and name != "ece"
    height = max(3.8, 0.45 * len(domains) + 2.6)
    fig = plots.new_figure((11.0 if with_ece else 7.5, height))
    if with_ece:
        main, side = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    else:
        main, side = fig.add_subplot(), None
    worst = (_mapping(summary.get("worst"), "worst").get(name) or {}).get("domain")
    values = [
        _value(d["metrics"].get(name), f"domains.{d['domain']}.metrics.{name}") for d in domains
    ]
    _panel(
        main,
        domains,
        values,
        worst,
        mean=_value(_mapping(summary.get("weighted_mean"), "weighted_mean").get(name), name),
        random=_random(summary, name),
        gap=_gap(summary, name),
        name=name,
    )
    main.set_yticks(range(len(domains)), [plots._text(d["domain"]) for d in domains])
    main.set_ylabel(plots._text(_column_label(summary)))
    if side is not None:
        assert isinstance(ece, Mapping)
        ece_values = [
            _value(ece.get(str(d["domain"])), f"ece_by_domain.{d['domain']}") for d in domains
        ]
        _panel(
            side,
            domains,
            ece_values,
            worst,
            mean=_value(_mapping(summary.get("weighted_mean"), "weighted_mean").get("ece"), "ece"),
            random=_random(summary, "ece"),
            gap=_gap(summary, "ece"),
            name="ece",
        )
        side.tick_params(labelleft=False)
        side.set_title("calibration error (ECE) per domain", fontsize="medium")
    main.set_title(plots._text(f"{name} per held-out domain"), fontsize="medium")
    fig.suptitle(_title(summary, name, worst, title))
    handles, labels = main.get_legend_handles_labels()
    if worst is not None:
        handles.append(Patch(color=WORST_COLOUR))
        labels.append(plots._text(f"worst domain by {name}: {worst}"))
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")
    return fig


# -- the data -------------------------------------------------------------------------------------
def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(
            "the domain-validation summary has no per-domain aggregates (its child runs have "
            "not all succeeded)",
            field=where,
        )
    return value


def _domains(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = summary.get("domains")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise InvalidInput("the domain-validation summary lists no domains", field="domains")
    out = []
    for i, d in enumerate(raw):
        if not isinstance(d, Mapping) or not isinstance(d.get("metrics"), Mapping):
            raise InvalidInput("expected a domain with its metrics", field=f"domains[{i}]")
        out.append({"domain": d.get("domain"), "n_val": d.get("n_val"), "metrics": d["metrics"]})
    return out


def _random(summary: Mapping[str, Any], name: str) -> float | None:
    entry = summary.get("random_split")
    if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics"), Mapping):
        return None
    return _value(entry["metrics"].get(name), f"random_split.metrics.{name}")


def _gap(summary: Mapping[str, Any], name: str) -> tuple[float, bool | None] | None:
    """``(random − domain, overestimates)`` of the summary, or from the two lines."""
    stored = summary.get("random_split_minus_domain")
    gap = _value(stored.get(name), name) if isinstance(stored, Mapping) else None
    if gap is None:
        random = _random(summary, name)
        mean = _value((summary.get("weighted_mean") or {}).get(name), name)
        if random is None or mean is None:
            return None
        gap = random - mean
    over = (summary.get("random_split_overestimates") or {}).get(name)
    if not isinstance(over, bool):
        over = gap > 0 if GREATER_IS_BETTER.get(name, True) else gap < 0
    return gap, over


# -- the panels -----------------------------------------------------------------------------------
def _panel(
    ax: Axes,
    domains: Sequence[Mapping[str, Any]],
    values: Sequence[float | None],
    worst: Any,
    *,
    mean: float | None,
    random: float | None,
    gap: tuple[float, bool | None] | None,
    name: str,
) -> BarContainer:
    """One bar per domain (first on top; an undefined value draws no bar and says "n/a"), the
    weighted mean, the random split and the gap between them in a row above the bars."""
    n = len(domains)
    colours = [WORST_COLOUR if d["domain"] == worst else BAR_COLOUR for d in domains]
    widths = [0.0 if v is None else v for v in values]
    bars = ax.barh(range(n), widths, height=0.6, color=colours)
    labels = []
    for d, v in zip(domains, values, strict=True):
        text = "n/a" if v is None else f"{v:.3f}"
        support = d.get("n_val")
        labels.append(f"{text}  (n = {support})" if support is not None else text)
    ax.bar_label(bars, labels=labels, padding=3, fontsize="small", bbox=_LABEL_BOX)
    if mean is not None:
        ax.axvline(
            mean, color=MEAN_COLOUR, linewidth=1.5, label=f"support-weighted mean ({mean:.3f})"
        )
    if random is not None:
        ax.axvline(
            random,
            color=RANDOM_COLOUR,
            linestyle="--",
            linewidth=1.5,
            label=f"random split ({random:.3f})",
        )
    if gap is not None and mean is not None and random is not None:
        _annotate_gap(ax, mean, random, gap, name)
    shown = [v for v in (*values, mean, random) if v is not None]
    lo, hi = min([0.0, *shown]), max([0.0, *shown])
    span = (hi - lo) or 1.0
    # room for the value labels beyond each bar's end (left of a negative bar)
    ax.set_xlim(lo - (0.35 * span if lo < 0 else 0.0), hi + (0.35 * span if hi > 0 else 0.05))
    ax.set_ylim(n - 0.5, -1.7)  # inverted: the first domain on top, the gap row above it
    ax.axvline(0.0, color="0.6", linewidth=0.8)
    direction = "higher is better" if GREATER_IS_BETTER.get(name, True) else "lower is better"
    ax.set_xlabel(plots._text(f"{name} ({direction})"))
    ax.grid(True, axis="x", alpha=0.3)
    return bars


def _annotate_gap(
    ax: Axes, mean: float, random: float, gap: tuple[float, bool | None], name: str
) -> None:
    value, over = gap
    ax.annotate(
        "",
        xy=(random, -0.85),
        xytext=(mean, -0.85),
        arrowprops={"arrowstyle": "->", "color": RANDOM_COLOUR, "linewidth": 1.2},
    )
    verdict = {True: "overestimates", False: "does not overestimate", None: ""}[over]
    text = f"random − domain = {value:+.3f}" + (f"\nrandom split {verdict}" if verdict else "")
    ax.text(
        (mean + random) / 2.0,
        -1.0,
        text,
        ha="center",
        va="bottom",
        fontsize="small",
        color=RANDOM_COLOUR if over else "0.3",
        bbox=_LABEL_BOX,
    )


def _column_label(summary: Mapping[str, Any]) -> str:
    column = summary.get("column")
    if summary.get("mode") == "time_split":
        return f"held out: {column} ≥ cutoff"
    return f"held-out domain ({column})" if column is not None else "held-out domain"


def _title(summary: Mapping[str, Any], name: str, worst: Any, title: str | None) -> str:
    run = summary.get("run_id")
    mode = _MODES.get(str(summary.get("mode")), "domain validation")
    head = (
        title
        if title is not None
        else (f"Domain validation of run {run}" if run else "Domain validation")
    )
    line = f"{mode}: {name} per held-out domain"
    if worst is not None:
        line += f"; worst domain: {worst}"
    return plots._text(f"{head}\n{line}")
