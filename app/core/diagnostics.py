"""Training diagnostics: verdicts, with their evidence, drawn from a run's per-epoch series.

Pure functions on the metric series a run records (``train_loss``, ``val_loss``, ``ece`` and,
per layer, ``grad_norm/<layer>``, ``grad_norm_max/<layer>``, ``grad_mean/<layer>``,
``grad_zero_frac/<layer>``, ``update_ratio/<layer>``, ``dead_frac/<layer>``): vanishing and
exploding gradients, frozen layers, dead ReLU units, overfitting, calibration drift, and the
judgement of a sanity-mode run. Every rule and threshold is a field of :class:`DiagnosticRules`
or :class:`SanityRules`; each verdict names its rule with the thresholds filled in.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput

#: Per-layer quantities, recorded as ``<quantity>/<layer>``.
LAYER_QUANTITIES = (
    "grad_norm",
    "grad_norm_max",
    "grad_mean",
    "grad_zero_frac",
    "update_ratio",
    "dead_frac",
)
#: Evidence lists at most this many epochs (the count is always complete).
MAX_LISTED_EPOCHS = 20

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DiagnosticRules:
    """Thresholds of the verdicts (the defaults are what ``GET /v1/runs/{id}/diagnostics`` uses).

    Parameters
    ----------
    vanishing_grad_norm : float > 0, default 1e-7
        A layer's epoch-mean gradient norm below this is vanishing...
    vanishing_ratio : float in (0, 1), default 1e-3
        ...and so is one below this fraction of the largest layer's norm in the same epoch.
    vanishing_min_fraction : float in (0, 1], default 0.5
        Vanishing gradients: a layer vanishing in at least this share of the epochs.
    exploding_grad_norm : float > 0, default 1e3
        Exploding gradients: a batch gradient norm (``grad_norm_max``) above this...
    exploding_growth : float > 1, default 1e3
        ...or an epoch-mean norm that grew more than this many times over the first epoch's;
        a run that failed with a non-finite loss always counts.
    frozen_update_ratio : float >= 0, default 0.0
        Frozen parameters: a layer whose ``‖Δw‖/‖w‖`` stayed at or below this in every epoch.
    dead_fraction : float in (0, 1], default 0.5
        Dead units: a ReLU layer with at least this share of units dead at the last epoch.
    patience : int >= 1, default 3
        Overfitting and calibration drift need at least this many epochs after the epoch the
        rule anchors on (the validation-loss minimum, the ECE minimum).
    min_rel_change : float in [0, 1), default 0.01
        A loss "rises" or "falls" only by more than this relative change.
    ece_rise : float > 0, default 0.02
        Calibration drift: validation ECE above its minimum by at least this (absolute).
    """

    vanishing_grad_norm: float = 1e-7
    vanishing_ratio: float = 1e-3
    vanishing_min_fraction: float = 0.5
    exploding_grad_norm: float = 1e3
    exploding_growth: float = 1e3
    frozen_update_ratio: float = 0.0
    dead_fraction: float = 0.5
    patience: int = 3
    min_rel_change: float = 0.01
    ece_rise: float = 0.02

    def __post_init__(self) -> None:
        bounds: dict[str, tuple[float, float, bool, bool]] = {
            # name: (low, high, low_open, high_open)
            "vanishing_grad_norm": (0.0, math.inf, True, True),
            "vanishing_ratio": (0.0, 1.0, True, True),
            "vanishing_min_fraction": (0.0, 1.0, True, False),
            "exploding_grad_norm": (0.0, math.inf, True, True),
            "exploding_growth": (1.0, math.inf, True, True),
            "frozen_update_ratio": (0.0, math.inf, False, True),
            "dead_fraction": (0.0, 1.0, True, False),
            "min_rel_change": (0.0, 1.0, False, True),
            "ece_rise": (0.0, 1.0, True, False),
        }
        for name, (lo, hi, lo_open, hi_open) in bounds.items():
            x = getattr(self, name)
            ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            ok = ok and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
            if not ok:
                lb, hb = "(" if lo_open else "[", ")" if hi_open else "]"
                raise InvalidInput(f"is {x!r}: must be in {lb}{lo:g}, {hi:g}{hb}", field=name)
        p = self.patience
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise InvalidInput(f"is {p!r}: must be an integer >= 1", field="patience")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- the series -----------------------------------------------------------------------------------
def _natural_key(name: str) -> tuple[Any, ...]:
    # hidden2 before hidden10; "output" after every "hidden*"
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class RunSeries:
    """Per-epoch metric values of one run, aligned on the recorded epochs (NaN where missing).

    Build it with :meth:`from_rows` from ``(name, epoch, value)`` rows, ``value`` None for an
    undefined metric.

    Examples
    --------
    >>> s = RunSeries.from_rows([("val_loss", 0, 0.9), ("val_loss", 2, 0.5), ("ece", 2, None)])
    >>> s.epochs.tolist(), s.get("val_loss").tolist()
    ([0, 2], [0.9, 0.5])
    >>> np.isnan(s.get("ece")).all(), np.isnan(s.get("absent")).all()
    (np.True_, np.True_)
    """

    epochs: NDArray[np.int64]
    values: dict[str, FloatArray] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, int, float | None]]) -> RunSeries:
        items = list(rows)
        epochs = np.array(sorted({int(step) for _, step, _ in items}), dtype=np.int64)
        index = {int(e): i for i, e in enumerate(epochs)}
        values: dict[str, FloatArray] = {}
        for name, step, value in items:
            arr = values.setdefault(name, np.full(len(epochs), np.nan))
            if value is not None and math.isfinite(value):
                arr[index[int(step)]] = float(value)
        return cls(epochs, values)

    @classmethod
    def from_mapping(cls, columns: Mapping[str, Sequence[float | None]]) -> RunSeries:
        """Columns indexed by epoch 0, 1, ... (all of the same length); for tests and callers
        that hold the history in memory."""
        rows = [(k, i, v) for k, col in columns.items() for i, v in enumerate(col)]
        return cls.from_rows(rows)

    def get(self, name: str) -> FloatArray:
        return self.values.get(name, np.full(len(self.epochs), np.nan))

    def layers(self, quantity: str = "grad_norm") -> list[str]:
        """Layer names with a ``<quantity>/<layer>`` series, input side first."""
        prefix = quantity + "/"
        found = [n[len(prefix) :] for n in self.values if n.startswith(prefix)]
        return sorted(found, key=_natural_key)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per series: count of finite values, first, last, min and max, each with its epoch."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self.values, key=_natural_key):
            v = self.values[name]
            ok = np.flatnonzero(np.isfinite(v))
            if ok.size == 0:
                out[name] = {"n": 0}
                continue

            def point(i: int, v: FloatArray = v) -> dict[str, Any]:
                return {"epoch": int(self.epochs[i]), "value": float(v[i])}

            out[name] = {
                "n": int(ok.size),
                "first": point(int(ok[0])),
                "last": point(int(ok[-1])),
                "min": point(int(ok[np.argmin(v[ok])])),
                "max": point(int(ok[np.argmax(v[ok])])),
            }
        return out


# -- verdicts -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Verdict:
    """One diagnosis: whether it fired, the rule (thresholds filled in) and the evidence."""

    name: str
    triggered: bool
    rule: str
    evidence: list[dict[str, Any]]
    applicable: bool = True
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _epochs_listed(epochs: NDArray[np.int64], mask: NDArray[np.bool_]) -> list[int]:
    return [int(e) for e in epochs[mask][:MAX_LISTED_EPOCHS]]


def _finite(*arrays: FloatArray) -> NDArray[np.bool_]:
    ok = np.ones(len(arrays[0]), dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return ok


def vanishing_gradients(series: RunSeries, rules: DiagnosticRules) -> Verdict:
    """Layers whose gradient norm is tiny, absolutely or next to the largest layer's."""
    rule = (
        f"a layer's epoch-mean gradient norm < {rules.vanishing_grad_norm:g}, or < "
        f"{rules.vanishing_ratio:g} x the largest layer's norm of the same epoch, in at least "
        f"{rules.vanishing_min_fraction:g} of the epochs"
    )
    layers = series.layers("grad_norm")
    if not layers:
        return Verdict("vanishing_gradients", False, rule, [], False, "no gradient norms recorded")
    norms = np.vstack([series.get(f"grad_norm/{layer}") for layer in layers])
    with np.errstate(all="ignore"):
        largest = np.nanmax(np.where(np.isfinite(norms), norms, -np.inf), axis=0)
    evidence = []
    for layer, g in zip(layers, norms, strict=True):
        ok = np.isfinite(g)
        n = int(ok.sum())
        if n == 0:
            continue
        ratio = np.divide(g, largest, out=np.ones_like(g), where=largest > 0)
        low = ok & ((g < rules.vanishing_grad_norm) | (ratio < rules.vanishing_ratio))
        if low.sum() >= max(1, math.ceil(rules.vanishing_min_fraction * n)):
            last = int(np.flatnonzero(ok)[-1])
            evidence.append(
                {
                    "layer": layer,
                    "n_epochs": int(low.sum()),
                    "of_epochs": n,
                    "epochs": _epochs_listed(series.epochs, low),
                    "last_epoch": int(series.epochs[last]),
                    "grad_norm": float(g[last]),
                    "ratio_to_largest": float(ratio[last]),
                }
            )
    return Verdict("vanishing_gradients", bool(evidence), rule, evidence)


