"""Ranking metrics: ROC-AUC and average precision, binary, multiclass and multilabel.

Compared with scikit-learn (to 1e-12 unless stated) and with exact rational computations; the
undefined cases raise UndefinedMetricError naming what is missing.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import metrics as skm

from app.core import ranking
from app.core.ranking import (
    average_precision,
    average_precision_multilabel,
    counts_at_threshold,
    rank_binary,
    roc_auc,
    roc_auc_multilabel,
    roc_auc_ovo,
    roc_auc_ovr,
    roc_auc_ovr_from_rankings,
)
from app.errors import InvalidInput, UndefinedMetricError

TOL = 1e-12


def make_batch(
    rng: np.random.Generator,
    n: int,
    *,
    decimals: int | None = None,
    float32: bool = False,
    weights: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    s = rng.random(n)
    y = rng.random(n) < 0.2 + 0.6 * s
    y[:2] = [True, False]  # both classes present
    if decimals is not None:
        s = np.round(s, decimals)
    if float32:
        s = s.astype(np.float32)
    w: np.ndarray | None = None
    if weights == "float":
        w = rng.random(n) + 0.01
    elif weights == "integer":
        w = rng.integers(1, 4, n).astype(np.float64)
    elif weights == "float_with_zeros":
        w = rng.random(n) * (rng.random(n) < 0.7)
        w[:2] = 1.0
    return y, s, w


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# -- binary -------------------------------------------------------------------------------------


@pytest.mark.parametrize("float32", [False, True])
@pytest.mark.parametrize("weights", [None, "float", "integer", "float_with_zeros"])
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_roc_auc_and_average_precision_match_sklearn(
    decimals: int | None, weights: str | None, float32: bool
) -> None:
    for seed in range(15):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 300))
        y, s, w = make_batch(rng, n, decimals=decimals, float32=float32, weights=weights)
        r = rank_binary(y, s, w)
        assert roc_auc(r) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w), abs=TOL)
        expected_ap = skm.average_precision_score(y, s, sample_weight=w)
        assert average_precision(r) == pytest.approx(expected_ap, abs=TOL)


def test_unweighted_roc_auc_is_the_correctly_rounded_mann_whitney_statistic() -> None:
    for seed in range(20):
        rng = np.random.default_rng(seed)
        y, s, _ = make_batch(rng, 61, decimals=1)
        pos, neg = s[y], s[~y]
        wins = sum(Fraction(int(a > b)) + Fraction(int(a == b), 2) for a in pos for b in neg)
        assert roc_auc(rank_binary(y, s)) == float(wins / (len(pos) * len(neg)))


def test_average_precision_equals_an_exact_rational_computation() -> None:
    rng = np.random.default_rng(4)
    y, s, _ = make_batch(rng, 200, decimals=1)
    total, n_pos = Fraction(0), int(y.sum())
    for t in np.unique(s)[::-1]:
        above = s >= t
        new_tp = int((y & (s == t)).sum())
        total += Fraction(new_tp, n_pos) * Fraction(int((y & above).sum()), int(above.sum()))
    assert average_precision(rank_binary(y, s)) == pytest.approx(float(total), abs=1e-15)


@st.composite
def binary_batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    n = draw(st.integers(2, 25))
    float32 = draw(st.booleans())
    width = 32 if float32 else 64
    value = st.floats(allow_nan=False, allow_infinity=False, width=width) | st.sampled_from(
        [0.0, -0.0, 0.5, 1.0, 1e-30, -1e30]
    )
    pool = draw(st.lists(value, min_size=1, max_size=5))
    s = np.array(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    s = s.astype(np.float32 if float32 else np.float64)
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    w = None
    if draw(st.booleans()):
        wv = st.sampled_from([0.0, 1.0, 0.1, 0.3, 2.0, 1e-6, 7.0, 1e6])
        w = np.array(draw(st.lists(wv, min_size=n, max_size=n)))
        assume(w.any())
    return y, s, w


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_batches())
def test_scalar_metrics_match_sklearn_or_raise_on_adversarial_batches(
    batch: tuple[np.ndarray, np.ndarray, np.ndarray | None],
) -> None:
    y, s, w = batch
    r = rank_binary(y, s, w)
    ww = np.ones(len(y)) if w is None else w
    has_pos, has_neg = (ww * y).sum() > 0, (ww * ~y).sum() > 0
    if has_pos and has_neg:
        expected = skm.roc_auc_score(y, s, sample_weight=w)
        assert roc_auc(r) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    else:
        with pytest.raises(UndefinedMetricError):
            roc_auc(r)
    if has_pos:
        expected = skm.average_precision_score(y, s, sample_weight=w)
        assert average_precision(r) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    else:
        with pytest.raises(UndefinedMetricError):
            average_precision(r)


@pytest.mark.parametrize(
    ("y", "missing"), [([1, 1, 1], "no negative samples"), ([0, 0, 0], "no positive samples")]
)
def test_roc_auc_raises_when_only_one_class_is_present(y: list[int], missing: str) -> None:
    r = rank_binary(np.array(y), np.array([0.1, 0.5, 0.9]))
    with pytest.raises(UndefinedMetricError, match=missing):
        roc_auc(r)
    assert np.isnan(quiet(skm.roc_auc_score, y, [0.1, 0.5, 0.9]))  # sklearn: NaN


def test_roc_auc_raises_when_one_class_has_only_zero_weight() -> None:
    r = rank_binary(np.array([1, 0, 1], bool), np.array([0.1, 0.5, 0.9]), [1.0, 0.0, 2.0])
    with pytest.raises(UndefinedMetricError, match="no negative samples with non-zero weight"):
        roc_auc(r)


def test_average_precision_raises_without_positives_where_sklearn_returns_zero() -> None:
    y, s = np.zeros(4, bool), np.array([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(UndefinedMetricError, match="no positive samples"):
        average_precision(rank_binary(y, s))
    assert quiet(skm.average_precision_score, y, s) == 0.0


def test_average_precision_needs_positives_only() -> None:
    assert average_precision(rank_binary(np.ones(3, bool), np.array([0.2, 0.1, 0.2]))) == 1.0


def test_all_equal_scores_give_auc_one_half_and_ap_the_prevalence() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0], bool)
    r = rank_binary(y, np.full(7, 0.25, dtype=np.float32))
    assert roc_auc(r) == 0.5
    assert average_precision(r) == pytest.approx(2 / 7, abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_batches_match_sklearn_or_raise_where_it_returns_nan(n: int) -> None:
    for bits in range(2**n):
        y = np.array([(bits >> i) & 1 for i in range(n)], bool)
        for s in ([0.5] * n, [0.9, 0.1, 0.5][:n], [0.2, 0.2, 0.7][:n]):
            r = rank_binary(y, np.array(s))
            if 0 < y.sum() < n:
                assert roc_auc(r) == pytest.approx(skm.roc_auc_score(y, s), abs=TOL)
            else:
                with pytest.raises(UndefinedMetricError):
                    roc_auc(r)
            if y.any():
                assert average_precision(r) == pytest.approx(
                    skm.average_precision_score(y, s), abs=TOL
                )


def test_sample_weight_of_ones_equals_no_weights() -> None:
    y, s, _ = make_batch(np.random.default_rng(8), 300, decimals=2)
    plain, ones = rank_binary(y, s), rank_binary(y, s, np.ones(300))
    assert roc_auc(ones) == pytest.approx(roc_auc(plain), abs=1e-15)
    assert average_precision(ones) == pytest.approx(average_precision(plain), abs=1e-15)


def test_integer_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(12)
    y, s, _ = make_batch(rng, 150, decimals=1)
    w = rng.integers(0, 4, 150)
    w[:2] = 1
    weighted = rank_binary(y, s, w.astype(np.float64))
    repeated = rank_binary(np.repeat(y, w), np.repeat(s, w))
    assert roc_auc(weighted) == pytest.approx(roc_auc(repeated), abs=TOL)
    assert average_precision(weighted) == pytest.approx(average_precision(repeated), abs=TOL)


@pytest.mark.parametrize("trial", range(40))
def test_roc_auc_of_fixed_labels_equals_roc_auc_bit_for_bit_and_sklearn(trial: int) -> None:
    rng = np.random.default_rng(trial)
    n = int(rng.integers(2, 3000))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = (rng.normal(size=n) * [1.0, 1e-30, 1e30][trial % 3]).astype(np.float32)
    if trial % 2:
        s = np.round(s, 1)  # many ties, within and across classes
    if trial % 5 == 0:
        s[rng.random(n) < 0.2] = -0.0  # equal to 0.0
        s[rng.random(n) < 0.2] = 0.0
    auc = ranking.RocAucOfScores(y)
    value = auc(s)
    assert value == roc_auc(rank_binary(y, s))  # the same exact ratio
    if np.isfinite(s).all():
        assert value == pytest.approx(skm.roc_auc_score(y, s), abs=TOL)
    assert auc(s.astype(np.float64)) == value  # the float64 fallback
    assert auc(-s) == pytest.approx(1 - value, abs=TOL)


def test_roc_auc_of_fixed_labels_edge_cases() -> None:
    auc = ranking.RocAucOfScores(np.array([0, 1, 0, 1], bool))
    inf = np.float32(np.inf)
    assert auc(np.array([-inf, inf, 0, inf], np.float32)) == 1.0
    assert auc(np.array([-0.0, 0.0, 0.0, -0.0], np.float32)) == 0.5
    assert auc(np.full(4, 3, np.float32)) == 0.5
    nan = np.array([0.1, np.nan, 0.3, 0.4], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert auc(nan) == roc_auc(rank_binary(auc.y, nan))  # NaN: whatever the engine does
    with pytest.raises(InvalidInput, match="expected"):
        auc(np.zeros(3, np.float32))
    for y, missing in (([1, 1], "no negative"), ([0, 0], "no positive")):
        with pytest.raises(UndefinedMetricError, match=missing):
            ranking.RocAucOfScores(np.array(y))(np.array([0.1, 0.2], np.float32))
    with pytest.raises(InvalidInput, match="0/1"):
        ranking.RocAucOfScores(np.array([0, 2]))


def test_roc_auc_of_fixed_labels_from_many_threads_is_the_serial_value() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 20_000)
    S = np.round(rng.normal(size=(16, 20_000)), 2).astype(np.float32)
    auc = ranking.RocAucOfScores(y)
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(auc, S)) == [roc_auc(rank_binary(y, s)) for s in S]


@pytest.mark.slow
@pytest.mark.parametrize(("weighted", "p_lo", "p_hi"), [(False, 0.91, 0.99), (True, 0.05, 0.95)])
def test_float32_batch_beyond_2_to_the_24_rows_has_exact_counts_auc_and_ap(
    weighted: bool, p_lo: float, p_hi: float
) -> None:
    """2^24 + 2^20 + 1 rows (odd: the total is not even a float32), 1000 tied float32 scores.

    The accumulated counts pass 2^24, where float32 stops counting by ones: the positive
    count without weights, both weighted totals with integer weights 1-3. The reference is
    independent of any sort: per-level counts by ``np.bincount`` (integer weights summed in
    float64 are exact), then the Mann–Whitney U and the AP in rationals.
    """
    n, levels = 2**24 + 2**20 + 1, 1000
    rng = np.random.default_rng(2024)
    level = rng.integers(0, levels, n, dtype=np.int32)
    table = (np.arange(levels) / levels).astype(np.float32)  # distinct, increasing
    s = table[level]
    p_pos = np.linspace(p_lo, p_hi, levels, dtype=np.float32)
    y = rng.random(n, dtype=np.float32) < p_pos[level]
    w = rng.integers(1, 4, n).astype(np.float64) if weighted else None
    if w is None:
        pos = np.bincount(level[y], minlength=levels)
        neg = np.bincount(level[~y], minlength=levels)
    else:
        pos = np.bincount(level, weights=w * y, minlength=levels).astype(np.int64)
        neg = np.bincount(level, weights=w * ~y, minlength=levels).astype(np.int64)
    del level
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    assert n_pos > 2**24 and (n_neg > 2**24 or not weighted)

    r = rank_binary(y, s, w)

    assert r.tps.dtype == (np.float64 if weighted else np.int64)
    assert_array_equal(r.thresholds, table[::-1].astype(np.float64))
    assert_array_equal(r.tps, np.cumsum(pos[::-1]))
    assert_array_equal(r.fps, np.cumsum(neg[::-1]))
    assert (r.n_pos, r.n_neg) == (n_pos, n_neg)
    if not weighted:
        assert n_pos + n_neg == n and float(np.float32(n)) != n

    neg_below = np.concatenate(([0], np.cumsum(neg)[:-1]))
    u2 = sum(int(p) * (2 * int(b) + int(q)) for p, b, q in zip(pos, neg_below, neg, strict=True))
    exact_auc = Fraction(u2, 2 * n_pos * n_neg)
    assert abs(roc_auc(r) - exact_auc) < 1e-12
    if not weighted:
        assert roc_auc(r) == float(exact_auc)  # correctly rounded

    tp = ps = 0
    exact_ap = Fraction(0)
    for p, q in zip(pos[::-1].tolist(), neg[::-1].tolist(), strict=True):
        tp, ps = tp + p, ps + p + q
        exact_ap += Fraction(p * tp, ps)
    assert abs(average_precision(r) - exact_ap / n_pos) < 1e-12

    cut = 600
    tp_cut, fp_cut = int(pos[cut:].sum()), int(neg[cut:].sum())
    got = counts_at_threshold(r, float(table[cut]))
    assert got == (tp_cut, fp_cut, n_neg - fp_cut, n_pos - tp_cut)
    if not weighted:
        assert all(type(c) is int for c in got)


# -- multiclass ---------------------------------------------------------------------------------


def make_multiclass(
    rng: np.random.Generator, n: int, k: int, *, palette: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices with every class present, and probability rows summing to 1.

    With ``palette``, rows are drawn from that many distinct rows: heavy ties in every column.
    """
    y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rows = rng.dirichlet(np.ones(k), size=palette or n)
    if palette:
        rows = np.round(rows, 1)
        rows[:, -1] = 1 - rows[:, :-1].sum(axis=1)
        rows = np.abs(rows)
        rows /= rows.sum(axis=1, keepdims=True)
        rows = rows[rng.integers(0, palette, n)]
    # Make the scores informative: push mass toward the true class.
    p = 0.5 * rows + 0.5 * np.eye(k)[y] * (rng.random((n, 1)) < 0.6) + 0.0
    return y, p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("palette", [None, 4])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("average", ["macro", "weighted", None, "micro"])
