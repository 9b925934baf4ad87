"""The plot of a run's training diagnostics (``GET /v1/runs/{id}/diagnostics/plot``).

One figure, four panels on a shared epoch axis: training and validation loss, then per layer the
gradient L2 norm (log scale), the update ratio ``‖Δw‖/‖w‖`` (log scale) and the dead-unit
fraction. The verdicts that fired are listed under the title and their evidence is marked: the
overfitting window shaded, the epochs of vanishing or exploding gradients, the dead-unit epochs,
the ECE minimum, where a run diverged.

The input is the plain data of :func:`app.services.diagnostics.plot_source`. Figures and bytes
come from the shared helpers of :mod:`app.plots` (Agg canvas, no pyplot, deterministic SVG),
so the same run and rules always give the same bytes.

>>> data = {"run_id": "r", "epochs": [0, 1], "series": {"train_loss": [0.7, 0.5],
...     "val_loss": [0.7, 0.6], "grad_norm/output": [0.1, 0.05]}, "verdicts": []}
>>> render(data)[:5]
b'<?xml'
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from app import plots

__all__ = ["figure", "render"]

#: Per-layer panels below the losses: quantity, y label, log scale.
LAYER_PANELS: Final = (
    ("grad_norm", "gradient L2 norm", True),
    ("update_ratio", "update ratio ‖Δw‖/‖w‖", True),
    ("dead_frac", "dead-unit fraction", False),
)
#: The list of fired verdicts under the title wraps at this many characters.
TITLE_WIDTH: Final = 80
#: Series drawn with point markers up to this many epochs (lines only beyond).
MAX_MARKED_EPOCHS: Final = 60

_EVIDENCE: Final = "#C44E52"
_ECE: Final = "#8172B2"
_BOX: Final = {"facecolor": "white", "edgecolor": _EVIDENCE, "alpha": 0.85, "boxstyle": "round"}

FloatArray = NDArray[np.float64]
Marker = Callable[[Sequence[Axes], "_Data", Mapping[str, Any]], None]


def render(data: Mapping[str, Any], *, fmt: str = "svg", title: str | None = None) -> bytes:
    """The diagnostics plot as SVG (deterministic bytes) or PNG.

    Raises
    ------
    InvalidInput
        An unknown ``fmt``.
    """
    plots.check_format(fmt, field="format")
    return plots.save(figure(data, title), fmt)


def figure(data: Mapping[str, Any], title: str | None = None) -> Figure:
    """The unsaved figure :func:`render` draws."""
    d = _Data(data)
    fig = plots.new_figure((8.5, 10.0))
    axes: list[Axes] = list(fig.subplots(4, 1, sharex=True, height_ratios=[1.3, 1, 1, 1]))
    _losses(axes[0], d)
    colours = _colours(d.layers)
    for ax, (quantity, ylabel, log) in zip(axes[1:], LAYER_PANELS, strict=True):
        _layer_panel(ax, d, quantity, ylabel, log, colours)
    _layer_legend(fig, d.layers, colours)
    fired = [v for v in d.verdicts if v.get("triggered")]
    for verdict in fired:
        _MARKERS.get(str(verdict.get("name")), _no_marks)(axes, d, verdict)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(_title(d.run_id, title, fired))
    return fig


class _Data:
    """The plot data as arrays: epochs, series (None → NaN), layers in input-to-output order."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.run_id = str(data.get("run_id", ""))
        self.epochs = np.asarray(data.get("epochs") or [], dtype=np.float64)
        raw = data.get("series") or {}
        self.series = {str(k): _floats(v, len(self.epochs)) for k, v in raw.items()}
        self.verdicts: list[Mapping[str, Any]] = list(data.get("verdicts") or [])
        per_layer = [k.split("/", 1)[1] for k in self.series if "/" in k]
        self.layers = list(dict.fromkeys(per_layer))  # in the service's order

    def get(self, name: str) -> FloatArray:
        return self.series.get(name, np.full(len(self.epochs), np.nan))

    def at(self, name: str, epochs: Sequence[int]) -> tuple[FloatArray, FloatArray]:
        """``(epochs, values)`` of ``name`` at the given epochs, where recorded and finite."""
        index = {int(e): i for i, e in enumerate(self.epochs)}
        values = self.get(name)
        pts = [(e, values[index[e]]) for e in map(int, epochs) if e in index]
        pts = [(e, v) for e, v in pts if np.isfinite(v)]
        return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)


def _floats(values: Sequence[float | None], n: int) -> FloatArray:
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return out if out.size == n else np.full(n, np.nan)


# -- the panels -----------------------------------------------------------------------------------
def _style(n_epochs: int) -> dict[str, Any]:
    return {"marker": "." if n_epochs <= MAX_MARKED_EPOCHS else None, "linewidth": 1.2}


def _losses(ax: Axes, d: _Data) -> None:
    drawn = False
    for name, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        y = d.get(name)
        if np.isfinite(y).any():
            ax.plot(d.epochs, y, label=label, **_style(len(d.epochs)))
            drawn = True
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(loc="best", fontsize="small")
    else:
        _note(ax, "no losses recorded")


