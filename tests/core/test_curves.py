"""The ranked binary column and what is read off it: counts, curves, operating points, thinning.

Curves are compared with scikit-learn array for array: the points are the same, not just close.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from sklearn import metrics as skm

from app.core.curves import (
    BinaryRanking,
    counts_at_threshold,
    downsample_curve,
    operating_points,
    precision_recall_curve,
    rank_binary,
    roc_curve,
)
from app.errors import InvalidInput

WEIGHTS = (None, "float", "integer", "float_with_zeros")


def make_batch(
    rng: np.random.Generator,
    n: int,
    *,
    decimals: int | None = None,
    float32: bool = False,
    weights: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels correlated with the scores, optional ties, dtype and weights."""
    s = rng.random(n)
    y = rng.random(n) < 0.25 + 0.5 * s
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
        w[0] = 0.5  # never all zero
    return y, s, w


def quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call sklearn, which warns (an error under our pytest config) on one-class input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def assert_same_curve(ours: tuple[np.ndarray, ...], theirs: tuple[np.ndarray, ...]) -> None:
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == np.float64
        assert a.shape == b.shape
        assert_array_equal(a, np.asarray(b, dtype=np.float64))


def brute_counts(y: np.ndarray, s: np.ndarray, w: np.ndarray | None, t: float) -> tuple:
    w = np.ones(len(y)) if w is None else w
    pred = s >= t
    return (
        (w * (pred & y)).sum(),
        (w * (pred & ~y)).sum(),
        (w * (~pred & ~y)).sum(),
        (w * (~pred & y)).sum(),
    )


# -- the ranking -------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("decimals", [None, 1])
def test_ranking_counts_equal_a_direct_count_at_every_threshold(
    weights: str | None, decimals: int | None
) -> None:
    rng = np.random.default_rng(7)
    y, s, w = make_batch(rng, 200, decimals=decimals, weights=weights)
    r = rank_binary(y, s, w)
    for i, t in enumerate(r.thresholds):
        tp, fp, _, _ = brute_counts(y, s, w, t)
        assert r.tps[i] == pytest.approx(tp, rel=1e-12)
        assert r.fps[i] == pytest.approx(fp, rel=1e-12)


def test_thresholds_are_the_distinct_scores_of_weighted_rows_strictly_decreasing() -> None:
    y = np.array([1, 0, 1, 0, 1, 0], bool)
    s = np.array([0.2, 0.9, 0.2, 0.5, 0.7, 0.7])
    w = np.array([1.0, 0.0, 2.0, 1.0, 1.0, 1.0])
    r = rank_binary(y, s, w)
    assert_array_equal(r.thresholds, [0.7, 0.5, 0.2])  # 0.9 only on a zero-weight row
    assert_array_equal(r.tps, [1.0, 1.0, 4.0])
    assert_array_equal(r.fps, [1.0, 2.0, 2.0])
    assert np.all(np.diff(r.thresholds) < 0)


def test_zero_weight_rows_stay_in_the_sorted_scores() -> None:
    s = np.array([0.2, 0.9, 0.5, 0.5])
    r = rank_binary(np.array([1, 0, 1, 0], bool), s, np.array([1.0, 0.0, 1.0, 1.0]))
    assert_array_equal(r.scores, [0.9, 0.5, 0.5, 0.2])


@pytest.mark.parametrize("weights", [None, "float"])
def test_sorted_scores_are_every_row_in_decreasing_order_in_the_input_dtype(
    weights: str | None,
) -> None:
    y, s, w = make_batch(np.random.default_rng(3), 500, decimals=2, float32=True, weights=weights)
    r = rank_binary(y, s, w)
    assert r.scores.dtype == np.float32
    assert_array_equal(r.scores, np.sort(s)[::-1])
    assert r.thresholds.dtype == np.float64