def test_roc_auc_ovr_matches_sklearn(average: str | None, weights: bool, palette: int) -> None:
    for seed in range(8):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(3, 6))
        y, p = make_multiclass(rng, 120, k, palette=palette)
        w = rng.random(120) if weights else None
        ours = roc_auc_ovr(y, p, sample_weight=w, average=average)  # type: ignore[arg-type]
        theirs = skm.roc_auc_score(y, p, multi_class="ovr", average=average, sample_weight=w)
        assert_allclose(ours, theirs, rtol=0, atol=TOL)


def test_ovr_from_shared_rankings_equals_ovr_from_arrays() -> None:
    rng = np.random.default_rng(1)
    y, p = make_multiclass(rng, 200, 4, palette=6)
    w = rng.random(200)
    rankings = [rank_binary(y == c, p[:, c], w) for c in range(4)]
    for average in ("macro", "weighted", None):
        assert_array_equal(
            roc_auc_ovr_from_rankings(rankings, average=average),  # type: ignore[arg-type]
            roc_auc_ovr(y, p, sample_weight=w, average=average),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("palette", [None, 3, 5])
@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_roc_auc_ovo_matches_sklearn(average: str, palette: int | None) -> None:
    for seed in range(10):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(3, 6))
        y, p = make_multiclass(rng, int(rng.integers(k, 150)), k, palette=palette)
        expected = skm.roc_auc_score(y, p, multi_class="ovo", average=average)
        assert roc_auc_ovo(y, p, average=average) == pytest.approx(expected, abs=TOL)  # type: ignore[arg-type]


