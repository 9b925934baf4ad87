"""Threshold recommendations against an exhaustive search written from the definitions.

The reference loops over every distinct score of the batch (zero-weight rows included) and the
predict-none point, counts with numpy masks, evaluates the objective from the textbook formula and
picks by the documented rules: ties within TIE_TOLERANCE, the constrained objectives' secondary
metric, then the highest threshold; an infeasible constraint's closest point.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_curve as sk_precision_recall_curve

from app.core.curves import rank_binary
from app.core.thresholds import (
    CONSTRAINT_SLACK,
    OBJECTIVE_PARAMETERS,
    OBJECTIVES,
    TIE_TOLERANCE,
    ThresholdObjective,
    ThresholdRecommendation,
    recommend_by_group,
    recommend_from_ranking,
    recommend_per_class,
    recommend_threshold,
)
from app.errors import InvalidInput

# -- the exhaustive reference -------------------------------------------------------------------

NEEDS_POSITIVES = {
    "f1",
    "fbeta",
    "youden",
    "mcc",
    "precision_at_recall",
    "recall_at_precision",
    "tpr_at_fpr",
    "recall_at_ppr",
}
NEEDS_NEGATIVES = {"youden", "mcc", "tpr_at_fpr"}


@dataclass
class Candidate:
    threshold: float
    tp: float
    fp: float
    tn: float
    fn: float


@dataclass
class Reference:
    threshold: float | None  # None: undefined everywhere
    value: float | None
    feasible: bool


def candidates(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> list[Candidate]:
    """Every distinct score (decreasing), after predict-none; counts from masks."""
    out = []
    for t in [math.inf, *np.unique(s)[::-1].tolist()]:
        pred = s >= t
        out.append(
            Candidate(
                t,
                float(w[pred & y].sum()),
                float(w[pred & ~y].sum()),
                float(w[~pred & ~y].sum()),
                float(w[~pred & y].sum()),
            )
        )
    return out


def div(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def unconstrained_value(name: str, p: dict[str, Any], c: Candidate) -> float | None:
    tp, fp, tn, fn = c.tp, c.fp, c.tn, c.fn
    if name in ("f1", "fbeta"):
        b2 = 1.0 if name == "f1" else p["beta"] ** 2
        return div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
    if name == "youden":
        tpr, fpr = div(tp, tp + fn), div(fp, fp + tn)
        return None if tpr is None or fpr is None else tpr - fpr
    if name == "accuracy":
        return (tp + tn) / (tp + fp + tn + fn)
    if name == "mcc":
        den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        return (tp * tn - fp * fn) / math.sqrt(den) if den > 0 else None
    assert name == "cost"
    cost = p["cost_fp"] * fp + p["cost_fn"] * fn - p["gain_tp"] * tp - p["gain_tn"] * tn
    return cost / (tp + fp + tn + fn)


def constrained(
    name: str, p: dict[str, Any], c: Candidate
) -> tuple[float | None, float | None, float | None]:
    """(objective value, secondary metric, constraint violation) at one candidate."""
    tp, fp, tn, fn = c.tp, c.fp, c.tn, c.fn
    precision, recall = div(tp, tp + fp), div(tp, tp + fn)
    if name == "precision_at_recall":
        violation = None if recall is None else p["min_recall"] - recall
        return precision, recall, violation
    if name == "recall_at_precision":
        violation = None if precision is None else p["min_precision"] - precision
        return recall, precision, violation
    if name == "tpr_at_fpr":
        fpr = div(fp, fp + tn)
        return recall, None if fpr is None else -fpr, None if fpr is None else fpr - p["max_fpr"]
    assert name == "recall_at_ppr"
    ppr = (tp + fp) / (tp + fp + tn + fn)
    return recall, -ppr, ppr - p["max_ppr"]


def pick(rows: list[tuple[float, float | None, float | None]], tol: float) -> int | None:
    """rows: (threshold, primary, secondary) -> index by the documented rule."""
    defined = [i for i, r in enumerate(rows) if r[1] is not None]
    if not defined:
        return None
    best = max(rows[i][1] for i in defined)  # type: ignore[type-var]
    tied = [i for i in defined if rows[i][1] >= best - tol]  # type: ignore[operator]
    seconds = [rows[i][2] for i in tied if rows[i][2] is not None]
    if seconds:
        top = max(seconds)  # type: ignore[type-var]
        tied = [i for i in tied if rows[i][2] is not None and rows[i][2] >= top - TIE_TOLERANCE]
    return max(tied, key=lambda i: rows[i][0])


def brute_force(
    y: Any, s: Any, w: Any, name: str, params: dict[str, Any] | None = None
) -> Reference:
    y, s = np.asarray(y, dtype=bool), np.asarray(s)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    p = ThresholdObjective(name, **(params or {})).params  # type: ignore[arg-type]
    n_pos, n_neg = float(w[y].sum()), float(w[~y].sum())
    if (n_pos <= 0 and name in NEEDS_POSITIVES) or (n_neg <= 0 and name in NEEDS_NEGATIVES):
        return Reference(None, None, False)
    cands = candidates(y, s, w)
    if name in ("f1", "fbeta", "youden", "accuracy", "mcc", "cost"):
        values = [unconstrained_value(name, p, c) for c in cands]
        sign = -1.0 if name == "cost" else 1.0
        scale = max(p.values()) if name == "cost" else 1.0
        rows = [
            (c.threshold, None if v is None else sign * v, None)
            for c, v in zip(cands, values, strict=True)
        ]
        i = pick(rows, TIE_TOLERANCE * scale)
        return Reference(None, None, False) if i is None else Reference(rows[i][0], values[i], True)
    evaluated = [constrained(name, p, c) for c in cands]
    rows = [
        (c.threshold, v if viol is not None and viol <= CONSTRAINT_SLACK else None, sec)
        for c, (v, sec, viol) in zip(cands, evaluated, strict=True)
    ]
    i = pick(rows, TIE_TOLERANCE)
    if i is not None:
        return Reference(rows[i][0], evaluated[i][0], True)
    closest = [
        (c.threshold, None if viol is None else -viol, v)
        for c, (v, _, viol) in zip(cands, evaluated, strict=True)
    ]
    i = pick(closest, TIE_TOLERANCE)
    if i is None:
        return Reference(None, None, False)
    return Reference(closest[i][0], evaluated[i][0], False)


def assert_matches(rec: ThresholdRecommendation, ref: Reference) -> None:
    if ref.threshold is None:
        assert rec.point is None and not rec.feasible and rec.reason
        assert rec.table == () and rec.chosen_row is None
        return
    assert rec.point is not None
    assert rec.threshold == ref.threshold
    assert rec.feasible == ref.feasible
    if ref.value is None:
        assert rec.value is None
    else:
        assert rec.value == pytest.approx(ref.value, abs=1e-12, rel=0)
    assert (rec.reason is None) == rec.feasible


def assert_reproducible(rec: ThresholdRecommendation, y: Any, s: Any, w: Any) -> None:
    """Applying ``score >= threshold`` to the rows gives the reported counts."""
    y, s = np.asarray(y, dtype=bool), np.asarray(s)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    for row in rec.table:
        c = candidates(y, s, w)[0] if row.predict_none else None
        if c is None:
            pred = s >= row.threshold
            c = Candidate(
                row.threshold,
                float(w[pred & y].sum()),
                float(w[pred & ~y].sum()),
                float(w[~pred & ~y].sum()),
                float(w[~pred & y].sum()),
            )
        assert (row.tp, row.fp, row.tn, row.fn) == pytest.approx((c.tp, c.fp, c.tn, c.fn), abs=1e-9)


# -- objectives with parameters, for the randomized comparisons --------------------------------

CASES: list[tuple[str, dict[str, Any]]] = [
    ("f1", {}),
    ("fbeta", {"beta": 0.5}),
    ("fbeta", {"beta": 3.0}),
    ("youden", {}),
    ("accuracy", {}),
    ("mcc", {}),
    ("cost", {"cost_fp": 1.0, "cost_fn": 4.0}),
    ("cost", {"cost_fp": 2.0, "cost_fn": 0.0, "gain_tp": 1.5, "gain_tn": 0.25}),
    ("precision_at_recall", {"min_recall": 0.5}),
    ("precision_at_recall", {"min_recall": 1.0}),
    ("recall_at_precision", {"min_precision": 0.75}),
    ("recall_at_precision", {"min_precision": 1.0}),
    ("tpr_at_fpr", {"max_fpr": 0.1}),
    ("tpr_at_fpr", {"max_fpr": 0.0}),
    ("recall_at_ppr", {"max_ppr": 0.2}),
    ("recall_at_ppr", {"max_ppr": 1.0}),
]
CASE_IDS = [f"{n}-{'-'.join(f'{v:g}' for v in p.values())}" for n, p in CASES]


def random_batch(
    rng: np.random.Generator, n: int, *, weighted: bool, n_levels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    y = rng.random(n) < rng.uniform(0.1, 0.9)
    s = np.round(rng.normal(size=n) + 0.8 * y, 0) / 4 if n_levels == 0 else None
    if s is None:
        s = rng.integers(0, n_levels, size=n) / n_levels + 0.3 * y * rng.random(n)
        s = np.round(s, 2)  # heavy ties
    if not weighted:
        return y, s, None
    w = rng.choice([0.0, 0.5, 1.0, 2.0, 3.7], size=n)
    if not w.any():
        w[0] = 1.0
    return y, s, w


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_recommendation_equals_exhaustive_search_on_random_tied_batches(
    name: str, params: dict[str, Any], weighted: bool
) -> None:
    rng = np.random.default_rng(hash((name, weighted, *params.values())) % 2**32)
    for trial in range(25):
        n = int(rng.integers(1, 60)) if trial % 2 else int(rng.integers(100, 400))
        y, s, w = random_batch(rng, n, weighted=weighted, n_levels=int(rng.integers(0, 12)))
        rec = recommend_threshold(y, s, sample_weight=w, objective=name, **params)
        assert_matches(rec, brute_force(y, s, w, name, params))
        assert_reproducible(rec, y, s, w)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_float32_scores_give_thresholds_that_are_float32_scores(
    name: str, params: dict[str, Any]
) -> None:
    rng = np.random.default_rng(7)
    y = rng.random(300) < 0.4
    s = (rng.random(300) * 0.5 + 0.4 * y).astype(np.float32)
    rec = recommend_threshold(y, s, objective=name, **params)
    assert_matches(rec, brute_force(y, s, None, name, params))
    assert rec.threshold is not None
    assert rec.point is not None
    if not rec.point.predict_none:
        assert np.float32(rec.threshold) == rec.threshold
    assert_reproducible(rec, y, s, None)


# -- hypothesis: adversarial small batches -----------------------------------------------------

SCORE_VALUES = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, -3.0, 1e-300, 7.5]
WEIGHT_VALUES = [0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 3.25, 1e-3]
RATES = [1e-9, 0.1, 0.2, 0.25, 1 / 3, 0.4, 0.5, 0.6, 2 / 3, 0.75, 0.8, 0.9, 0.999, 1.0]


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[bool], list[float], list[float] | None]:
    n = draw(st.integers(1, 24))
    levels = draw(st.lists(st.sampled_from(SCORE_VALUES), min_size=1, max_size=5, unique=True))
    y = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    s = draw(st.lists(st.sampled_from(levels), min_size=n, max_size=n))
    if not draw(st.booleans()):
        return y, s, None
    w = draw(st.lists(st.sampled_from(WEIGHT_VALUES), min_size=n, max_size=n))
    if not any(w):
        w[draw(st.integers(0, n - 1))] = 1.0
    return y, s, w


rate = st.sampled_from(RATES) | st.floats(1e-6, 1.0)
costs = st.sampled_from([0.0, 0.5, 1.0, 2.0, 10.0])
objectives = st.one_of(
    st.sampled_from(["f1", "youden", "accuracy", "mcc"]).map(lambda n: (n, {})),
    st.sampled_from([0.25, 0.5, 2.0, 4.0]).map(lambda b: ("fbeta", {"beta": b})),
    st.tuples(costs, costs, costs, costs)
    .filter(any)
    .map(
        lambda c: ("cost", dict(zip(("cost_fp", "cost_fn", "gain_tp", "gain_tn"), c, strict=True)))
    ),
    rate.map(lambda r: ("precision_at_recall", {"min_recall": r})),
    rate.map(lambda r: ("recall_at_precision", {"min_precision": r})),
    (rate | st.just(0.0)).map(lambda r: ("tpr_at_fpr", {"max_fpr": r})),
    rate.map(lambda r: ("recall_at_ppr", {"max_ppr": r})),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), objective=objectives)
def test_recommendation_equals_exhaustive_search_on_adversarial_batches(
    batch: tuple[list[bool], list[float], list[float] | None],
    objective: tuple[str, dict[str, Any]],
) -> None:
    y, s, w = batch
    name, params = objective
    rec = recommend_threshold(y, s, sample_weight=w, objective=name, **params)
    assert_matches(rec, brute_force(y, s, w, name, params))
    assert_reproducible(rec, y, s, w)
    json.dumps(rec.to_dict(), allow_nan=False)


# -- documented edge cases ---------------------------------------------------------------------


def test_ties_prefer_the_highest_threshold() -> None:
    # Accuracy 0.5 at predict-none, 0.6 and 0.2 (all tie): the highest threshold wins.
    rec = recommend_threshold([1, 0, 1, 0], [0.6, 0.6, 0.2, 0.2], objective="accuracy")
    assert rec.point is not None and rec.point.predict_none and rec.threshold == math.inf
    assert rec.value == 0.5
    assert rec.to_dict()["threshold"] is None and rec.to_dict()["predict_none"] is True


def test_precision_ties_under_a_recall_floor_prefer_higher_recall() -> None:
    # Precision is 1 at 0.9 (recall 1/3) and at 0.7 (recall 2/3): 0.7 wins.
    y, s = [1, 1, 0, 1], [0.9, 0.7, 0.5, 0.1]
    rec = recommend_threshold(y, s, objective="precision_at_recall", min_recall=0.3)
    assert rec.threshold == 0.7 and rec.value == 1.0 and rec.feasible


def test_undefined_precision_is_excluded_not_zero() -> None:
    # The top score is a negative: every defined precision is < 1, predict-none is skipped.
    y, s = [0, 1, 1, 0], [0.9, 0.8, 0.7, 0.1]
    rec = recommend_threshold(y, s, objective="precision_at_recall", min_recall=1.0)
    assert rec.threshold == 0.7 and rec.value == pytest.approx(2 / 3)
    table = recommend_threshold(y, s, objective="mcc", n_neighbors=10).table
    assert table[0].predict_none and table[0].objective_value is None
    assert table[0].precision is None and table[-1].objective_value is None


def test_unreachable_precision_is_infeasible_with_the_highest_precision_point() -> None:
    y, s = [0, 1, 1, 0, 1, 0], [0.95, 0.9, 0.8, 0.6, 0.5, 0.4]
    rec = recommend_threshold(y, s, objective="recall_at_precision", min_precision=0.9)
    # Best precision 2/3 at 0.8 (recall 2/3); 0.5 has precision 3/5.
    assert not rec.feasible and rec.threshold == 0.8
    assert rec.point is not None and rec.point.precision == pytest.approx(2 / 3)
    assert rec.value == pytest.approx(2 / 3)  # the objective (recall) there
    assert rec.reason is not None and "precision >= 0.9" in rec.reason and "0.666667" in rec.reason
    assert rec.point.meets_constraint is False
    assert_matches(rec, brute_force(y, s, None, "recall_at_precision", {"min_precision": 0.9}))


def test_closest_point_ties_break_on_the_objective() -> None:
    # Precision 1/2 at 0.9 (recall 1/2) and at 0.2 (recall 1): the one with more recall.
    y, s = [0, 1, 0, 1], [0.9, 0.9, 0.2, 0.2]
    rec = recommend_threshold(y, s, objective="recall_at_precision", min_precision=0.8)
    assert not rec.feasible and rec.threshold == 0.2 and rec.value == 1.0


def test_fpr_and_alert_budget_constraints_are_always_feasible() -> None:
    y, s = [0, 0, 1, 1], [0.9, 0.8, 0.7, 0.6]
    rec = recommend_threshold(y, s, objective="tpr_at_fpr", max_fpr=0.0)
    assert rec.feasible and rec.point is not None and rec.point.predict_none and rec.value == 0.0
    rec = recommend_threshold(y, s, objective="recall_at_ppr", max_ppr=0.1)
    assert rec.feasible and rec.point is not None and rec.point.predict_none


def test_alert_budget_cannot_split_a_tie_group() -> None:
    y, s = [1, 0, 1, 0, 1], [0.9, 0.5, 0.5, 0.5, 0.1]
    rec = recommend_threshold(y, s, objective="recall_at_ppr", max_ppr=0.6)
    assert rec.threshold == 0.9 and rec.point is not None
    assert rec.point.predicted_positive_rate == 0.2 and rec.point.recall == pytest.approx(1 / 3)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_all_equal_scores(name: str) -> None:
    params = {p: 0.5 for p in OBJECTIVE_PARAMETERS[name]}
    y, s = [1, 0, 1, 1, 0], [0.3] * 5
    rec = recommend_threshold(y, s, objective=name, **params)
    assert rec.n_candidates == 2
    assert_matches(rec, brute_force(y, s, None, name, params))
    if name == "mcc":
        assert rec.reason is not None and "undefined at every candidate" in rec.reason


@pytest.mark.parametrize("name", OBJECTIVES)
@pytest.mark.parametrize("label", [0, 1])
def test_one_class_batches(name: str, label: int) -> None:
    params = {p: 0.5 for p in OBJECTIVE_PARAMETERS[name]}
    y, s, w = [label] * 6, [0.1, 0.5, 0.5, 0.7, 0.2, 0.9], [1, 0, 2, 1, 1, 0.5]
    rec = recommend_threshold(y, s, sample_weight=w, objective=name, **params)
    ref = brute_force(y, s, w, name, params)
    assert_matches(rec, ref)
    undefined = (label == 0 and name in NEEDS_POSITIVES) or (label == 1 and name in NEEDS_NEGATIVES)
    assert (rec.point is None) == undefined
    if undefined:
        assert rec.reason is not None and "no " in rec.reason and "samples" in rec.reason


def test_accuracy_on_negatives_only_predicts_none() -> None:
    rec = recommend_threshold([0, 0, 0], [0.2, 0.4, 0.9], objective="accuracy")
    assert rec.point is not None and rec.point.predict_none and rec.value == 1.0
    assert rec.point.recall is None and rec.point.precision is None and rec.point.fpr == 0.0


def test_single_row() -> None:
    rec = recommend_threshold([1], [0.3])
    assert rec.threshold == 0.3 and rec.value == 1.0 and rec.n_candidates == 2
    assert [row.predict_none for row in rec.table] == [True, False] and rec.chosen_row == 1


def test_zero_weight_rows_are_not_candidates() -> None:
    y, s, w = [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [1.0, 0.0, 1.0, 1.0]
    rec = recommend_threshold(y, s, sample_weight=w, n_neighbors=10)
    assert [row.threshold for row in rec.table] == [math.inf, 0.9, 0.7, 0.1]
    assert rec.threshold == 0.7 and isinstance(rec.point.tp, float)  # type: ignore[union-attr]


def test_unit_weights_equal_no_weights_and_row_order_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    y, s, _ = random_batch(rng, 500, weighted=False, n_levels=9)
    perm = rng.permutation(500)
    for name, params in CASES:
        a = recommend_threshold(y, s, objective=name, **params)
        b = recommend_threshold(y, s, sample_weight=np.ones(500), objective=name, **params)
        c = recommend_threshold(y[perm], s[perm], objective=name, **params)
        assert a.threshold == b.threshold == c.threshold
        assert a.value == pytest.approx(b.value, abs=1e-12) and a.value == c.value


def test_max_f1_matches_a_scikit_learn_precision_recall_search() -> None:
    rng = np.random.default_rng(11)
    y = rng.random(5000) < 0.3
    s = np.round(rng.beta(2, 5, 5000) + 0.3 * y, 3)
    precision, recall, thr = sk_precision_recall_curve(y, s)
    with np.errstate(invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    f1 = f1[:-1]
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)[-1]  # the highest tied threshold
    rec = recommend_threshold(y, s)
    assert rec.threshold == thr[best] and rec.value == pytest.approx(f1[best], abs=1e-12)


# -- the operating-point table -----------------------------------------------------------------


def test_table_holds_the_neighbours_in_decreasing_threshold_order() -> None:
    rng = np.random.default_rng(5)
    y, s, w = random_batch(rng, 200, weighted=True, n_levels=20)
    r = rank_binary(y, s, w)
    for k in (0, 1, 5, 50):
        rec = recommend_from_ranking(r, "youden", n_neighbors=k)
        assert rec.point is not None and rec.chosen_row is not None
        thresholds = [row.threshold for row in rec.table]
        assert thresholds == sorted(thresholds, reverse=True)
        everything = [math.inf, *r.thresholds.tolist()]
        i = everything.index(rec.threshold)
        assert thresholds == everything[max(0, i - k) : i + k + 1]
        assert rec.table[rec.chosen_row] == rec.point
        assert_reproducible(rec, y, s, w)
        for row in rec.table:
            assert row.recall == pytest.approx(row.tp / r.n_pos)
            assert row.specificity == pytest.approx(1 - row.fpr)  # type: ignore[operator]
            assert row.accuracy == pytest.approx((row.tp + row.tn) / (r.n_pos + r.n_neg))
            assert row.meets_constraint is None


def test_to_dict_is_flat_and_json_ready() -> None:
    rec = recommend_threshold([0, 1, 1], [0.9, 0.8, 0.1], objective="fbeta", beta=2)
    d = rec.to_dict()
    assert d["objective"] == "fbeta" and d["params"] == {"beta": 2.0}
    assert d["threshold"] == 0.1 and d["feasible"] is True and d["reason"] is None
    assert d["table"][0]["threshold"] is None and d["table"][0]["predict_none"] is True
    assert d["chosen_row"] == 3 and d["tp"] == 2 and "objective_value" not in d
    json.dumps(d, allow_nan=False)
    undefined = recommend_threshold([0, 0], [0.1, 0.2]).to_dict()
    assert undefined["threshold"] is None and undefined["predict_none"] is False
    assert undefined["tp"] is None and undefined["table"] == []
    json.dumps(undefined, allow_nan=False)


# -- per group and per class -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), CASES[::3], ids=CASE_IDS[::3])
def test_per_group_equals_each_group_alone(name: str, params: dict[str, Any]) -> None:
    rng = np.random.default_rng(17)
    y, s, w = random_batch(rng, 600, weighted=True, n_levels=15)
    groups = rng.choice(np.array(["eu", "us", "apac", "latam"]), size=600)
    y[groups == "latam"] = False  # a group without positives
    out = recommend_by_group(y, s, groups, sample_weight=w, objective=name, **params)
    assert list(out) == ["apac", "eu", "latam", "us"]
    for g, rec in out.items():
        m = groups == g
        alone = recommend_threshold(y[m], s[m], sample_weight=w[m], objective=name, **params)
        assert rec.to_dict() == alone.to_dict()
        assert_matches(rec, brute_force(y[m], s[m], w[m], name, params))


def test_per_group_with_integer_groups_and_a_zero_weight_group() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.2, 0.8, 0.7, 0.4, 0.5])
    out = recommend_by_group(y, s, [3, 3, 1, 1, 2, 2], sample_weight=[1, 1, 1, 1, 0, 0])
    assert list(out) == [1, 2, 3] and all(type(g) is int for g in out)
    assert out[1].threshold == 0.8 and out[3].threshold == 0.9
    assert out[2].point is None and not out[2].feasible
    assert out[2].reason == "every row of the group has zero weight"


def test_per_class_multiclass_equals_one_vs_rest_columns() -> None:
    rng = np.random.default_rng(23)
    n, k = 400, 4
    y = rng.integers(0, k - 1, n)  # the last class never occurs
    p = np.round(rng.dirichlet(np.ones(k), n), 2)
    p[np.arange(n), y] += 0.2
    w = rng.choice([0.0, 1.0, 2.5], n)
    for name, params in CASES[::2]:
        recs = recommend_per_class(y, p, sample_weight=w, objective=name, **params)
        assert len(recs) == k
        for c, rec in enumerate(recs):
            alone = recommend_threshold(y == c, p[:, c], sample_weight=w, objective=name, **params)
            assert rec.to_dict() == alone.to_dict()
            assert_matches(rec, brute_force(y == c, p[:, c], w, name, params))


def test_per_class_multilabel_equals_each_label_alone() -> None:
    rng = np.random.default_rng(29)
    y = rng.random((300, 3)) < [0.2, 0.5, 0.0]
    s = np.round(rng.random((300, 3)) + 0.3 * y, 2)
    recs = recommend_per_class(y.astype(int), s, objective="recall_at_precision", min_precision=0.6)
    for j, rec in enumerate(recs):
        alone = recommend_threshold(
            y[:, j], s[:, j], objective="recall_at_precision", min_precision=0.6
        )
        assert rec.to_dict() == alone.to_dict()
    assert recs[2].point is None and "no positive" in (recs[2].reason or "")


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("objective", "params", "field"),
    [
        ("f2", {}, "objective"),
        (3, {}, "objective"),
        ("fbeta", {}, "beta"),
        ("fbeta", {"beta": 0}, "beta"),
        ("fbeta", {"beta": -1.0}, "beta"),
        ("fbeta", {"beta": float("nan")}, "beta"),
        ("fbeta", {"beta": 1e200}, "beta"),
        ("fbeta", {"beta": True}, "beta"),
        ("fbeta", {"beta": "2"}, "beta"),
        ("f1", {"beta": 2.0}, "beta"),
        ("f1", {"min_recal": 0.5}, "min_recal"),
        ("precision_at_recall", {}, "min_recall"),
        ("precision_at_recall", {"min_recall": 0.0}, "min_recall"),
        ("precision_at_recall", {"min_recall": 1.01}, "min_recall"),
        ("precision_at_recall", {"min_precision": 0.5}, "min_precision"),
        ("recall_at_precision", {"min_precision": 0.0}, "min_precision"),
        ("recall_at_precision", {"min_precision": -0.2}, "min_precision"),
        ("tpr_at_fpr", {"max_fpr": -0.01}, "max_fpr"),
        ("tpr_at_fpr", {"max_fpr": 1.5}, "max_fpr"),
        ("recall_at_ppr", {"max_ppr": 0.0}, "max_ppr"),
        ("recall_at_ppr", {"max_ppr": 2.0}, "max_ppr"),
        ("recall_at_ppr", {"max_ppr": float("inf")}, "max_ppr"),
        ("cost", {"cost_fn": 1.0}, "cost_fp"),
        ("cost", {"cost_fp": 1.0}, "cost_fn"),
        ("cost", {"cost_fp": -1.0, "cost_fn": 1.0}, "cost_fp"),
        ("cost", {"cost_fp": 1.0, "cost_fn": -0.5}, "cost_fn"),
        ("cost", {"cost_fp": 1.0, "cost_fn": 1.0, "gain_tp": -1.0}, "gain_tp"),
        ("cost", {"cost_fp": 1.0, "cost_fn": 1.0, "gain_tn": -1.0}, "gain_tn"),
        ("cost", {"cost_fp": 0.0, "cost_fn": 0.0}, "cost_fp"),
        ("accuracy", {"gain_tp": 1.0}, "gain_tp"),
    ],
)
def test_bad_parameters_raise_invalid_input_naming_the_field(
    objective: Any, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        recommend_threshold([0, 1], [0.2, 0.8], objective=objective, **params)
    assert exc.value.field == field
    with pytest.raises(InvalidInput) as exc:
        recommend_by_group([0, 1], [0.2, 0.8], ["a", "b"], objective=objective, **params)
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"y_true": [0, 2], "y_score": [0.1, 0.2]}, "y_true"),
        ({"y_true": [0, 1], "y_score": [0.1, float("nan")]}, "y_score"),
        ({"y_true": [0, 1], "y_score": [0.1]}, "y_score"),
        ({"y_true": [], "y_score": []}, "y_score"),
        ({"y_true": [0, 1], "y_score": [0.1, 0.2], "sample_weight": [0, 0]}, "sample_weight"),
        ({"y_true": [0, 1], "y_score": [0.1, 0.2], "sample_weight": [1, -1]}, "sample_weight"),
        ({"y_true": [0, 1], "y_score": [0.1, 0.2], "n_neighbors": -1}, "n_neighbors"),
        ({"y_true": [0, 1], "y_score": [0.1, 0.2], "n_neighbors": 1.5}, "n_neighbors"),
    ],
)
def test_bad_arrays_raise_invalid_input_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        recommend_threshold(**kwargs)
    assert exc.value.field == field


def test_bad_groups_and_class_inputs_name_the_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        recommend_by_group([0, 1], [0.1, 0.2], ["a"])
    assert exc.value.field == "groups"
    with pytest.raises(InvalidInput) as exc:
        recommend_by_group([0, 1], [0.1, 0.2], np.array(["a", 1], dtype=object))
    assert exc.value.field == "groups"
    p = np.array([[0.5, 0.5], [0.2, 0.8]])
    for y in ([0, 2], [0.0, 1.0], [[0, 1, 0], [1, 0, 0]]):
        with pytest.raises(InvalidInput) as exc:
            recommend_per_class(y, p)
        assert exc.value.field == "y_true"
    with pytest.raises(InvalidInput) as exc:
        recommend_per_class([0, 1], [0.5, 0.5])
    assert exc.value.field == "y_score"


def test_objective_object_is_accepted_and_excludes_extra_keywords() -> None:
    obj = ThresholdObjective("precision_at_recall", min_recall=0.5)
    r = rank_binary(np.array([0, 1, 1]), np.array([0.5, 0.7, 0.2]))
    assert recommend_from_ranking(r, obj).objective is obj
    with pytest.raises(InvalidInput) as exc:
        recommend_from_ranking(r, obj, min_recall=0.9)
    assert exc.value.field == "min_recall"