def _layer_panel(
    ax: Axes, d: _Data, quantity: str, ylabel: str, log: bool, colours: dict[str, Any]
) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    layers = [layer for layer in d.layers if np.isfinite(d.get(f"{quantity}/{layer}")).any()]
    for layer in layers:
        y = d.get(f"{quantity}/{layer}")
        ax.plot(d.epochs, y, color=colours[layer], **_style(len(d.epochs)))
    if not layers:
        _note(
            ax, "no ReLU layers recorded" if quantity == "dead_frac" else f"no {quantity} recorded"
        )
    elif log and any((d.get(f"{quantity}/{layer}") > 0).any() for layer in layers):
        ax.set_yscale("log", nonpositive="mask")  # zeros (a frozen layer) are not drawn
    elif not log:
        ax.set_ylim(-0.02, 1.02)


def _colours(layers: Sequence[str]) -> dict[str, Any]:
    """One colour per layer, the same in every panel (viridis, input dark, past 10 layers)."""
    n = len(layers)
    if n <= 10:
        return {layer: colormaps["tab10"](i) for i, layer in enumerate(layers)}
    return {layer: colormaps["viridis"](i / (n - 1)) for i, layer in enumerate(layers)}


def _layer_legend(fig: Figure, layers: Sequence[str], colours: dict[str, Any]) -> None:
    """The layers' colours, outside the panels (the first and last only when there are many)."""
    if not layers:
        return
    shown = list(layers)
    title = "layer"
    if len(shown) > plots.MAX_LEGEND_ENTRIES:
        shown, title = [shown[0], shown[-1]], f"{len(layers)} layers, input → output"
    handles = [Line2D([], [], color=colours[layer]) for layer in shown]
    labels = [plots._text(layer) for layer in shown]
    fig.legend(handles, labels, loc="outside right center", title=title, fontsize="small")


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _title(run_id: str, title: str | None, fired: Sequence[Mapping[str, Any]]) -> str:
    head = title if title is not None else f"Training diagnostics of run {run_id}"
    names = ", ".join(str(v.get("name")) for v in fired)
    line = textwrap.fill("fired: " + names, TITLE_WIDTH) if names else "no verdict fired"
    return plots._text(f"{head}\n{line}")


# -- the evidence of each verdict that fired ------------------------------------------------------
def _overfitting(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    """Shade from the validation-loss minimum to the last epoch; mark both and the final gap."""
    for e in verdict.get("evidence") or []:
        best, last = e["best_val_epoch"], e["last_epoch"]
        ax = axes[0]
        ax.axvspan(best, last, color=_EVIDENCE, alpha=0.12, linewidth=0, label="overfitting")
        ax.plot([best, last], [e["val_loss_best"], e["val_loss_last"]], "o", color=_EVIDENCE)
        ax.annotate(
            f"val − train gap {e['gap_last']:.3g}",
            (last, e["val_loss_last"]),
            xytext=(-6, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize="small",
            color=_EVIDENCE,
        )
        ax.legend(loc="best", fontsize="small")


def _layer_epochs(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any], m: str) -> None:
    """Mark each flagged layer's evidence epochs on the gradient-norm panel."""
    for e in verdict.get("evidence") or []:
        if "layer" in e:
            x, y = d.at(f"grad_norm/{e['layer']}", e.get("epochs") or [])
            keep = y > 0  # the panel is on a log scale
            axes[1].plot(x[keep], y[keep], m, color=_EVIDENCE, markersize=6, linestyle="none")


def _vanishing(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    _layer_epochs(axes, d, verdict, "v")


def _exploding(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    _layer_epochs(axes, d, verdict, "^")
    for e in verdict.get("evidence") or []:
        epoch = (e.get("diverged") or {}).get("epoch")
        if epoch is not None:
            for ax in axes:
                ax.axvline(epoch, color=_EVIDENCE, linestyle="--", linewidth=1.0)
            axes[0].text(
                epoch,
                0.98,
                f"diverged (epoch {epoch}) ",
                color=_EVIDENCE,
                transform=axes[0].get_xaxis_transform(),
                ha="right",
                va="top",
                fontsize="small",
            )


def _frozen(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    """Name the frozen layers on the update-ratio panel (a zero ratio has no log-scale point)."""
    layers = [str(e["layer"]) for e in verdict.get("evidence") or [] if "layer" in e]
    text = plots._text("frozen (update ratio 0): " + ", ".join(layers))
    axes[2].text(
        0.01, 0.04, text, transform=axes[2].transAxes, color=_EVIDENCE, fontsize="small", bbox=_BOX
    )


def _dead(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    """Mark each flagged layer's first epoch above the threshold and its last epoch."""
    for e in verdict.get("evidence") or []:
        x, y = d.at(f"dead_frac/{e['layer']}", [e["first_epoch_above"], e["last_epoch"]])
        axes[3].plot(x, y, "s", color=_EVIDENCE, markersize=6, fillstyle="none")


def _calibration(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    """A line at the validation-ECE minimum, from which calibration drifted."""
    for e in verdict.get("evidence") or []:
        axes[0].axvline(
            e["best_ece_epoch"], color=_ECE, linestyle=":", linewidth=1.2, label="ECE minimum"
        )
        axes[0].legend(loc="best", fontsize="small")


def _no_marks(axes: Sequence[Axes], d: _Data, verdict: Mapping[str, Any]) -> None:
    return None


_MARKERS: Final[dict[str, Marker]] = {
    "overfitting": _overfitting,
    "vanishing_gradients": _vanishing,
    "exploding_gradients": _exploding,
    "frozen_parameters": _frozen,
    "dead_units": _dead,
    "calibration_drift": _calibration,
}
