"""Platt scaling and beta calibration against scikit-learn's unpenalized LogisticRegression."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_expit
from scipy.special import logit as sp_logit
from sklearn.calibration import _sigmoid_calibration
from sklearn.linear_model import LogisticRegression

from app.core.calibration import BetaCalibration, PlattScaling
from app.errors import InvalidInput

EPS = np.finfo(np.float64).eps


def unpenalized(x: np.ndarray, y: Any, w: Any) -> LogisticRegression:
    """The reference MLE: LogisticRegression without penalty and with tight tolerances."""
    lr = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-12, max_iter=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs "abnormal termination" at machine precision
        return lr.fit(x, y, sample_weight=w)


def clipped_logit(p: Any) -> np.ndarray:
    return sp_logit(np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS))


@st.composite
def binary_batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Overlapping classes (so the MLE exists), ties, weights with zeros, varied scales."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(20, 500))
    slope = draw(st.sampled_from([-1.0, 0.3, 1.0, 3.0]))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    z = rng.normal(size=n) * scale
    if draw(st.booleans()):
        z = np.round(z, 1)
    y = rng.random(n) < expit(slope * z / scale)
    # overlap both ways (so the MLE exists): each class at both ends of the scores
    lo, hi = z.min() - 1.0, z.max() + 1.0
    z[:4] = [lo, hi, lo, hi]
    y[:4] = [True, True, False, False]
    w = None
    if draw(st.booleans()):
        w = rng.exponential(size=n) * (rng.random(n) > 0.25)
        w[:4] = 1.0
    return z, y, w


# -- Platt ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(binary_batches())
def test_platt_equals_unpenalized_logistic_regression_on_the_logit(batch: Any) -> None:
    z, y, w = batch
    cal = PlattScaling.fit(y, z, score_type="logit", sample_weight=w)
    ref = unpenalized(z[:, None], y, w)
    new = np.linspace(z.min() - 2, z.max() + 2, 101)
    np.testing.assert_allclose(cal.apply(new), ref.predict_proba(new[:, None])[:, 1], atol=1e-6)
    assert cal.a == pytest.approx(ref.coef_[0, 0], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_platt_on_probabilities_regresses_on_their_clipped_logit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 0.5, 400)
    p[:4] = [0.0, 1.0, 0.0, 1.0]
    y = rng.random(400) < p**1.5
    y[:4] = [True, False, False, True]
    w = rng.integers(0, 3, 400).astype(float) if seed % 2 else None
    cal = PlattScaling.fit(y, p, score_type="probability", sample_weight=w)
    ref = unpenalized(clipped_logit(p)[:, None], y, w)
    new = rng.random(100)
    expected = ref.predict_proba(clipped_logit(new)[:, None])[:, 1]
    np.testing.assert_allclose(cal.apply(new), expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_platt_smoothed_targets_equal_a_weighted_fit_on_split_rows(seed: int) -> None:
    """Soft targets t are the same likelihood as each row split into a positive row of weight
    w·t and a negative row of weight w·(1 − t)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=150) * 2
    y = rng.random(150) < expit(2 * z)
    w = rng.exponential(size=150) if seed % 2 else np.ones(150)
    n_pos, n_neg = w[y].sum(), w[~y].sum()
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    cal = PlattScaling.fit(
        y, z, score_type="logit", sample_weight=None if seed % 2 == 0 else w, smooth_targets=True
    )
    ref = unpenalized(
        np.concatenate([z, z])[:, None],
        np.concatenate([np.ones(150), np.zeros(150)]),
        np.concatenate([w * t, w * (1 - t)]),
    )
    new = np.linspace(-6, 6, 25)
    np.testing.assert_allclose(cal.apply(new), ref.predict_proba(new[:, None])[:, 1], atol=1e-6)
    a_sk, b_sk = _sigmoid_calibration(z, y, None if seed % 2 == 0 else w)
    np.testing.assert_allclose(cal.apply(new), expit(-(a_sk * new + b_sk)), atol=1e-4)


@pytest.mark.parametrize(
    "y",
    [[0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 1, 0, 1, 1]],
    ids=["forwards", "backwards", "tied-at-the-border"],
)
def test_platt_refuses_separable_scores_unless_targets_are_smoothed(y: list[int]) -> None:
    z = np.array([-2.0, -1.0, 0.0, 0.0, 1.0, 2.0])
    with pytest.raises(InvalidInput) as err:
        PlattScaling.fit(y, z, score_type="logit")
    assert err.value.field == "y_score"
    cal = PlattScaling.fit(y, z, score_type="logit", smooth_targets=True)
    assert np.isfinite([cal.a, cal.b]).all()


def test_platt_handles_backwards_scores_with_a_negative_slope() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=500)
    y = rng.random(500) < expit(-2 * z)
    cal = PlattScaling.fit(y, z, score_type="logit")
    assert cal.a < 0
    assert cal.a == pytest.approx(unpenalized(z[:, None], y, None).coef_[0, 0], rel=1e-5)


@pytest.mark.parametrize("method", [PlattScaling, BetaCalibration])
def test_platt_and_beta_are_binary_only(method: Any) -> None:
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1]])
    with pytest.raises(InvalidInput) as err:
        method.fit([2, 0, 1], p, score_type="probability")
    assert err.value.field == "y_score"


