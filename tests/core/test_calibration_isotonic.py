"""Isotonic calibration against scikit-learn's IsotonicRegression and CalibratedClassifierCV,
and histogram binning against the reliability bins of app.core.probabilistic."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression

from app.core import probabilistic as prob
from app.core.calibration import HistogramBinning, IsotonicCalibration
from app.errors import InvalidInput


def sklearn_isotonic(x: Any, y: Any, w: Any) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip").fit(x, y, sample_weight=w)


def assert_same_isotonic(
    cal: IsotonicCalibration, ref: IsotonicRegression, column: int = 0
) -> None:
    m = cal.columns[column]
    np.testing.assert_array_equal(m.x_thresholds, ref.X_thresholds_)
    np.testing.assert_allclose(m.y_thresholds, ref.y_thresholds_, rtol=0, atol=1e-12)


@st.composite
def binary_batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scores with many ties, weights with zeros (integer weights make exact ties of means)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(2, 400))
    decimals = draw(st.sampled_from([1, 2, 3, None]))
    x = rng.random(n)
    if decimals is not None:
        x = np.round(x, decimals)
    y = rng.random(n) < x
    y[:2] = [False, True]
    x[:2] = [0.25, 0.75]
    weights = draw(st.sampled_from(["none", "real", "integer"]))
    w = None
    if weights == "real":
        w = rng.exponential(size=n) * (rng.random(n) > 0.3)
    elif weights == "integer":
        w = rng.integers(0, 4, n).astype(np.float64)
    if w is not None:
        w[:2] = 1.0
    return x, y, w


@settings(max_examples=150, deadline=None)
@given(binary_batches())
def test_isotonic_equals_sklearn_on_fit_and_on_new_scores(batch: Any) -> None:
    x, y, w = batch
    cal = IsotonicCalibration.fit(y, x, score_type="probability", sample_weight=w)
    ref = sklearn_isotonic(x, y, w)
    assert_same_isotonic(cal, ref)
    new = np.random.default_rng(len(x)).random(500)
    new[:3] = [0.0, 1.0, 0.25]
    np.testing.assert_allclose(cal.apply(new), ref.predict(new), rtol=0, atol=1e-12)


def test_isotonic_merges_scores_closer_than_float64_resolution_as_sklearn() -> None:
    base = 0.5 + np.arange(12) * 4e-16  # a chain of gaps below 1e-15: sklearn's grouping rule
    x = np.concatenate([base, [0.1, 0.9, 1e-17, 3e-17, 0.9 + 2e-16]])
    rng = np.random.default_rng(0)
    y = rng.random(x.size) < 0.5
    y[:2] = [False, True]
    w = rng.exponential(size=x.size)
    cal = IsotonicCalibration.fit(y, x, score_type="probability", sample_weight=w)
    ref = sklearn_isotonic(x, y, w)
    assert_same_isotonic(cal, ref)
    np.testing.assert_allclose(cal.apply(x), ref.predict(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_binary_isotonic_on_logits_interpolates_in_logit_space(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = np.round(rng.normal(size=300) * 3, 1)
    y = rng.random(300) < 1 / (1 + np.exp(-z))
    w = rng.exponential(size=300)
    cal = IsotonicCalibration.fit(y, z, score_type="logit", sample_weight=w)
    ref = sklearn_isotonic(z, y, w)
    assert_same_isotonic(cal, ref)
    new = rng.normal(size=200) * 5
    np.testing.assert_allclose(cal.apply(new), ref.predict(new), rtol=0, atol=1e-12)


class _Probabilities(ClassifierMixin, BaseEstimator):
    """A "model" whose predict_proba is its input."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Probabilities:
        self.classes_ = np.arange(x.shape[1])
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.argmax(axis=1)


def calibrated_classifier(p: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = FrozenEstimator(_Probabilities().fit(p, y))
        return CalibratedClassifierCV(est, method="isotonic").fit(p, y, sample_weight=w)


@pytest.mark.parametrize("seed", range(12))
def test_multiclass_isotonic_equals_calibrated_classifier_cv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 7))
    n = int(rng.integers(50, 600))
    p = rng.dirichlet(np.full(k, 0.5), n)
    if seed % 2:
        p = np.round(p, 2)
        p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    y[:k] = np.arange(k)  # every class present: sklearn's classes_ come from y
    w = None
    if seed % 3:
        w = rng.exponential(size=n) * (rng.random(n) > 0.2)
        w[:k] = 1.0
    cal = IsotonicCalibration.fit(y, p, score_type="probability", sample_weight=w)
    ref = calibrated_classifier(p, y, w)
    for col, iso in enumerate(ref.calibrated_classifiers_[0].calibrators):
        assert_same_isotonic(cal, iso, col)
    new = rng.dirichlet(np.full(k, 0.5), 300)
    new[0] = np.eye(k)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ref.predict_proba(new)
    np.testing.assert_allclose(cal.apply(new), expected, rtol=0, atol=1e-12)


