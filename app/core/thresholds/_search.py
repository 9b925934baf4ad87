"""The threshold search over one :class:`~app.core.curves.BinaryRanking`, and its result types.

Candidates are "predict none" followed by the ranking's distinct thresholds (decreasing), so
candidate ``j`` predicts ``j`` tie groups positive and index order is threshold order. The
objective is evaluated at every candidate at once (O(m) after the sort) and the winner is
picked by the documented tie-break, in a few vectorized passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from app.core.curves import BinaryRanking
from app.core.thresholds._objectives import (
    ObjectiveArrays,
    ThresholdObjective,
    as_objective,
    closest_text,
    constraint_text,
    evaluate_objective,
)
from app.errors import InvalidInput

__all__ = [
    "CONSTRAINT_SLACK",
    "TIE_TOLERANCE",
    "OperatingPoint",
    "ThresholdRecommendation",
    "recommend_from_ranking",
]

Float = NDArray[np.float64]

#: Objective values within ``TIE_TOLERANCE × scale`` of the best count as tied (``scale`` is 1,
#: or the largest cost coefficient for ``"cost"``): weighted sums carry rounding, and a
#: rounding error must not decide the threshold.
TIE_TOLERANCE: Final = 1e-12
#: A constraint counts as met when missed by at most this much (rates, so absolute).
CONSTRAINT_SLACK: Final = 1e-12


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Confusion counts and rates at one candidate threshold.

    Attributes
    ----------
    threshold : float
        Predict positive iff ``score >= threshold``: a score of the batch, so applying it to the
        same rows reproduces the counts exactly. ``inf`` for the "predict none" point.
    predict_none : bool
        True for the point that predicts no row positive (``threshold == inf``). JSON has no
        infinity: :meth:`to_dict` reports its threshold as ``None`` with this flag.
    tp, fp, tn, fn : int or float
        Counts (ints), or sums of sample weights (floats) when weighted.
    precision : float or None
        ``tp / (tp + fp)``; None when nothing is predicted positive.
    recall : float or None
        The true-positive rate ``tp / (tp + fn)``; None without positives.
    f1 : float or None
        ``2 tp / (2 tp + fp + fn)``; None when ``tp + fp + fn == 0``.
    fpr, specificity : float or None
        ``fp / (fp + tn)`` and ``tn / (fp + tn)``; None without negatives.
    accuracy : float
        ``(tp + tn) / W``, ``W`` the total weight.
    predicted_positive_rate : float
        ``(tp + fp) / W``.
    objective_value : float or None
        The objective at this point (the cost for ``"cost"``; the maximized metric for the
        constrained objectives); None where undefined.
    meets_constraint : bool or None
        Constrained objectives: whether this point satisfies the constraint (False where the
        constrained metric is undefined). None for the others.
    """

    threshold: float
    predict_none: bool
    tp: int | float
    fp: int | float
    tn: int | float
    fn: int | float
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None
    specificity: float | None
    accuracy: float
    predicted_positive_rate: float
    objective_value: float | None
    meets_constraint: bool | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain Python values, the predict-none threshold as ``None``."""
        out = {name: getattr(self, name) for name in self.__slots__}
        if self.predict_none:
            out["threshold"] = None
        return out


@dataclass(frozen=True, slots=True)
class ThresholdRecommendation:
    """The recommended decision threshold for one objective on one binary column.

    Attributes
    ----------
    objective : ThresholdObjective
        The objective's name (``objective.name``) and parameters (``objective.params``).
    feasible : bool
        True when a threshold satisfies the constraint (always for unconstrained objectives that
        are defined somewhere). False for an infeasible constraint, then ``point`` is the
        closest point (see :func:`recommend_from_ranking`), and for an objective undefined on
        this batch, then ``point`` is None.
    point : OperatingPoint or None
        The chosen operating point; None when the objective is undefined everywhere.
    table : tuple of OperatingPoint
        The chosen point with up to ``n_neighbors`` candidates on each side, by decreasing
        threshold (the first row may be the predict-none point). Empty when ``point`` is None.
    chosen_row : int or None
        Index of ``point`` in ``table``.
    reason : str or None
        Why the result is infeasible or undefined; None otherwise.
    n_candidates : int
        Number of candidate thresholds searched: distinct scores (of rows with non-zero
        weight) plus the predict-none point.
    """

    objective: ThresholdObjective
    feasible: bool
    point: OperatingPoint | None
    table: tuple[OperatingPoint, ...]
    chosen_row: int | None
    reason: str | None
    n_candidates: int

    @property
    def threshold(self) -> float | None:
        """The recommended threshold (``inf``: predict none); None when undefined."""
        return None if self.point is None else self.point.threshold

    @property
    def value(self) -> float | None:
        """The objective's value at the chosen point; None when undefined."""
        return None if self.point is None else self.point.objective_value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready and flat: objective, params, feasible, reason, value, n_candidates, the
        chosen point's fields (``threshold`` None for predict-none or undefined), the table
        (a list of point dicts) and ``chosen_row``."""
        point: dict[str, Any]
        if self.point is None:
            point = dict.fromkeys(OperatingPoint.__slots__)
            point["predict_none"] = False
        else:
            point = self.point.to_dict()
        del point["objective_value"], point["meets_constraint"]
        return {
            "objective": self.objective.name,
            "params": self.objective.params,
            "feasible": self.feasible,
            "reason": self.reason,
            "value": self.value,
            "n_candidates": self.n_candidates,
            **point,
            "table": [row.to_dict() for row in self.table],
            "chosen_row": self.chosen_row,
        }


def recommend_from_ranking(
    r: BinaryRanking,
    objective: str | ThresholdObjective = "f1",
    *,
    n_neighbors: int = 5,
    **params: float | None,
) -> ThresholdRecommendation:
    """The best decision threshold of a ranked binary column for one objective.

    Parameters
    ----------
    r : BinaryRanking
        From :func:`~app.core.curves.rank_binary`; nothing is sorted again.
    objective : str or ThresholdObjective, default "f1"
        A name from :data:`OBJECTIVES` with its parameters as keywords, or a
        :class:`ThresholdObjective`.
    n_neighbors : int >= 0, default 5
        Candidates to show on each side of the chosen one in ``table``.
    **params : float or None
        The objective's parameters (``beta``, ``min_recall``, ``cost_fp``, ...); None is unset.

    Returns
    -------
    ThresholdRecommendation

    Notes
    -----
    **Candidates.** Every distinct score of a row with non-zero weight (predict positive iff
    ``score >= threshold``; a zero-weight row's score gives the same counts as the next higher
    candidate), plus "predict none" (``threshold = inf``). Values undefined at a candidate
    (precision with nothing predicted positive, MCC with nothing or everything predicted
    positive) exclude it; they are never read as 0.

    **Ties.** Values within ``TIE_TOLERANCE × scale`` of the best are tied. Unconstrained
    objectives take the highest tied threshold (fewest predicted positives). Constrained ones
    first take the best secondary metric among the tied, then the highest threshold:
    ``precision_at_recall`` the highest recall; ``recall_at_precision`` the highest precision;
    ``tpr_at_fpr`` the lowest FPR; ``recall_at_ppr`` the lowest predicted-positive rate (for the
    last three that is the highest tied threshold anyway).

    **Infeasible constraints** (met when missed by at most ``CONSTRAINT_SLACK``) are not errors:
    ``feasible`` is False and ``point`` is the candidate closest to meeting the constraint —
    the smallest violation (highest precision for ``recall_at_precision``, highest recall for
    ``precision_at_recall``, lowest FPR or predicted-positive rate for the others), ties broken
    by the objective, then by the highest threshold. Only ``recall_at_precision`` can be
    infeasible on a batch with both classes: predicting every row positive has recall 1, and
    predicting none has FPR and predicted-positive rate 0.

    **Undefined everywhere** (``point`` None, ``feasible`` False, ``reason`` says why): no
    positives (F1, F-beta, Youden, MCC and every constrained objective), no negatives (Youden,
    MCC, ``tpr_at_fpr``), or MCC on a batch whose scores are all equal. Accuracy and cost are
    defined on one-class batches.

    Examples
    --------
    >>> from app.core.curves import rank_binary
    >>> r = rank_binary(np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.6]))
    >>> rec = recommend_from_ranking(r, "f1")
    >>> rec.threshold, rec.value, (rec.point.tp, rec.point.fp, rec.point.tn, rec.point.fn)
    (0.6, 0.8, (2, 0, 3, 1))
    >>> rec = recommend_from_ranking(r, "recall_at_precision", min_precision=1.0)
    >>> rec.feasible, rec.threshold, rec.point.recall
    (True, 0.6, 0.6666666666666666)
    >>> rec = recommend_from_ranking(r, "precision_at_recall", min_recall=1.0, n_neighbors=1)
    >>> [(row.threshold, row.objective_value, row.meets_constraint) for row in rec.table]
    [(0.4, 0.5, False), (0.35, 0.6, True), (0.1, 0.5, True)]
    """
    return search(r, as_objective(objective, params), check_n_neighbors(n_neighbors))


def check_n_neighbors(n_neighbors: object) -> int:
    """``n_neighbors`` as an int, or InvalidInput unless it is an integer >= 0."""
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, Integral) or n_neighbors < 0:
        raise InvalidInput(f"is {n_neighbors!r}; must be an integer >= 0", field="n_neighbors")
    return int(n_neighbors)


def search(r: BinaryRanking, obj: ThresholdObjective, k: int) -> ThresholdRecommendation:
    """:func:`recommend_from_ranking` with its arguments already validated."""
    m = r.thresholds.shape[0]
    n_pos, n_neg = float(r.n_pos), float(r.n_neg)
    reason = obj.undefined_reason(n_pos, n_neg, r.weighted)
    if reason is not None:
        return ThresholdRecommendation(obj, False, None, (), None, reason, m + 1)
    tp, fp = np.empty(m + 1), np.empty(m + 1)
    tp[0] = fp[0] = 0.0
    tp[1:], fp[1:] = r.tps, r.fps
    arrays = evaluate_objective(obj, tp, fp, n_pos, n_neg)
    tol = TIE_TOLERANCE * obj.scale
    feasible = True
    if arrays.violation is None:
        chosen = _pick(arrays.goal, None, tol)
    else:
        met = arrays.violation <= CONSTRAINT_SLACK
        chosen = _pick(np.where(met, arrays.goal, np.nan), arrays.secondary, tol)
        if chosen is None:
            feasible = False
            chosen = _pick(-arrays.violation, arrays.goal, TIE_TOLERANCE)
            if chosen is not None:
                reason = (
                    f"no threshold reaches {constraint_text(obj)}; the closest point is "
                    f"reported: {closest_text(obj, float(arrays.violation[chosen]))}"
                )
    if chosen is None:
        what = "MCC" if obj.name == "mcc" else f"objective {obj.name!r}"
        return ThresholdRecommendation(
            obj,
            False,
            None,
            (),
            None,
            f"{what} is undefined at every candidate threshold (each predicts all rows "
            "positive or none)",
            m + 1,
        )
    lo, hi = max(0, chosen - k), min(m, chosen + k)
    table = tuple(_point(r, arrays, j) for j in range(lo, hi + 1))
    return ThresholdRecommendation(
        obj, feasible, table[chosen - lo], table, chosen - lo, reason, m + 1
    )


def _pick(primary: Float, secondary: Float | None, tol: float) -> int | None:
    """Index of the best ``primary`` (NaN excluded): ties within ``tol``, then the best
    ``secondary`` (within ``TIE_TOLERANCE``), then the lowest index (highest threshold)."""
    defined = ~np.isnan(primary)
    best = np.max(primary, initial=-np.inf, where=defined)
    if best == -np.inf:
        return None
    tied = primary >= best - tol
    if secondary is not None:
        usable = tied & ~np.isnan(secondary)
        second = np.max(secondary, initial=-np.inf, where=usable)
        if second > -np.inf:
            tied = usable & (secondary >= second - TIE_TOLERANCE)
    return int(np.argmax(tied))


def _rate(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _point(r: BinaryRanking, arrays: ObjectiveArrays, j: int) -> OperatingPoint:
    """The operating point of candidate ``j`` (0: predict none), from the native counts."""
    zero = 0.0 if r.weighted else 0
    tp = r.tps[j - 1].item() if j else zero
    fp = r.fps[j - 1].item() if j else zero
    n_pos, n_neg = r.n_pos, r.n_neg
    tn, fn = n_neg - fp, n_pos - tp
    total = n_pos + n_neg
    value = float(arrays.value[j])
    meets = None if arrays.violation is None else bool(arrays.violation[j] <= CONSTRAINT_SLACK)
    return OperatingPoint(
        threshold=float(r.thresholds[j - 1]) if j else math.inf,
        predict_none=j == 0,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        precision=_rate(tp, tp + fp),
        recall=_rate(tp, n_pos),
        f1=_rate(2 * tp, 2 * tp + fp + fn),
        fpr=_rate(fp, n_neg),
        specificity=_rate(tn, n_neg),
        accuracy=(tp + tn) / total,
        predicted_positive_rate=(tp + fp) / total,
        objective_value=None if math.isnan(value) else value,
        meets_constraint=meets,
    )
