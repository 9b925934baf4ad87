"""The plot of data checks (``GET /v1/runs/{id}/data-checks/plot``, ``POST /v1/data-checks/plot``).

One figure from the result of :func:`app.core.data_checks.compare` (as served by the JSON
endpoints), in up to three panels:

- drift: one horizontal bar per feature, its PSI, sorted from the largest down; the features
  the checks flag as ``drifted`` (KS or chi-square p < 0.01, or PSI ≥ 0.25) in red, the PSI
  0.25 rule as a dashed line, and each bar annotated with its PSI and its KS or chi-square
  p-value. At most :data:`MAX_FEATURES` bars (the largest PSI), which the panel title says;
  a feature without a PSI (no values on a side) is drawn last with a zero-length bar;
- class frequencies: training and validation share of each class side by side (absent when
  the checks have no classes: regression, or datasets without a classification target);
- a text box: the drifted count, the validation rows (or images) equal to a training one,
  and the leakage suspects, or "none".

The function is pure: it reads the checks dict only. Figures and bytes come from the shared
helpers of :mod:`app.plots` (Agg canvas, no pyplot, deterministic SVG).

>>> checks = {"features": [{"name": "a", "drift": {"test": "ks", "p_value": 0.5, "psi": 0.01}}],
...     "drifted": [], "classes": None, "duplicates": None, "leakage_suspects": []}
>>> render(checks)[:5]
b'<?xml'
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from app import plots
from app.core.data_checks import LEAK_AUC, PSI_DRIFT
from app.errors import InvalidInput

__all__ = ["MAX_CLASSES", "MAX_FEATURES", "MAX_SUSPECTS", "figure", "render"]

#: Drift bars drawn at most: the features of largest PSI (the checks themselves hold all).
MAX_FEATURES: Final = 40
#: Classes drawn at most in the class-frequency panel: those of largest share.
MAX_CLASSES: Final = 30
#: Leakage suspects named at most in the text box.
MAX_SUSPECTS: Final = 10
#: The text box wraps at this many characters.
TEXT_WIDTH: Final = 110

DRIFTED_COLOUR: Final = "#C44E52"
STABLE_COLOUR: Final = "#4C72B0"
VALIDATION_COLOUR: Final = "#DD8452"
_TEST_NAMES: Final = {"ks": "KS", "chi_square": "χ²"}


def render(checks: Mapping[str, Any], *, fmt: str = "svg", title: str | None = None) -> bytes:
    """The data-checks plot as SVG (deterministic bytes) or PNG.

    Raises
    ------
    InvalidInput
        An unknown ``fmt``, or ``checks`` that are not a data-checks result.
    """
    plots.check_format(fmt, field="format")
    return plots.save(figure(checks, title), fmt)


def figure(checks: Mapping[str, Any], title: str | None = None) -> Figure:
    """The unsaved figure :func:`render` draws. Its axes are labelled (``Axes.get_label()``)
    ``"drift"``, ``"classes"`` (only when the checks have classes) and ``"summary"``."""
    if not isinstance(checks, Mapping) or not isinstance(checks.get("features"), list):
        raise InvalidInput("expected a data-checks result with a features list", field="checks")
    features = [f for f in checks["features"] if isinstance(f, Mapping)]
    drifted = {str(n) for n in checks.get("drifted") or []}
    classes = checks.get("classes") or None
    rows = _ranked(features)[:MAX_FEATURES]
    summary = _summary_lines(checks, features, drifted)

    heights = [max(2.2, 0.28 * max(len(rows), 1) + 1.3)]
    if classes:
        heights.append(3.0)
    heights.append(0.2 * len(summary) + 0.3)
    fig = plots.new_figure((9.0, sum(heights) + 0.8))
    axes: list[Axes] = list(np.atleast_1d(fig.subplots(len(heights), 1, height_ratios=heights)))
    _drift(axes[0], rows, len(features), drifted)
    if classes:
        _classes(axes[1], list(classes))
    _text_box(axes[-1], summary)
    fig.suptitle(_title(checks, title))
    return fig


# -- the panels -----------------------------------------------------------------------------------
def _psi(feature: Mapping[str, Any]) -> float | None:
    value = (feature.get("drift") or {}).get("psi")
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _ranked(features: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Largest PSI first (ties in feature order), features without a PSI last."""
    return sorted(features, key=lambda f: (_psi(f) is None, -(_psi(f) or 0.0)))


def _drift(ax: Axes, rows: Sequence[Mapping[str, Any]], n_features: int, drifted: set[str]) -> None:
    ax.set_label("drift")
    head = "Drift per feature: PSI, annotated with the KS or χ² p-value"
    if n_features > len(rows):
        shown = {str(f.get("name")) for f in rows}
        hidden = len(drifted - shown)
        head += f"\n(top {len(rows)} of {n_features} features by PSI"
        head += f"; {hidden} drifted not shown)" if hidden else ")"
    ax.set_title(head, fontsize="medium")
    ax.set_xlabel("PSI (validation vs training)")
    if not rows:
        ax.text(0.5, 0.5, "no features compared", transform=ax.transAxes, ha="center", color="0.4")
        ax.set_yticks([])
        return
    names = [str(f.get("name")) for f in rows]
    widths = [_psi(f) or 0.0 for f in rows]
    colours = [DRIFTED_COLOUR if n in drifted else STABLE_COLOUR for n in names]
    pos = np.arange(len(rows))[::-1]  # the largest on top
    ax.barh(pos, widths, color=colours, height=0.7, label="PSI")
    ax.set_yticks(pos, [plots._text(_short(n)) for n in names])
    ax.tick_params(axis="y", labelsize=max(6.0, min(10.0, 180.0 / len(rows))))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axvline(PSI_DRIFT, color="0.3", linestyle="--", linewidth=1.0)
    top = max([*widths, PSI_DRIFT])
    ax.set_xlim(0.0, 1.5 * top)  # room for the annotations
    ax.grid(True, axis="x", alpha=0.3)
    for y, width, feature in zip(pos, widths, rows, strict=True):
        ax.annotate(
            _annotation(feature),
            (width, y),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize="x-small",
        )
    handles = [
        Patch(color=DRIFTED_COLOUR, label="drifted (p < 0.01 or PSI ≥ 0.25)"),
        Patch(color=STABLE_COLOUR, label="not drifted"),
        Line2D([], [], color="0.3", linestyle="--", label=f"PSI {PSI_DRIFT:g} rule"),
    ]
    ax.legend(handles=handles, loc="best", fontsize="small")