def test_float32_ties_stay_ties() -> None:
    # Distinct in float64, equal once rounded to float32: one threshold, not three.
    s64 = np.array([0.1, 0.1 + 1e-12, 0.1 - 1e-12, 0.7])
    s32 = s64.astype(np.float32)
    r = rank_binary(np.array([1, 0, 1, 0], bool), s32)
    assert len(r.thresholds) == 2
    assert_array_equal(r.thresholds, np.unique(s32).astype(np.float64)[::-1])
    assert r.tps.tolist() == [0, 2] and r.fps.tolist() == [1, 2]


def test_counts_are_int64_without_weights_and_float64_with_weights() -> None:
    y, s, w = make_batch(np.random.default_rng(0), 50, weights="float")
    plain, weighted = rank_binary(y, s), rank_binary(y, s, w)
    assert plain.tps.dtype == plain.fps.dtype == np.int64 and not plain.weighted
    assert weighted.tps.dtype == weighted.fps.dtype == np.float64 and weighted.weighted
    assert isinstance(plain.n_pos, int) and plain.n_pos + plain.n_neg == 50
    assert isinstance(weighted.n_pos, float)


def test_ranking_arrays_are_read_only() -> None:
    r = rank_binary(np.array([1, 0, 1], bool), np.array([0.3, 0.2, 0.1]))
    for arr in (r.thresholds, r.tps, r.fps, r.scores):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


def test_zero_and_one_labels_rank_like_booleans() -> None:
    s = np.array([0.3, 0.2, 0.1, 0.2])
    a, b = rank_binary(np.array([1, 0, 1, 1]), s), rank_binary(np.array([1, 0, 1, 1], bool), s)
    assert_array_equal(a.tps, b.tps)
    assert_array_equal(a.fps, b.fps)


