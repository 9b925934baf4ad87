"""Plots of inspection results: importance bars with error bars, attribution bars, metric vs
perturbation level. Drawn like :mod:`app.plots` (a Figure on an Agg canvas, no pyplot;
deterministic SVG), from the stored result (plain JSON).

Each inspection kind names its drawer in :data:`DRAWERS` (kind → ``draw(result, title)``);
another kind adds its own with :func:`register_drawer`.

>>> res = {"metric": "roc_auc", "features": [{"name": "a", "mean": 0.3, "std": 0.05}]}
>>> render("importance", res)[:5]
b'<?xml'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from matplotlib.figure import Figure

from app import plots
from app.errors import InvalidInput

Drawer = Callable[[Mapping[str, Any], str | None], Figure]
DRAWERS: dict[str, Drawer] = {}
#: Bars drawn at most (the largest ones); the result itself holds every feature.
MAX_BARS = 40


def register_drawer(kind: str, draw: Drawer) -> None:
    DRAWERS[kind] = draw


def render(
    kind: str, result: Mapping[str, Any], *, fmt: str = "svg", title: str | None = None
) -> bytes:
    """The plot of an inspection result as SVG or PNG bytes.

    Raises
    ------
    InvalidInput
        No drawer for ``kind``, or an unknown ``fmt``.
    """
    plots.check_format(fmt, field="format")
    draw = DRAWERS.get(kind)
    if draw is None:
        raise InvalidInput(f"inspections of kind {kind!r} have no plot", field="kind")
    return plots.save(draw(result, title), fmt)


def _figure(n_bars: int) -> tuple[Figure, Any]:
    fig = plots.new_figure((7.0, max(3.0, 0.3 * n_bars + 1.5)))
    return fig, fig.add_subplot()


def _bars(
    names: list[str], values: list[float], errors: list[float] | None, xlabel: str, title: str
) -> Figure:
    fig, ax = _figure(len(names))
    pos = list(range(len(names)))[::-1]  # the first (largest) on top
    ax.barh(pos, values, xerr=errors, color="#4C72B0", ecolor="0.2", capsize=3)
    ax.set_yticks(pos, names)
    ax.axvline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _importance(result: Mapping[str, Any], title: str | None) -> Figure:
    rows = list(result.get("features") or [])[:MAX_BARS]
    return _bars(
        [str(r["name"]) for r in rows],
        [r["mean"] or 0.0 for r in rows],
        [r["std"] or 0.0 for r in rows],
        f"drop in {result.get('metric', 'score')} when permuted (mean ± std over repeats)",
        title or "Permutation importance",
    )


def _attributions(result: Mapping[str, Any], title: str | None) -> Figure:
    rows = list(result.get("features") or [])[:MAX_BARS]
    return _bars(
        [str(r["name"]) for r in rows],
        [r["mean_abs"] or 0.0 for r in rows],
        None,
        "mean |attribution| over the posted rows",
        title or f"Attributions ({result.get('method', '')})",
    )


def _robustness(result: Mapping[str, Any], title: str | None) -> Figure:
    fig = plots.new_figure((7.0, 4.5))
    ax = fig.add_subplot()
    clean = result.get("clean")
    for name, fam in (result.get("families") or {}).items():
        pts = [(lv, v) for lv, v in zip(fam["levels"], fam["values"], strict=True) if v is not None]
        pts.sort()
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)[0]
        bp = fam.get("breaking_point")
        if bp is not None:
            ax.axvline(bp["level"], color=line.get_color(), linestyle=":", linewidth=1.0)
    if clean is not None:
        ax.axhline(clean, color="0.5", linestyle="--", linewidth=1.0, label="clean")
    if result.get("floor") is not None:
        ax.axhline(result["floor"], color="#C44E52", linewidth=1.0, label="floor")
    ax.set_xlabel("perturbation level")
    ax.set_ylabel(str(result.get("metric", "metric")))
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "Metric vs perturbation level")
    return fig


register_drawer("importance", _importance)
register_drawer("attributions", _attributions)
register_drawer("robustness", _robustness)