def _annotation(feature: Mapping[str, Any]) -> str:
    drift = feature.get("drift") or {}
    psi = _psi(feature)
    test = _TEST_NAMES.get(str(drift.get("test")), str(drift.get("test")))
    return f"{_number(psi)} · {test} p = {_number(drift.get('p_value'))}"


def _classes(ax: Axes, classes: Sequence[Mapping[str, Any]]) -> None:
    ax.set_label("classes")
    n = len(classes)
    shown = list(classes)
    head = "Class frequencies"
    if n > MAX_CLASSES:  # the largest classes, in class order
        biggest = sorted(range(n), key=lambda i: -_share_max(classes[i]))[:MAX_CLASSES]
        shown = [classes[i] for i in sorted(biggest)]
        head += f" (the {MAX_CLASSES} largest of {n} classes)"
    x = np.arange(len(shown))
    train = [_share(c.get("train_share")) for c in shown]
    val = [_share(c.get("val_share")) for c in shown]
    ax.bar(x - 0.2, train, width=0.4, color=STABLE_COLOUR, label="training")
    ax.bar(x + 0.2, val, width=0.4, color=VALIDATION_COLOUR, label="validation")
    labels = [plots._text(_short(str(c.get("class")), 20)) for c in shown]
    ax.set_xticks(x, labels, rotation=90 if len(shown) > 12 else 0, fontsize="small")
    ax.set_ylabel("share of rows")
    ax.set_ylim(0.0, 1.15 * max([*train, *val, 0.01]))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(head, fontsize="medium")
    ax.legend(loc="best", fontsize="small")


def _share(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _share_max(c: Mapping[str, Any]) -> float:
    return max(_share(c.get("train_share")), _share(c.get("val_share")))


def _text_box(ax: Axes, lines: Sequence[str]) -> None:
    ax.set_label("summary")
    ax.axis("off")
    ax.text(
        0.0,
        1.0,
        plots._text("\n".join(lines)),
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize="small",
        bbox={"facecolor": "white", "edgecolor": "0.6", "boxstyle": "round"},
    )


def _summary_lines(
    checks: Mapping[str, Any], features: Sequence[Mapping[str, Any]], drifted: set[str]
) -> list[str]:
    image = checks.get("image_shape") is not None
    rows = "images" if image else "rows"
    lines = [f"Drifted: {len(drifted)} of {len(features)} features (p < 0.01 or PSI ≥ 0.25)"]
    dup = checks.get("duplicates")
    if isinstance(dup, Mapping):
        n = int(dup.get("n_val_rows_in_train") or 0)
        share = dup.get("share_of_val")
        what = "equal a training image pixel for pixel" if image else "equal a training row"
        text = f"Duplicates: {n} validation {rows} ({_percent(share)}) {what}"
        if dup.get("with_same_label") is not None:
            text += f", {int(dup['with_same_label'])} with the same label"
        lines.append(text)
    else:
        lines.append("Duplicates: not checked (no columns)")
    suspects = [s for s in checks.get("leakage_suspects") or [] if isinstance(s, Mapping)]
    if suspects:
        named = [
            f"{s.get('feature')} (class {s.get('class')}, ROC-AUC {_auc(s.get('roc_auc'))})"
            for s in suspects[:MAX_SUSPECTS]
        ]
        if len(suspects) > MAX_SUSPECTS:
            named.append(f"and {len(suspects) - MAX_SUSPECTS} more")
        text = f"Leakage suspects (alone ROC-AUC ≥ {LEAK_AUC:g}): " + ", ".join(named)
    elif checks.get("classes"):
        text = "Leakage suspects: none"
    else:
        text = "Leakage suspects: not checked (no class labels)"
    lines.append(text)
    return [w for line in lines for w in textwrap.wrap(line, TEXT_WIDTH, subsequent_indent="  ")]


def _title(checks: Mapping[str, Any], title: str | None) -> str:
    if title is not None:
        head = title
    elif checks.get("run_id") is not None:
        head = f"Data checks of run {checks['run_id']}"
    elif checks.get("train_dataset_id") is not None:
        head = (
            f"Data checks: dataset {checks['train_dataset_id']} (training) vs "
            f"{checks.get('validation_dataset_id')} (validation)"
        )
    else:
        head = "Data checks"
    rows = "images" if checks.get("image_shape") is not None else "rows"
    n_train, n_val = checks.get("n_train"), checks.get("n_validation")
    if n_train is not None and n_val is not None:
        head += f"\n{n_train} training vs {n_val} validation {rows}"
    return plots._text(head)


# -- formatting -----------------------------------------------------------------------------------
def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    x = float(value)
    return f"{x:.3g}" if np.isfinite(x) else "n/a"


def _auc(value: Any) -> str:
    """The ROC-AUC; a numeric feature that separates the class downwards says so."""
    if value is None:
        return "n/a"
    return f"{float(value):.3f}" + (", reversed" if float(value) < 0.5 else "")


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100.0 * float(value):.1f}%"


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