@pytest.mark.parametrize(
    ("y", "s", "w", "field"),
    [
        ([0, 2, 1], [0.1, 0.2, 0.3], None, "y_true"),
        (["a", "b"], [0.1, 0.2], None, "y_true"),
        ([0, 1], [0.1, 0.2, 0.3], None, "y_score"),
        ([], [], None, "y_true"),
        ([0, 1], [0.1, 0.2], [1.0, -1.0], "sample_weight"),
        ([0, 1], [0.1, 0.2], [0.0, 0.0], "sample_weight"),
        ([0, 1], [0.1, 0.2], [1.0], "sample_weight"),
    ],
)
def test_rank_binary_rejects_bad_input_naming_the_field(
    y: list[Any], s: list[float], w: list[float] | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        rank_binary(y, s, w)
    assert err.value.field == field


def test_permuting_rows_leaves_the_unweighted_ranking_unchanged() -> None:
    rng = np.random.default_rng(11)
    y, s, _ = make_batch(rng, 300, decimals=1)
    perm = rng.permutation(300)
    a, b = rank_binary(y, s), rank_binary(y[perm], s[perm])
    for name in ("thresholds", "tps", "fps", "scores"):
        assert_array_equal(getattr(a, name), getattr(b, name))


def test_integer_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(5)
    y, s, _ = make_batch(rng, 120, decimals=1)
    w = rng.integers(1, 5, 120)
    weighted = rank_binary(y, s, w.astype(np.float64))
    repeated = rank_binary(np.repeat(y, w), np.repeat(s, w))
    assert_array_equal(weighted.thresholds, repeated.thresholds)
    assert_array_equal(weighted.tps, repeated.tps)
    assert_array_equal(weighted.fps, repeated.fps)
    assert_array_equal(roc_curve(weighted)[1], roc_curve(repeated)[1])


# -- curves against sklearn --------------------------------------------------------------------


@pytest.mark.parametrize("float32", [False, True])
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_roc_and_pr_curves_equal_sklearn_point_for_point(
    decimals: int | None, weights: str | None, float32: bool
) -> None:
    for seed in range(15):
        rng = np.random.default_rng(seed)
        y, s, w = make_batch(rng, int(rng.integers(2, 150)), decimals=decimals,
                             float32=float32, weights=weights)  # fmt: skip
        r = rank_binary(y, s, w)
        for drop in (True, False):
            assert_same_curve(
                roc_curve(r, drop_intermediate=drop),
                quiet(skm.roc_curve, y, s, sample_weight=w, drop_intermediate=drop),
            )
            assert_same_curve(
                precision_recall_curve(r, drop_intermediate=drop),
                quiet(skm.precision_recall_curve, y, s, sample_weight=w, drop_intermediate=drop),
            )


@pytest.mark.parametrize("n", [1, 2, 3])
def test_curves_of_tiny_batches_equal_sklearn(n: int) -> None:
    for bits in range(2**n):
        y = np.array([(bits >> i) & 1 for i in range(n)], bool)
        for s in ([0.5] * n, [0.9, 0.1, 0.5][:n], [0.2, 0.2, 0.7][:n]):
            r = rank_binary(y, np.array(s))
            assert_same_curve(roc_curve(r), quiet(skm.roc_curve, y, s))
            assert_same_curve(precision_recall_curve(r), quiet(skm.precision_recall_curve, y, s))


def test_all_equal_scores_give_the_chance_diagonal_with_one_threshold() -> None:
    y = np.array([1, 0, 0, 1, 0], bool)
    r = rank_binary(y, np.full(5, 0.3))
    fpr, tpr, thr = roc_curve(r)
    assert_array_equal(fpr, [0.0, 1.0])
    assert_array_equal(tpr, [0.0, 1.0])
    assert_array_equal(thr, [np.inf, 0.3])
    precision, recall, _ = precision_recall_curve(r)
    assert_array_equal(precision, [0.4, 1.0])
    assert_array_equal(recall, [1.0, 0.0])


def test_one_class_curves_have_nan_rates_exactly_where_sklearn_has() -> None:
    y, s = np.ones(4, bool), np.array([0.1, 0.4, 0.4, 0.9])
    r = rank_binary(y, s)
    fpr, tpr, _ = roc_curve(r)
    assert np.isnan(fpr).all() and not np.isnan(tpr).any()
    with pytest.warns(skm._ranking.UndefinedMetricWarning):
        assert_same_curve((fpr, tpr), skm.roc_curve(y, s)[:2])
    none = rank_binary(~y, s)
    assert np.isnan(roc_curve(none)[1]).all()
    with pytest.warns(UserWarning, match="No positive class"):
        expected = skm.precision_recall_curve(~y, s)
    assert_same_curve(precision_recall_curve(none), expected)


finite64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
special = st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-300, 5e-324, -1e300, 1e300, 0.1, 0.3])