def hand_weighted_ovo(y: np.ndarray, p: np.ndarray, w: np.ndarray, average: str) -> float:
    """Hand & Till with weights, from the definition: pairs of rows, no sorting, no curves."""
    k = p.shape[1]
    pair_scores, prevalence = [], []
    for a, b in combinations(range(k), 2):
        aucs = []
        for pos, neg in ((a, b), (b, a)):
            num = sum(
                w[i] * w[j] * ((p[i, pos] > p[j, pos]) + 0.5 * (p[i, pos] == p[j, pos]))
                for i in np.flatnonzero(y == pos)
                for j in np.flatnonzero(y == neg)
            )
            aucs.append(num / (w[y == pos].sum() * w[y == neg].sum()))
        pair_scores.append(sum(aucs) / 2)
        prevalence.append(w[(y == a) | (y == b)].sum() / w.sum())
    return float(np.average(pair_scores, weights=prevalence if average == "weighted" else None))


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_weighted_ovo_equals_a_hand_computation_from_the_definition(average: str) -> None:
    for seed in range(4):
        rng = np.random.default_rng(seed)
        y, p = make_multiclass(rng, 40, 3 + seed % 2, palette=5)
        w = rng.random(40) * (rng.random(40) < 0.8)
        w[: p.shape[1]] = 1.0  # every class keeps some weight
        expected = hand_weighted_ovo(y, p, w, average)
        got = roc_auc_ovo(y, p, sample_weight=w, average=average)  # type: ignore[arg-type]
        assert got == pytest.approx(expected, abs=TOL)