def exploding_gradients(
    series: RunSeries, rules: DiagnosticRules, failure: Mapping[str, Any] | None = None
) -> Verdict:
    """Huge or fast-growing gradient norms, or a run that diverged (non-finite loss)."""
    rule = (
        f"a batch gradient norm > {rules.exploding_grad_norm:g}, or an epoch-mean norm more "
        f"than {rules.exploding_growth:g} x its first epoch's, or a non-finite loss"
    )
    evidence: list[dict[str, Any]] = []
    if failure is not None and failure.get("kind") == "non_finite":
        evidence.append({"diverged": dict(failure)})
    for layer in series.layers("grad_norm"):
        g = series.get(f"grad_norm/{layer}")
        gmax = series.get(f"grad_norm_max/{layer}")
        gmax = np.where(np.isfinite(gmax), gmax, g)
        big = np.isfinite(gmax) & (gmax > rules.exploding_grad_norm)
        ok = np.flatnonzero(np.isfinite(g))
        growth = np.zeros_like(g)
        if ok.size and g[ok[0]] > 0:
            growth[ok] = g[ok] / g[ok[0]]
        grew = growth > rules.exploding_growth
        hit = big | grew
        if hit.any():
            worst = int(np.nanargmax(np.where(np.isfinite(gmax), gmax, -np.inf)))
            evidence.append(
                {
                    "layer": layer,
                    "n_epochs": int(hit.sum()),
                    "epochs": _epochs_listed(series.epochs, hit),
                    "max_grad_norm": float(gmax[worst]),
                    "max_at_epoch": int(series.epochs[worst]),
                    "growth_over_first_epoch": float(growth.max()),
                }
            )
    return Verdict("exploding_gradients", bool(evidence), rule, evidence)