@st.composite
def binary_batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Few distinct scores (many ties) from adversarial values, adversarial weights."""
    n = draw(st.integers(1, 25))
    float32 = draw(st.booleans())
    value = finite32 if float32 else (finite64 | special)
    pool = draw(st.lists(value, min_size=1, max_size=5))
    s = np.array(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    s = s.astype(np.float32 if float32 else np.float64)
    y = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    w = None
    if draw(st.booleans()):
        wv = st.sampled_from([0.0, 1.0, 0.1, 0.3, 2.0, 1e-8, 7.0, 1e8])
        w = np.array(draw(st.lists(wv, min_size=n, max_size=n)))
        assume(w.any())
    return y, s, w


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(binary_batches())
def test_curves_equal_sklearn_on_adversarial_batches(
    batch: tuple[np.ndarray, np.ndarray, np.ndarray | None],
) -> None:
    y, s, w = batch
    r = rank_binary(y, s, w)
    for drop in (True, False):
        assert_same_curve(
            roc_curve(r, drop_intermediate=drop),
            quiet(skm.roc_curve, y, s, sample_weight=w, drop_intermediate=drop),
        )
        assert_same_curve(
            precision_recall_curve(r, drop_intermediate=drop),
            quiet(skm.precision_recall_curve, y, s, sample_weight=w, drop_intermediate=drop),
        )


# -- confusion counts ------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "float_with_zeros"])
def test_counts_at_threshold_equal_a_direct_count(weights: str | None) -> None:
    rng = np.random.default_rng(2)
    y, s, w = make_batch(rng, 400, decimals=2, weights=weights)
    r = rank_binary(y, s, w)
    candidates = [*np.unique(s), 0.505, -1.0, 2.0, -np.inf, np.inf, float(np.nextafter(0.5, 0))]
    for t in candidates:
        got = counts_at_threshold(r, t)
        want = brute_counts(y, s, w, t)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), t


def test_counts_at_threshold_are_ints_without_weights() -> None:
    r = rank_binary(np.array([1, 0, 1, 0], bool), np.array([0.9, 0.8, 0.3, 0.1]))
    counts = counts_at_threshold(r, 0.5)
    assert counts == (1, 1, 1, 1)
    assert all(type(c) is int for c in counts)
    assert counts_at_threshold(r, 1.0) == (0, 0, 2, 2)  # above every score: predict nothing


def test_counts_at_threshold_reject_nan() -> None:
    r = rank_binary(np.array([1, 0], bool), np.array([0.9, 0.1]))
    with pytest.raises(InvalidInput):
        counts_at_threshold(r, float("nan"))


@pytest.mark.parametrize("weights", WEIGHTS)
def test_operating_points_equal_sklearn_confusion_matrix_at_thresholds(
    weights: str | None,
) -> None:
    y, s, w = make_batch(np.random.default_rng(9), 150, decimals=2, weights=weights)
    op = operating_points(rank_binary(y, s, w))
    tns, fps, fns, tps, thr = skm.confusion_matrix_at_thresholds(y, s, sample_weight=w)
    for ours, theirs in ((op.tn, tns), (op.fp, fps), (op.fn, fns), (op.tp, tps)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert_array_equal(op.thresholds, thr)


# -- thinning curves for display -----------------------------------------------------------------


def exact_area(x: np.ndarray, y: np.ndarray) -> Fraction:
    """Signed trapezoid area in rational arithmetic on the float values."""
    fx, fy = [Fraction(v) for v in x], [Fraction(v) for v in y]
    return sum(
        ((fx[i + 1] - fx[i]) * (fy[i] + fy[i + 1]) / 2 for i in range(len(fx) - 1)), Fraction(0)
    )


def test_dropping_collinear_points_preserves_the_trapezoid_area_exactly() -> None:
    rng = np.random.default_rng(0)
    beyond_sklearn = 0
    for _ in range(30):
        # A ROC curve with every threshold kept: runs of collinear points from ties and from
        # equal steps, coordinates that are non-dyadic fractions (k / n).
        y, s, _ = make_batch(rng, int(rng.integers(20, 300)), decimals=int(rng.integers(1, 3)))
        fpr, tpr, thr = roc_curve(rank_binary(y, s), drop_intermediate=False)
        x2, y2, t2 = downsample_curve(fpr, tpr, thr, 10**6)
        assert exact_area(x2, y2) == exact_area(fpr, tpr)
        assert len(x2) <= len(fpr)
        assert x2[0] == fpr[0] and x2[-1] == fpr[-1] and y2[-1] == tpr[-1]
        assert set(t2) <= set(thr)
        beyond_sklearn += len(x2) < len(roc_curve(rank_binary(y, s))[0])
    assert beyond_sklearn > 10  # sloped collinear runs that sklearn's step rule keeps


def test_collinear_points_on_a_sloped_line_are_dropped() -> None:
    x = np.array([0.0, 0.1, 0.2, 0.30000000000000004, 1.0])
    y = 3 * x  # collinear in floats? decided exactly, whichever way
    x2, y2, _ = downsample_curve(x, y, np.arange(5.0), 100)
    assert exact_area(x2, y2) == exact_area(x, y)
    xs, ys, _ = downsample_curve([0, 1, 2, 3, 4], [0, 2, 4, 6, 8], np.arange(5.0), 100)
    assert_array_equal(xs, [0, 4])
    assert_array_equal(ys, [0, 8])


def test_a_point_one_ulp_off_the_line_is_kept() -> None:
    mid = float(np.nextafter(0.5, 1.0))
    x2, y2, _ = downsample_curve([0.0, 0.5, 1.0], [0.0, mid, 1.0], [3.0, 2.0, 1.0], 10)
    assert_array_equal(x2, [0.0, 0.5, 1.0])
    assert exact_area(x2, y2) != exact_area(np.array([0.0, 1.0]), np.array([0.0, 1.0]))


def test_repeated_points_are_dropped_keeping_the_first() -> None:
    x2, y2, t2 = downsample_curve([0, 0, 0.5, 0.5, 1], [0, 0, 1, 1, 1], [9, 8, 7, 6, 5], 10)
    assert_array_equal(x2, [0, 0.5, 1])
    assert_array_equal(y2, [0, 1, 1])
    assert_array_equal(t2, [9, 7, 5])


@pytest.mark.parametrize("max_points", [2, 3, 10, 57])
def test_downsampled_curve_has_at_most_max_points_and_keeps_both_ends(max_points: int) -> None:
    t = np.linspace(0, 1, 1000)
    x, y = t, np.sqrt(t)  # strictly concave: nothing is collinear
    x2, y2, t2 = downsample_curve(x, y, t[::-1], max_points)
    assert len(x2) == max_points == len(y2) == len(t2)
    assert (x2[0], y2[0], x2[-1], y2[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(x2) > 0)


def test_short_curves_pass_through_unchanged() -> None:
    x2, y2, t2 = downsample_curve([0.0, 0.2, 1.0], [0.0, 0.7, 1.0], [np.inf, 0.5, 0.1], 3)
    assert_array_equal(x2, [0.0, 0.2, 1.0])
    assert_array_equal(y2, [0.0, 0.7, 1.0])
    assert_array_equal(t2, [np.inf, 0.5, 0.1])


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, "10"])
def test_downsample_rejects_max_points_below_two_or_not_an_integer(bad: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        downsample_curve([0, 1], [0, 1], [1, 0], bad)
    assert err.value.field == "max_points"


def test_downsample_rejects_mismatched_or_non_finite_coordinates() -> None:
    with pytest.raises(InvalidInput):
        downsample_curve([0, 1, 2], [0, 1], [1, 0], 5)
    with pytest.raises(InvalidInput):
        downsample_curve([0, np.nan], [0, 1], [1, 0], 5)


def test_binary_ranking_is_frozen() -> None:
    r = rank_binary(np.array([1, 0], bool), np.array([0.9, 0.1]))
    assert isinstance(r, BinaryRanking)
    with pytest.raises(AttributeError):
        r.tps = r.fps  # type: ignore[misc]


def test_downsampling_a_huge_curve_keeps_the_ends_and_the_cap() -> None:
    # More than 16x the cap: the even pre-thinning path.
    rng = np.random.default_rng(11)
    x = np.cumsum(rng.random(50_000))
    x /= x[-1]
    y = np.sqrt(x)
    thr = np.arange(50_000, dtype=np.float64)[::-1]
    dx, dy, dt = downsample_curve(x, y, thr, 100)
    assert len(dx) <= 100
    assert (dx[0], dy[0], dt[0]) == (x[0], y[0], thr[0])
    assert (dx[-1], dy[-1], dt[-1]) == (x[-1], y[-1], thr[-1])
    assert np.all(np.diff(dx) > 0)
    # Every kept point is a point of the curve, with its own threshold.
    assert np.array_equal(np.sqrt(dx), dy) and np.array_equal(x[(50_000 - 1 - dt).astype(int)], dx)