def test_weighted_ovo_with_integer_weights_equals_sklearn_on_repeated_rows() -> None:
    rng = np.random.default_rng(3)
    y, p = make_multiclass(rng, 90, 4, palette=6)
    w = rng.integers(1, 4, 90)
    for average in ("macro", "weighted"):
        expected = skm.roc_auc_score(
            np.repeat(y, w), np.repeat(p, w, axis=0), multi_class="ovo", average=average
        )
        got = roc_auc_ovo(y, p, sample_weight=w.astype(float), average=average)  # type: ignore[arg-type]
        assert got == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize(
    "call",
    [
        lambda y, p, **kw: roc_auc_ovr(y, p, **kw),
        lambda y, p, **kw: roc_auc_ovr(y, p, average="micro", **kw),
        lambda y, p, **kw: roc_auc_ovr(y, p, average="weighted", **kw),
        lambda y, p, **kw: roc_auc_ovo(y, p, **kw),
    ],
)
def test_classes_absent_from_y_true_raise_naming_them(call: Any) -> None:
    y = np.array([0, 0, 2, 2, 0])
    p = np.full((5, 4), 0.25)
    with pytest.raises(UndefinedMetricError, match=r"classes 1, 3 have no samples"):
        call(y, p)
    with pytest.raises(UndefinedMetricError, match=r"classes 'dog', 'emu'"):
        call(y, p, names=["cat", "dog", "eel", "emu"])
    with pytest.raises(ValueError):  # sklearn refuses too
        skm.roc_auc_score(y, p, multi_class="ovr")