def frozen_parameters(series: RunSeries, rules: DiagnosticRules) -> Verdict:
    """Layers whose weights never changed (update ratio at or below the threshold throughout)."""
    rule = f"a layer's update ratio ||dw||/||w|| <= {rules.frozen_update_ratio:g} in every epoch"
    layers = series.layers("update_ratio")
    if not layers:
        return Verdict("frozen_parameters", False, rule, [], False, "no update ratios recorded")
    evidence = []
    for layer in layers:
        r = series.get(f"update_ratio/{layer}")
        ok = np.isfinite(r)
        if ok.any() and bool(np.all(r[ok] <= rules.frozen_update_ratio)):
            zeros = series.get(f"grad_zero_frac/{layer}")
            evidence.append(
                {
                    "layer": layer,
                    "n_epochs": int(ok.sum()),
                    "max_update_ratio": float(r[ok].max()),
                    "grad_zero_frac_last": _last(zeros),
                    "grad_norm_last": _last(series.get(f"grad_norm/{layer}")),
                }
            )
    return Verdict("frozen_parameters", bool(evidence), rule, evidence)


def dead_units(series: RunSeries, rules: DiagnosticRules) -> Verdict:
    """ReLU layers with a large share of units that output 0 on the whole validation batch."""
    rule = f"a ReLU layer with >= {rules.dead_fraction:g} of its units dead at the last epoch"
    layers = series.layers("dead_frac")
    if not layers:
        return Verdict("dead_units", False, rule, [], False, "no ReLU layers recorded")
    evidence = []
    for layer in layers:
        d = series.get(f"dead_frac/{layer}")
        ok = np.flatnonzero(np.isfinite(d))
        if ok.size == 0 or d[ok[-1]] < rules.dead_fraction:
            continue
        above = np.isfinite(d) & (d >= rules.dead_fraction)
        evidence.append(
            {
                "layer": layer,
                "dead_frac": float(d[ok[-1]]),
                "last_epoch": int(series.epochs[ok[-1]]),
                "first_epoch_above": int(series.epochs[np.argmax(above)]),
                "first_value": float(d[ok[0]]),
            }
        )
    return Verdict("dead_units", bool(evidence), rule, evidence)