@pytest.mark.parametrize("method", [PlattScaling, BetaCalibration])
def test_platt_and_beta_need_two_distinct_scores(method: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        method.fit([0, 1, 1], [0.4, 0.4, 0.4], score_type="probability")
    assert err.value.field == "y_score"
    with pytest.raises(InvalidInput) as err:  # 0 and 1e-300 are one value after clipping
        method.fit([0, 1, 1, 0], [0.0, 1e-300, 0.0, 1e-300], score_type="probability")
    assert err.value.field == "y_score"


# -- beta ----------------------------------------------------------------------------------------


def beta_features(p: Any) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.column_stack([np.log(q), -np.log1p(-q)])


@pytest.mark.parametrize("seed", range(10))
def test_beta_equals_logistic_regression_on_its_two_features(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    p = rng.beta(2, 2, n)
    a, b, c = rng.uniform(1.0, 2.5), rng.uniform(1.0, 2.5), rng.normal()
    y = rng.random(n) < expit(a * np.log(p) - b * np.log1p(-p) + c)
    y[:2] = [True, False]
    p[:2] = [0.02, 0.98]
    w = rng.exponential(size=n) * (rng.random(n) > 0.2) if seed % 2 else None
    if w is not None:
        w[:2] = 1.0
    cal = BetaCalibration.fit(y, p, score_type="probability", sample_weight=w)
    ref = unpenalized(beta_features(p), y, w)
    assert (ref.coef_ >= 0).all()  # the unconstrained optimum is feasible here
    new = np.linspace(0, 1, 51)
    expected = ref.predict_proba(beta_features(new))[:, 1]
    np.testing.assert_allclose(cal.apply(new), expected, atol=1e-6)
    np.testing.assert_allclose([cal.a, cal.b], ref.coef_[0], rtol=1e-4)


def mean_nll(prob: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(prob, 1e-300, 1 - 1e-16)
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


def test_beta_with_a_negative_slope_fits_the_best_face_of_the_constraint() -> None:
    rng = np.random.default_rng(4)
    p = rng.beta(1, 1, 2000)
    y = rng.random(2000) < expit(-0.8 * np.log(p) - 2.0 * np.log1p(-p) - 1.0)  # a < 0
    x = beta_features(p)
    full = unpenalized(x, y, None)
    assert full.coef_[0, 0] < 0
    cal = BetaCalibration.fit(y, p, score_type="probability")
    assert cal.a == 0.0
    assert cal.b > 0
    face = unpenalized(x[:, [1]], y, None)  # the face a = 0
    new = np.linspace(0, 1, 41)
    expected = face.predict_proba(beta_features(new)[:, [1]])[:, 1]
    np.testing.assert_allclose(cal.apply(new), expected, atol=1e-6)
    other = unpenalized(x[:, [0]], y, None)  # the face b = 0 does no better
    assert mean_nll(cal.apply(p), y) <= mean_nll(other.predict_proba(x[:, [0]])[:, 1], y) + 1e-12


@settings(max_examples=25, deadline=None)
@given(binary_batches())
def test_beta_maps_are_monotone_and_no_worse_than_any_feasible_face(batch: Any) -> None:
    z, y, w = batch
    cal = BetaCalibration.fit(y, z, score_type="logit", sample_weight=w)
    assert cal.a >= 0 and cal.b >= 0
    grid = np.linspace(z.min() - 3, z.max() + 3, 201)
    assert (np.diff(cal.apply(grid)) >= -1e-15).all()
    x = np.column_stack([log_expit(z), -log_expit(-z)])

    def nll(eta: np.ndarray) -> float:
        # From the logits: probabilities that round to 1.0 would lose the loss of those rows
        # (a hypothesis example once put a better fit 5e-9 behind by that rounding alone).
        return float(np.average(np.logaddexp(0.0, eta) - y * eta, weights=w))

    ours = nll(cal.a * x[:, 0] + cal.b * x[:, 1] + cal.c)
    for cols in ([0, 1], [0], [1]):
        ref = unpenalized(x[:, cols], y, w)
        if (ref.coef_ >= 0).all():
            assert ours <= nll(ref.decision_function(x[:, cols])) + 1e-9


def test_beta_on_logits_uses_exact_log_probabilities() -> None:
    rng = np.random.default_rng(6)
    z = rng.normal(size=800) * 3
    y = rng.random(800) < expit(1.5 * z + 0.3)
    cal = BetaCalibration.fit(y, z, score_type="logit")
    x = np.column_stack([log_expit(z), -log_expit(-z)])
    ref = unpenalized(x, y, None)
    new = np.array([-60.0, -5.0, 0.0, 5.0, 60.0])
    new_x = np.column_stack([log_expit(new), -log_expit(-new)])
    np.testing.assert_allclose(cal.apply(new), ref.predict_proba(new_x)[:, 1], atol=1e-6)


def test_beta_refuses_scores_that_separate_the_classes() -> None:
    with pytest.raises(InvalidInput) as err:
        BetaCalibration.fit([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.9], score_type="probability")
    assert err.value.field == "y_score"
    backwards = BetaCalibration.fit([1, 1, 0, 0], [0.1, 0.3, 0.6, 0.9], score_type="probability")
    assert backwards.a == backwards.b == 0.0  # the best monotone map is the base rate
    np.testing.assert_allclose(backwards.apply([0.2, 0.8]), [0.5, 0.5])