def test_a_class_present_only_with_zero_weight_counts_as_absent() -> None:
    y = np.array([0, 1, 2, 2, 0, 1])
    p = np.random.default_rng(0).dirichlet(np.ones(3), 6)
    w = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    for fn in (roc_auc_ovr, roc_auc_ovo):
        with pytest.raises(UndefinedMetricError, match="class 1 has no samples"):
            fn(y, p, sample_weight=w)


@pytest.mark.parametrize(
    ("y", "p", "kwargs", "field"),
    [
        ([0, 1, 3], np.full((3, 3), 1 / 3), {}, "y_true_idx"),
        ([0, 1, -1], np.full((3, 3), 1 / 3), {}, "y_true_idx"),
        ([0.0, 1.0, 2.0], np.full((3, 3), 1 / 3), {}, "y_true_idx"),
        ([0, 1], np.full((3, 3), 1 / 3), {}, "y_score"),
        ([0, 1, 2], np.full(3, 1 / 3), {}, "y_score"),
        ([0, 1, 2], np.full((3, 3), 1 / 3), {"average": "samples"}, "average"),
        ([0, 1, 2], np.full((3, 3), 1 / 3), {"sample_weight": [1.0, 2.0]}, "sample_weight"),
    ],
)
def test_multiclass_inputs_are_validated(
    y: list[Any], p: np.ndarray, kwargs: dict[str, Any], field: str
) -> None:
    for fn in (roc_auc_ovr, roc_auc_ovo):
        with pytest.raises(InvalidInput) as err:
            fn(np.array(y), p, **kwargs)
        assert err.value.field == field