def test_binary_isotonic_equals_calibrated_classifier_cv() -> None:
    rng = np.random.default_rng(3)
    p1 = np.round(rng.random(400), 2)
    y = (rng.random(400) < p1).astype(int)
    w = rng.integers(0, 3, 400).astype(float)
    p = np.column_stack([1 - p1, p1])
    ref = calibrated_classifier(p, y, w)
    cal = IsotonicCalibration.fit(y, p1, score_type="probability", sample_weight=w)
    new = rng.random(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ref.predict_proba(np.column_stack([1 - new, new]))[:, 1]
    np.testing.assert_allclose(cal.apply(new), expected, rtol=0, atol=1e-12)


def test_multiclass_rows_where_every_column_maps_to_zero_become_uniform() -> None:
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    y = np.array([1, 2, 0, 1])  # every column is anti-informative: maps give 0 low, > 0 high
    cal = IsotonicCalibration.fit(y, p, score_type="probability")
    out = cal.apply(np.array([[0.05, 0.05, 0.9], [0.2, 0.3, 0.5]]))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    low = cal.apply(np.array([[1 / 3, 1 / 3, 1 / 3]]))
    assert np.isfinite(low).all()


def test_multiclass_logits_are_calibrated_through_their_softmax() -> None:
    rng = np.random.default_rng(8)
    z = rng.normal(size=(300, 4)) * 2
    y = rng.integers(0, 4, 300)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    from_logits = IsotonicCalibration.fit(y, z, score_type="logit")
    from_proba = IsotonicCalibration.fit(y, p, score_type="probability")
    np.testing.assert_allclose(from_logits.apply(z + 5.0), from_proba.apply(p), atol=1e-12)


def test_a_constant_column_is_allowed_in_multiclass_but_not_a_constant_batch() -> None:
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.9, 0.1, 0.0], [0.4, 0.6, 0.0]])
    cal = IsotonicCalibration.fit([0, 1, 0, 2], p, score_type="probability")
    assert cal.columns[2].x_thresholds.tolist() == [0.0]
    np.testing.assert_allclose(cal.apply(p).sum(axis=1), 1.0)
    with pytest.raises(InvalidInput) as err:
        IsotonicCalibration.fit([0, 1, 2], np.full((3, 3), 1 / 3), score_type="probability")
    assert err.value.field == "y_score"


@pytest.mark.parametrize(
    ("scores", "weights"),
    [([0.3, 0.3, 0.3], None), ([0.3, 0.7, 0.3], [1.0, 0.0, 1.0]), ([0.3, 0.3 + 1e-16, 0.3], None)],
)
def test_isotonic_needs_two_distinct_scores(scores: list[float], weights: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        IsotonicCalibration.fit([0, 1, 1], scores, score_type="probability", sample_weight=weights)
    assert err.value.field == "y_score"


# -- histogram binning --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_uniform_histogram_values_are_the_reliability_bins_observed_frequencies(
    seed: int, n_bins: int
) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(200), 2)
    y = rng.random(200) < p
    y[:2] = [False, True]
    w = rng.exponential(size=200) if seed % 2 else None
    cal = HistogramBinning.fit(y, p, score_type="probability", sample_weight=w, n_bins=n_bins)
    bins = prob.reliability_bins(y, p, w, n_bins=n_bins)
    m = cal.columns[0]
    np.testing.assert_allclose(m.edges, bins.edges)
    full = ~bins.empty
    np.testing.assert_allclose(m.values[full], bins.observed_frequency[full], rtol=1e-12)
    midpoints = (bins.edges[:-1] + bins.edges[1:]) / 2
    np.testing.assert_allclose(m.values[~full], midpoints[~full])
    ids = np.searchsorted(bins.edges[1:-1], p)
    np.testing.assert_allclose(cal.apply(p), m.values[ids])


def test_quantile_histogram_bins_hold_equal_counts() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(1000)
    y = rng.random(1000) < p**2
    cal = HistogramBinning.fit(y, p, score_type="probability", n_bins=4, strategy="quantile")
    m = cal.columns[0]
    inner = np.quantile(p, [0.25, 0.5, 0.75])
    np.testing.assert_allclose(m.edges, [0.0, *inner, 1.0])
    ids = np.searchsorted(inner, p)
    np.testing.assert_array_equal(np.bincount(ids), [250, 250, 250, 250])
    rates = [y[ids == b].mean() for b in range(4)]
    np.testing.assert_allclose(m.values, rates)


def test_histogram_binning_works_on_logits_and_multiclass() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 3)) * 2
    y = rng.integers(0, 3, 500)
    cal = HistogramBinning.fit(y, z, score_type="logit", n_bins=5)
    out = cal.apply(z)
    assert out.shape == (500, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    zb = z[:, 0]
    binary = HistogramBinning.fit(y == 0, zb, score_type="logit", n_bins=5)
    same = HistogramBinning.fit(y == 0, 1 / (1 + np.exp(-zb)), score_type="probability", n_bins=5)
    np.testing.assert_allclose(binary.apply(zb), same.apply(1 / (1 + np.exp(-zb))))


@pytest.mark.parametrize(
    ("params", "field"),
    [({"n_bins": 0}, "n_bins"), ({"n_bins": 2.5}, "n_bins"), ({"strategy": "kmeans"}, "strategy")],
)
def test_histogram_parameters_are_checked(params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        HistogramBinning.fit([0, 1], [0.2, 0.8], score_type="probability", **params)
    assert err.value.field == field