def _last(v: FloatArray) -> float | None:
    ok = np.flatnonzero(np.isfinite(v))
    return float(v[ok[-1]]) if ok.size else None


def overfitting(series: RunSeries, rules: DiagnosticRules) -> Verdict:
    """Training loss falling while validation loss rises after its minimum; reports the gap."""
    rc = rules.min_rel_change
    rule = (
        f"at least {rules.patience} epochs after the validation-loss minimum, the validation "
        f"loss ends more than {rc:g} (relative) above that minimum while the training loss "
        f"ends more than {rc:g} below its value at the minimum"
    )
    train, val = series.get("train_loss"), series.get("val_loss")
    ok = _finite(train, val)
    if ok.sum() < 2:
        return Verdict("overfitting", False, rule, [], False, "fewer than 2 epochs with losses")
    epochs, t, v = series.epochs[ok], train[ok], val[ok]
    b = int(np.argmin(v))
    after = len(v) - 1 - b
    rising = v[-1] > v[b] * (1 + rc) if v[b] >= 0 else v[-1] > v[b] + abs(v[b]) * rc
    falling = t[-1] < t[b] * (1 - rc) if t[b] >= 0 else t[-1] < t[b] - abs(t[b]) * rc
    triggered = after >= rules.patience and bool(rising) and bool(falling)
    evidence = [
        {
            "best_val_epoch": int(epochs[b]),
            "last_epoch": int(epochs[-1]),
            "epochs_since_best": after,
            "val_loss_best": float(v[b]),
            "val_loss_last": float(v[-1]),
            "train_loss_at_best": float(t[b]),
            "train_loss_last": float(t[-1]),
            "gap_at_best": float(v[b] - t[b]),
            "gap_last": float(v[-1] - t[-1]),
        }
    ]
    return Verdict("overfitting", triggered, rule, evidence)


def calibration_drift(series: RunSeries, rules: DiagnosticRules) -> Verdict:
    """Validation ECE rising from its minimum while the validation loss keeps falling."""
    rc = rules.min_rel_change
    rule = (
        f"at least {rules.patience} epochs after the validation-ECE minimum, ECE ends at least "
        f"{rules.ece_rise:g} above it while the validation loss ends more than {rc:g} "
        "(relative) below its value at that epoch"
    )
    ece, val = series.get("ece"), series.get("val_loss")
    ok = _finite(ece, val)
    if ok.sum() < 2:
        note = "no validation ECE recorded (regression, or fewer than 2 epochs)"
        return Verdict("calibration_drift", False, rule, [], False, note)
    epochs, e, v = series.epochs[ok], ece[ok], val[ok]
    b = int(np.argmin(e))
    after = len(e) - 1 - b
    falling = v[-1] < v[b] * (1 - rc) if v[b] >= 0 else v[-1] < v[b] - abs(v[b]) * rc
    triggered = after >= rules.patience and e[-1] - e[b] >= rules.ece_rise and bool(falling)
    evidence = [
        {
            "best_ece_epoch": int(epochs[b]),
            "last_epoch": int(epochs[-1]),
            "ece_best": float(e[b]),
            "ece_last": float(e[-1]),
            "val_loss_at_best_ece": float(v[b]),
            "val_loss_last": float(v[-1]),
        }
    ]
    return Verdict("calibration_drift", triggered, rule, evidence)