# -- multilabel -----------------------------------------------------------------------------------


def make_multilabel(
    rng: np.random.Generator, n: int, labels: int, *, decimals: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every label and every row has both a positive and a negative."""
    s = rng.random((n, labels))
    y = rng.random((n, labels)) < 0.2 + 0.6 * s
    y[np.arange(n), rng.integers(0, labels, n)] = True
    y[np.arange(n), (np.argmax(y, axis=1) + 1) % labels] = False
    y[0, :], y[1, :] = True, False
    y[0, 0], y[1, 0] = False, True
    if decimals is not None:
        s = np.round(s, decimals)
    return y.astype(np.int64), s


MULTILABEL = [(roc_auc_multilabel, skm.roc_auc_score), (average_precision_multilabel,
              skm.average_precision_score)]  # fmt: skip


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted", "samples", None])
@pytest.mark.parametrize(("ours", "theirs"), MULTILABEL)
def test_multilabel_metrics_match_sklearn(
    ours: Any, theirs: Any, average: str | None, weights: bool, decimals: int | None
) -> None:
    for seed in range(6):
        rng = np.random.default_rng(seed)
        y, s = make_multilabel(rng, 50, int(rng.integers(3, 7)), decimals=decimals)
        w = rng.random(50) * (rng.random(50) < 0.9) if weights else None
        if w is not None:
            w[:2] = 1.0
        got = ours(y, s, sample_weight=w, average=average)
        assert_allclose(got, theirs(y, s, sample_weight=w, average=average), rtol=0, atol=TOL)


@pytest.mark.parametrize(("ours", "theirs"), MULTILABEL)
def test_weighted_average_skips_labels_without_positives_like_sklearn(
    ours: Any, theirs: Any
) -> None:
    y, s = make_multilabel(np.random.default_rng(0), 40, 4)
    y[:, 2] = 0
    w = np.random.default_rng(1).random(40)
    for sw in (None, w):
        expected = quiet(theirs, y, s, average="weighted", sample_weight=sw)
        assert ours(y, s, average="weighted", sample_weight=sw) == pytest.approx(expected, abs=TOL)


def test_macro_roc_auc_raises_naming_every_label_with_one_class() -> None:
    y, s = make_multilabel(np.random.default_rng(0), 30, 5)
    y[:, 1], y[:, 3] = 1, 0
    for average in ("macro", None):
        with pytest.raises(UndefinedMetricError, match=r"labels 'b', 'd'.*only one class"):
            roc_auc_multilabel(y, s, average=average, names=list("abcde"))  # type: ignore[arg-type]
    assert np.isnan(quiet(skm.roc_auc_score, y, s))  # sklearn: NaN


def test_weighted_roc_auc_raises_for_a_label_without_negatives() -> None:
    y, s = make_multilabel(np.random.default_rng(0), 30, 4)
    y[:, 2] = 1
    with pytest.raises(UndefinedMetricError, match="label 2"):
        roc_auc_multilabel(y, s, average="weighted")


def test_average_precision_raises_for_labels_without_positives_but_not_without_negatives() -> None:
    y, s = make_multilabel(np.random.default_rng(0), 30, 4)
    y[:, 1], y[:, 3] = 0, 1
    with pytest.raises(UndefinedMetricError, match=r"label 1\b"):
        average_precision_multilabel(y, s)
    assert quiet(skm.average_precision_score, y, s, average=None)[1] == 0.0  # sklearn's 0
    y[:, 1] = y[:, 0]
    assert average_precision_multilabel(y, s) == pytest.approx(
        skm.average_precision_score(y, s), abs=TOL
    )


def test_samples_average_raises_naming_rows_with_one_class() -> None:
    y, s = make_multilabel(np.random.default_rng(0), 30, 4)
    y[7], y[9] = 1, 0
    with pytest.raises(UndefinedMetricError, match=r"rows 7, 9 have only one class"):
        roc_auc_multilabel(y, s, average="samples")
    with pytest.raises(UndefinedMetricError, match=r"row 9 has no positive label"):
        average_precision_multilabel(y, s, average="samples")


def test_samples_average_skips_zero_weight_rows_like_sklearn() -> None:
    y, s = make_multilabel(np.random.default_rng(0), 30, 4)
    y[7], y[9] = 1, 0
    w = np.ones(30)
    w[[7, 9]] = 0.0
    for ours, theirs in MULTILABEL:
        expected = quiet(theirs, y, s, average="samples", sample_weight=w)
        assert ours(y, s, average="samples", sample_weight=w) == pytest.approx(expected, abs=TOL)


def test_micro_and_weighted_averages_raise_when_no_cell_is_positive() -> None:
    y, s = np.zeros((5, 3)), np.random.default_rng(0).random((5, 3))
    for fn in (roc_auc_multilabel, average_precision_multilabel):
        for average in ("micro", "weighted"):
            with pytest.raises(UndefinedMetricError):
                fn(y, s, average=average)


@pytest.mark.parametrize(
    ("y", "s", "kwargs", "field"),
    [
        ([[0, 2], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], {}, "y_true"),
        ([[0, 1], [1, 0]], [[0.1, 0.2]], {}, "y_score"),
        ([0, 1], [0.1, 0.2], {}, "y_score"),
        ([[0, 1], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], {"average": "binary"}, "average"),
    ],
)
def test_multilabel_inputs_are_validated(
    y: list[Any], s: list[Any], kwargs: dict[str, Any], field: str
) -> None:
    for fn in (roc_auc_multilabel, average_precision_multilabel):
        with pytest.raises(InvalidInput) as err:
            fn(np.array(y), np.array(s), **kwargs)
        assert err.value.field == field


def test_the_ranking_module_exports_what_the_report_and_registry_call() -> None:
    used = {"BinaryRanking", "rank_binary", "roc_curve", "precision_recall_curve",
            "downsample_curve", "roc_auc", "average_precision", "counts_at_threshold",
            "operating_points", "roc_auc_ovr", "roc_auc_ovr_from_rankings", "roc_auc_ovo",
            "roc_auc_multilabel", "average_precision_multilabel"}  # fmt: skip
    assert used <= set(ranking.__all__)
    assert all(hasattr(ranking, name) for name in ranking.__all__)
