"""Threshold objectives: what a recommendation optimizes, validated once, evaluated vectorized.

:class:`ThresholdObjective` is the validated request (a name and its parameters);
:func:`evaluate_objective` turns it into arrays over every candidate operating point, with NaN
wherever a value is undefined, in O(number of candidates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Final, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput

__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_PARAMETERS",
    "ObjectiveName",
    "ThresholdObjective",
]

Float = NDArray[np.float64]

ObjectiveName = Literal[
    "f1",
    "fbeta",
    "youden",
    "accuracy",
    "mcc",
    "cost",
    "precision_at_recall",
    "recall_at_precision",
    "tpr_at_fpr",
    "recall_at_ppr",
]

#: Every objective name, in documentation order.
OBJECTIVES: Final[tuple[str, ...]] = get_args(ObjectiveName)

#: The parameters each objective accepts. All are required except ``gain_tp`` and ``gain_tn``
#: of ``"cost"``, which default to 0.
OBJECTIVE_PARAMETERS: Final[dict[str, tuple[str, ...]]] = {
    "f1": (),
    "fbeta": ("beta",),
    "youden": (),
    "accuracy": (),
    "mcc": (),
    "cost": ("cost_fp", "cost_fn", "gain_tp", "gain_tn"),
    "precision_at_recall": ("min_recall",),
    "recall_at_precision": ("min_precision",),
    "tpr_at_fpr": ("max_fpr",),
    "recall_at_ppr": ("max_ppr",),
}
_OPTIONAL: Final[dict[str, float]] = {"gain_tp": 0.0, "gain_tn": 0.0}
_ALL_PARAMETERS: Final[tuple[str, ...]] = (
    "beta",
    "min_recall",
    "min_precision",
    "max_fpr",
    "max_ppr",
    "cost_fp",
    "cost_fn",
    "gain_tp",
    "gain_tn",
)
# Allowed range of each parameter: (low, low inclusive, high) with high inclusive (None: none).
_RANGES: Final[dict[str, tuple[float, bool, float | None]]] = {
    "beta": (0.0, False, None),
    "min_recall": (0.0, False, 1.0),
    "min_precision": (0.0, False, 1.0),
    "max_fpr": (0.0, True, 1.0),
    "max_ppr": (0.0, False, 1.0),
    "cost_fp": (0.0, True, None),
    "cost_fn": (0.0, True, None),
    "gain_tp": (0.0, True, None),
    "gain_tn": (0.0, True, None),
}

# The class totals each objective needs to be defined anywhere.
_NEEDS_POSITIVES: Final = frozenset(
    {"f1", "fbeta", "youden", "mcc", "precision_at_recall", "recall_at_precision"}
    | {"tpr_at_fpr", "recall_at_ppr"}
)
_NEEDS_NEGATIVES: Final = frozenset({"youden", "mcc", "tpr_at_fpr"})

# Constrained objectives: (parameter, constrained metric, "min" = metric >= bound, "max" = <=).
_CONSTRAINTS: Final[dict[str, tuple[str, str, Literal["min", "max"]]]] = {
    "precision_at_recall": ("min_recall", "recall", "min"),
    "recall_at_precision": ("min_precision", "precision", "min"),
    "tpr_at_fpr": ("max_fpr", "FPR", "max"),
    "recall_at_ppr": ("max_ppr", "predicted-positive rate", "max"),
}
_TITLES: Final[dict[str, str]] = {
    "f1": "F1",
    "fbeta": "F-beta",
    "youden": "Youden's J",
    "accuracy": "accuracy",
    "mcc": "MCC",
    "cost": "cost",
    "precision_at_recall": "precision",
    "recall_at_precision": "recall",
    "tpr_at_fpr": "TPR",
    "recall_at_ppr": "recall",
}


@dataclass(frozen=True, slots=True)
class ThresholdObjective:
    """What to optimize over the decision thresholds, with its parameters (validated).

    - ``"f1"``: maximize F1.
    - ``"fbeta"``: maximize F-beta (``beta``).
    - ``"youden"``: maximize Youden's J = TPR - FPR.
    - ``"accuracy"``: maximize accuracy.
    - ``"mcc"``: maximize the Matthews correlation coefficient.
    - ``"cost"``: minimize the average cost per row (``cost_fp``, ``cost_fn``, optional
      ``gain_tp``, ``gain_tn``).
    - ``"precision_at_recall"``: maximize precision subject to recall >= ``min_recall``.
    - ``"recall_at_precision"``: maximize recall subject to precision >= ``min_precision``.
    - ``"tpr_at_fpr"``: maximize TPR (recall) subject to FPR <= ``max_fpr``.
    - ``"recall_at_ppr"``: maximize recall subject to predicted-positive rate <= ``max_ppr``
      (an alert budget: flag at most that share of the rows).

    Parameters
    ----------
    name : str
        One of :data:`OBJECTIVES`.
    beta : float
        ``fbeta`` only; ``beta > 0`` with ``beta**2`` a positive finite float. Recall weighs
        ``beta`` times as much as precision.
    min_recall, min_precision : float in (0, 1]
    max_fpr : float in [0, 1]
        0 asks for no false positive at all (always feasible: "predict none" has FPR 0).
    max_ppr : float in (0, 1]
        The share of the (weighted) rows that may be flagged positive.
    cost_fp, cost_fn : float >= 0
        Cost of a false positive / false negative (per unit of sample weight).
    gain_tp, gain_tn : float >= 0, default 0
        Benefit of a true positive / true negative. The cost objective's value is

        .. math:: \\frac{c_{FP} FP + c_{FN} FN - g_{TP} TP - g_{TN} TN}{W}

        with ``W`` the total weight (the number of rows without weights): the average cost
        per row, so values compare across batch sizes. Lower is better. Not all four may be 0.

    Raises
    ------
    InvalidInput
        An unknown name (field ``"objective"``); a missing, extraneous, non-numeric or
        out-of-range parameter (the field is the parameter's name).

    Examples
    --------
    >>> ThresholdObjective("fbeta", beta=2).params
    {'beta': 2.0}
    >>> ThresholdObjective("cost", cost_fp=1, cost_fn=5).params
    {'cost_fp': 1.0, 'cost_fn': 5.0, 'gain_tp': 0.0, 'gain_tn': 0.0}
    >>> ThresholdObjective("recall_at_precision", min_precision=1.5)
    Traceback (most recent call last):
    ...
    app.errors.InvalidInput: min_precision: is 1.5; must lie in (0, 1]
    """

    name: ObjectiveName
    beta: float | None = None
    min_recall: float | None = None
    min_precision: float | None = None
    max_fpr: float | None = None
    max_ppr: float | None = None
    cost_fp: float | None = None
    cost_fn: float | None = None
    gain_tp: float | None = None
    gain_tn: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in OBJECTIVES:
            raise InvalidInput(
                f"is {self.name!r}; expected one of {list(OBJECTIVES)}", field="objective"
            )
        accepted = OBJECTIVE_PARAMETERS[self.name]
        for param in _ALL_PARAMETERS:
            if param not in accepted and getattr(self, param) is not None:
                takes = ", ".join(accepted) if accepted else "no parameters"
                raise InvalidInput(
                    f"does not apply to objective {self.name!r} (it takes {takes})", field=param
                )
        for param in accepted:
            value = getattr(self, param)
            if value is None and param not in _OPTIONAL:
                raise InvalidInput(f"is required by objective {self.name!r}", field=param)
            value = _OPTIONAL[param] if value is None else _check_param(param, value)
            object.__setattr__(self, param, value)
        if self.name == "fbeta":
            b2 = self.beta * self.beta  # type: ignore[operator]
            if not (b2 > 0.0 and math.isfinite(b2)):
                raise InvalidInput(
                    f"is {self.beta!r}; beta**2 must be a positive finite float", field="beta"
                )
        if self.name == "cost" and self.scale == 0.0:
            raise InvalidInput(
                "cost_fp, cost_fn, gain_tp and gain_tn are all 0: every threshold costs 0",
                field="cost_fp",
            )

    @property
    def params(self) -> dict[str, float]:
        """The parameters (defaults filled in), in :data:`OBJECTIVE_PARAMETERS` order."""
        return {p: getattr(self, p) for p in OBJECTIVE_PARAMETERS[self.name]}

    @property
    def constrained(self) -> bool:
        """True for the four "maximize X subject to Y" objectives."""
        return self.name in _CONSTRAINTS

    @property
    def scale(self) -> float:
        """The objective value's unit for tie tolerances: 1, or the largest cost coefficient."""
        if self.name != "cost":
            return 1.0
        return max(c or 0.0 for c in (self.cost_fp, self.cost_fn, self.gain_tp, self.gain_tn))

    def undefined_reason(self, n_pos: float, n_neg: float, weighted: bool = False) -> str | None:
        """Why the objective is undefined at every threshold of a batch, or None."""
        suffix = " (with non-zero weight)" if weighted else ""
        title = _TITLES[self.name]
        if self.constrained:
            title = f"{title} subject to {constraint_text(self)}"
        if n_pos <= 0 and self.name in _NEEDS_POSITIVES:
            return f"{title} is undefined: y_true has no positive samples{suffix}"
        if n_neg <= 0 and self.name in _NEEDS_NEGATIVES:
            return f"{title} is undefined: y_true has no negative samples{suffix}"
        return None


def _check_param(param: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInput(f"is {value!r}; must be a number", field=param)
    x = float(value)
    if not math.isfinite(x):
        raise InvalidInput(f"is {x!r}; must be finite", field=param)
    low, low_inclusive, high = _RANGES[param]
    below = x < low if low_inclusive else x <= low
    if below or (high is not None and x > high):
        if high is None:
            want = f"be {'>=' if low_inclusive else '>'} {low:g}"
        else:
            want = f"lie in {'[' if low_inclusive else '('}{low:g}, {high:g}]"
        raise InvalidInput(f"is {x!r}; must {want}", field=param)
    return x


def as_objective(
    objective: str | ThresholdObjective, params: Mapping[str, object]
) -> ThresholdObjective:
    """A :class:`ThresholdObjective` from a name and keyword parameters, or one given whole."""
    if isinstance(objective, ThresholdObjective):
        if params:
            raise InvalidInput(
                "parameters go inside the ThresholdObjective when one is given",
                field=next(iter(params)),
            )
        return objective
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise InvalidInput(
            f"is {objective!r}; expected one of {list(OBJECTIVES)}", field="objective"
        )
    for param in params:
        if param not in _ALL_PARAMETERS:
            raise InvalidInput(
                f"is not a parameter of any objective (known: {list(_ALL_PARAMETERS)})",
                field=param,
            )
    return ThresholdObjective(objective, **params)  # type: ignore[arg-type]


# -- vectorized evaluation ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectiveArrays:
    """An objective over the candidate operating points (arrays of shape (m + 1,)).

    ``value`` is the reported objective value (the cost for ``"cost"``, the maximized metric
    for the constrained objectives), NaN where undefined; ``goal`` is maximized (``value`` or
    ``-value``). Constrained objectives also carry ``violation`` (by how much the constraint
    is missed, <= 0 where met, NaN where the constrained metric is undefined) and ``secondary``
    (the tie-break among equal goals, maximized; NaN where undefined).
    """

    value: Float
    goal: Float
    violation: Float | None = None
    secondary: Float | None = None


def _ratio(num: Float, den: Float | float) -> Float:
    """``num / den`` with NaN where ``den == 0`` (no warning)."""
    if isinstance(den, float):
        return num / den if den > 0 else np.full(num.shape, np.nan)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def evaluate_objective(
    objective: ThresholdObjective, tp: Float, fp: Float, n_pos: float, n_neg: float
) -> ObjectiveArrays:
    """The objective at every candidate, from (weighted) ``tp`` and ``fp`` and the class totals.

    The caller has checked :meth:`ThresholdObjective.undefined_reason` (so the needed totals
    are positive). Formulas, with ``P``, ``N`` the class totals, ``W = P + N``, ``FN = P - TP``
    and ``TN = N - FP``:

    - F-beta: ``(1 + β²) TP / ((1 + β²) TP + β² FN + FP)``, computed as
      ``TP / (a (TP + FP) + c P)`` with ``a = 1 / (1 + β²)``, ``c = β² / (1 + β²)`` (no overflow
      for extreme β; exact for β = 1). Defined everywhere when ``P > 0``.
    - Youden's J: ``TP / P - FP / N``.
    - accuracy: ``(TP + TN) / W``.
    - MCC: ``(TP·TN - FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))`` on counts divided by ``W``
      (no overflow); undefined where nothing or everything is predicted positive.
    - cost: see :class:`ThresholdObjective`.
    - precision ``TP / (TP + FP)`` is undefined where nothing is predicted positive; recall
      (TPR) ``TP / P``; FPR ``FP / N``; predicted-positive rate ``(TP + FP) / W``.
    """
    name = objective.name
    total = n_pos + n_neg
    if name in ("f1", "fbeta"):
        b2 = 1.0 if name == "f1" else objective.beta**2  # type: ignore[operator]
        a, c = 1.0 / (1.0 + b2), b2 / (1.0 + b2)
        value = tp / (a * (tp + fp) + c * n_pos)
        return ObjectiveArrays(value, value)
    if name == "youden":
        value = tp / n_pos - fp / n_neg
        return ObjectiveArrays(value, value)
    if name == "accuracy":
        value = (tp + (n_neg - fp)) / total
        return ObjectiveArrays(value, value)
    if name == "mcc":
        p, n = n_pos / total, n_neg / total
        predicted = (tp + fp) / total
        rest = (total - (tp + fp)) / total
        num = (tp / total) * n - (fp / total) * p
        value = _ratio(num, np.sqrt(predicted * rest * (p * n)))
        return ObjectiveArrays(value, value)
    if name == "cost":
        cost = objective.cost_fp * fp + objective.cost_fn * (n_pos - tp)  # type: ignore[operator]
        cost -= objective.gain_tp * tp + objective.gain_tn * (n_neg - fp)  # type: ignore[operator]
        cost /= total
        return ObjectiveArrays(cost, -cost)
    recall = tp / n_pos if n_pos > 0 else np.full(tp.shape, np.nan)
    bound = getattr(objective, _CONSTRAINTS[name][0])
    if name == "precision_at_recall":
        precision = _ratio(tp, tp + fp)
        return ObjectiveArrays(precision, precision, bound - recall, recall)
    if name == "recall_at_precision":
        precision = _ratio(tp, tp + fp)
        return ObjectiveArrays(recall, recall, bound - precision, precision)
    if name == "tpr_at_fpr":
        fpr = fp / n_neg
        return ObjectiveArrays(recall, recall, fpr - bound, -fpr)
    ppr = (tp + fp) / total  # recall_at_ppr
    return ObjectiveArrays(recall, recall, ppr - bound, -ppr)


def constraint_text(objective: ThresholdObjective) -> str:
    """The constraint in words, e.g. ``"precision >= 0.9"`` (constrained objectives only)."""
    param, metric, sense = _CONSTRAINTS[objective.name]
    return f"{metric} {'>=' if sense == 'min' else '<='} {getattr(objective, param):g}"


def closest_text(objective: ThresholdObjective, violation: float) -> str:
    """The closest point of an infeasible constraint in words, from its violation there."""
    param, metric, sense = _CONSTRAINTS[objective.name]
    bound = getattr(objective, param)
    reached = bound - violation if sense == "min" else bound + violation
    return f"the {'highest' if sense == 'min' else 'lowest'} {metric} reached, {reached:.6g}"