def diagnose(
    series: RunSeries,
    rules: DiagnosticRules | None = None,
    *,
    failure: Mapping[str, Any] | None = None,
) -> list[Verdict]:
    """Every verdict, in a fixed order. ``failure`` is the run's divergence record, if any
    (``{"kind": "non_finite", "epoch", "batch", "layer", "loss"}``)."""
    rules = rules or DiagnosticRules()
    return [
        vanishing_gradients(series, rules),
        exploding_gradients(series, rules, failure),
        frozen_parameters(series, rules),
        dead_units(series, rules),
        overfitting(series, rules),
        calibration_drift(series, rules),
    ]


# -- sanity mode ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SanityRules:
    """Pass/fail threshold of sanity mode and the rules that pick the likely causes.

    Parameters
    ----------
    classification_max_loss : float, default 0.05
        Classification passes when the last epoch's training data loss is at most this.
    regression_max_fraction : float, default 0.01
        Regression passes when the last epoch's training loss is at most this fraction of the
        subset's baseline loss (that of predicting the subset's mean: its variance for MSE).
    low_lr_update_ratio : float, default 1e-3
        "Learning rate too low" when the median per-epoch update ratio over layers and epochs
        is below this and the loss fell by less than ``stalled_drop``.
    stalled_drop : float, default 0.1
        The loss fell by less than this fraction of its first value: it barely moved.
    plateau_window : float, default 0.2
        The final share of the epochs in which "still falling" vs "plateaued" is judged...
    plateau_rel_change : float, default 0.02
        ...by whether the loss fell by more than this relative change over that window.
    """

    classification_max_loss: float = 0.05
    regression_max_fraction: float = 0.01
    low_lr_update_ratio: float = 1e-3
    stalled_drop: float = 0.1
    plateau_window: float = 0.2
    plateau_rel_change: float = 0.02


def constant_baseline(loss: str, y: NDArray[Any], delta: float = 1.0) -> float:
    """Regression loss of predicting the mean of ``y`` for every row (``mse``: the variance).

    >>> constant_baseline("mse", np.array([1.0, 3.0]))
    1.0
    >>> constant_baseline("huber", np.array([0.0, 4.0]), delta=1.0)
    1.5
    """
    r = np.abs(np.asarray(y, dtype=np.float64) - np.mean(y))
    if loss == "huber":
        return float(np.mean(np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))))
    return float(np.mean(r**2))


def judge_sanity(
    task: str,
    train_loss: Sequence[float],
    *,
    verdicts: Sequence[Verdict] = (),
    update_ratios: Sequence[float] = (),
    baseline: float | None = None,
    conflicting_rows: int = 0,
    failure: Mapping[str, Any] | None = None,
    rules: SanityRules | None = None,
) -> dict[str, Any]:
    """Pass/fail of a sanity-mode run and, when it fails, the likely causes with evidence.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    train_loss : sequence of float
        Per-epoch mean training data loss (the penalties are off in sanity mode).
    verdicts : sequence of Verdict
        :func:`diagnose` on the run's series; fired ones become causes.
    update_ratios : sequence of float
        Every per-layer, per-epoch update ratio, for the "learning rate too low" rule.
    baseline : float, optional
        Regression: loss of predicting the subset mean (:func:`constant_baseline`).
    conflicting_rows : int
        Subset rows whose features equal another row's but whose label differs: no model can
        memorize them.
    failure : mapping, optional
        The divergence record of a run that stopped on a non-finite loss.
    rules : SanityRules, optional

    Returns
    -------
    dict
        ``passed``, ``criterion``, ``threshold``, the initial/final/min losses, the first epoch
        at or below the threshold, and ``causes`` (a list of ``{"cause", "detail"}``, empty on
        a pass).

    Examples
    --------
    >>> judge_sanity("binary", [0.7, 0.2, 0.01])["passed"]
    True
    >>> [c["cause"] for c in judge_sanity("binary", [0.7, 0.69, 0.69], update_ratios=[1e-7])[
    ...     "causes"]]
    ['lr_too_low']
    """
    rules = rules or SanityRules()
    losses = np.asarray([x for x in train_loss if x is not None and math.isfinite(x)], float)
    if task == "regression":
        base = baseline if baseline is not None and baseline > 0 else None
        threshold = None if base is None else rules.regression_max_fraction * base
        criterion = (
            f"final training loss <= {rules.regression_max_fraction:g} x the loss of predicting "
            "the subset mean"
        )
    else:
        threshold = rules.classification_max_loss
        criterion = f"final training loss <= {rules.classification_max_loss:g}"
    out: dict[str, Any] = {"criterion": criterion, "threshold": threshold, "baseline": baseline}
    if losses.size:
        below = np.flatnonzero(losses <= threshold) if threshold is not None else np.array([])
        out.update(
            initial_train_loss=float(losses[0]),
            final_train_loss=float(losses[-1]),
            min_train_loss=float(losses.min()),
            first_epoch_below=int(below[0]) if below.size else None,
        )
    final = float(losses[-1]) if losses.size else math.inf
    if threshold is None:
        # a constant target: any model fits it; nothing to learn is not a failure
        passed = failure is None and losses.size > 0
    else:
        passed = failure is None and final <= threshold
    out["passed"] = bool(passed)
    out["causes"] = (
        []
        if passed
        else _sanity_causes(losses, verdicts, update_ratios, conflicting_rows, failure, rules)
    )
    return out


def _sanity_causes(
    losses: FloatArray,
    verdicts: Sequence[Verdict],
    update_ratios: Sequence[float],
    conflicting_rows: int,
    failure: Mapping[str, Any] | None,
    rules: SanityRules,
) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []

    def add(cause: str, detail: str) -> None:
        causes.append({"cause": cause, "detail": detail})

    fired = {v.name: v for v in verdicts if v.triggered}
    if failure is not None:
        add(
            "lr_too_high",
            f"training diverged (non-finite loss) at epoch {failure.get('epoch')}, batch "
            f"{failure.get('batch')}: lower the learning rate or set grad_clip_norm",
        )
    elif losses.size >= 2:
        first, last, low = losses[0], losses[-1], losses.min()
        drop = (first - last) / first if first > 0 else 0.0
        ratios = np.asarray([r for r in update_ratios if r is not None and math.isfinite(r)])
        median_ratio = float(np.median(ratios)) if ratios.size else None
        if last > 1.5 * low or "exploding_gradients" in fired:
            add(
                "lr_too_high",
                f"the loss went back up (min {low:.4g}, final {last:.4g}) or the gradients "
                "exploded: lower the learning rate",
            )
        elif drop < rules.stalled_drop:
            if median_ratio is not None and median_ratio < rules.low_lr_update_ratio:
                add(
                    "lr_too_low",
                    f"the loss fell by {drop:.1%} (from {first:.4g} to {last:.4g}) and the median "
                    f"update ratio ||dw||/||w|| per epoch is {median_ratio:.2g} "
                    f"(< {rules.low_lr_update_ratio:g}): raise the learning rate",
                )
            else:
                add(
                    "not_learning",
                    f"the loss fell by {drop:.1%} although the weights move: check that the "
                    "labels line up with the rows and that the loss suits the task",
                )
        else:
            n = max(2, math.ceil(rules.plateau_window * losses.size))
            window = losses[-n:]
            rel = (window[0] - window[-1]) / window[0] if window[0] > 0 else 0.0
            if rel > rules.plateau_rel_change:
                add(
                    "too_few_epochs",
                    f"the loss was still falling ({rel:.1%} over the last {n} epochs, final "
                    f"{last:.4g}): raise sanity_check.epochs or the learning rate",
                )
            else:
                add(
                    "model_too_small_or_label_noise",
                    f"the loss plateaued at {last:.4g} (fell {rel:.1%} over the last {n} "
                    "epochs): the model may be too small to memorize the subset, or the labels "
                    "are noisy or inconsistent",
                )
    if conflicting_rows:
        add(
            "data_errors",
            f"{conflicting_rows} subset rows repeat another row's features with a different "
            "label: no model can fit them",
        )
    for name, cause, advice in (
        ("frozen_parameters", "frozen_layers", "their weights never changed"),
        ("vanishing_gradients", "vanishing_gradients", "saturating activations, depth or init"),
        ("dead_units", "dead_units", "dead ReLUs: lower the learning rate or change the init"),
    ):
        if name in fired:
            layers = [e.get("layer") for e in fired[name].evidence if "layer" in e]
            add(cause, f"layers {layers}: {advice}")
    return causes
