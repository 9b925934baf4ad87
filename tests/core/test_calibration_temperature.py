"""Temperature scaling: recovery of a known temperature, the NLL optimum against a grid search,
invariances, scikit-learn's own temperature scaling, and the optimizer's fallback."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from app.core import probabilistic as prob
from app.core.calibration import T_MAX, T_MIN, TemperatureScaling
from app.core.calibration import temperature as temperature_module
from app.errors import InvalidInput

EPS = np.finfo(np.float64).eps


def nll(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None, t: float) -> float:
    """Reference weighted NLL of softmax(logits / t), independent of the engine's formula."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / t, axis=1)
    return float(np.average(-logp[np.arange(len(y)), y], weights=w))


def grid_optimum(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> float:
    """min over T in [T_MIN, T_MAX]: a log-spaced grid, then Brent between the best point's
    neighbours (the NLL is unimodal in log T, being convex in 1/T)."""
    grid = np.geomspace(T_MIN, T_MAX, 401)
    values = np.array([nll(logits, y, w, t) for t in grid])
    i = int(np.argmin(values))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, grid.size - 1)])
    res = minimize_scalar(
        lambda u: nll(logits, y, w, float(np.exp(u))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return min(float(values.min()), float(res.fun))


def two_class(z: np.ndarray) -> np.ndarray:
    return np.column_stack([np.zeros_like(z), z])


def sample(n: int, k: int, t_star: float, seed: int, scale: float = 2.0) -> tuple[Any, Any]:
    """Labels drawn from softmax(z); the model reports z·T*, so the best temperature is T*."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = np.argmax(z + rng.gumbel(size=(n, k)), axis=1)
    return y, z * t_star


# -- the fit finds the right temperature --------------------------------------------------------


@pytest.mark.parametrize("t_star", [0.5, 1.5, 3.0])
def test_fitted_temperature_recovers_a_known_temperature_within_one_percent(t_star: float) -> None:
    y, z = sample(200_000, 10, t_star, seed=int(t_star * 10))
    cal = TemperatureScaling.fit(y, z, score_type="logit", device="cpu")
    assert cal.temperature == pytest.approx(t_star, rel=0.01)


@pytest.mark.parametrize("t_star", [0.5, 3.0])
def test_binary_temperature_recovers_a_known_temperature(t_star: float) -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=100_000) * 2
    y = rng.random(z.size) < expit(z)
    cal = TemperatureScaling.fit(y, z * t_star, score_type="logit", device="cpu")
    assert cal.task == "binary"
    assert cal.temperature == pytest.approx(t_star, rel=0.02)
    from_proba = TemperatureScaling.fit(
        y, expit(z * t_star), score_type="probability", device="cpu"
    )
    assert from_proba.temperature == pytest.approx(cal.temperature, rel=1e-6)


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """Adversarial batches: tiny and huge logits, separable, anti-informative, constant rows,
    ties, float32, zero weights, binary as (0, z)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(2, 300))
    k = draw(st.integers(2, 8))
    scale = draw(st.sampled_from([1e-3, 0.05, 1.0, 4.0, 30.0, 500.0]))
    kind = draw(st.sampled_from(["random", "informative", "separable", "backwards", "ties"]))
    z = rng.normal(size=(n, k)) * scale
    if kind == "ties":
        z = np.round(z / scale) * scale
        z[: n // 3] = 0.0  # constant rows: no information about T
    y = rng.integers(0, k, n)
    if kind == "informative":
        y = np.argmax(z / scale + rng.gumbel(size=(n, k)), axis=1)
    elif kind == "separable":
        y = np.argmax(z, axis=1)
    elif kind == "backwards":
        y = np.argmin(z, axis=1)
    y[:2] = [0, 1]  # two classes at least
    w = None
    if draw(st.booleans()):
        w = rng.exponential(size=n) * (rng.random(n) > 0.3)
        w[:2] = 1.0
    if draw(st.booleans()):
        z = z.astype(np.float32)
    task = draw(st.sampled_from(["multiclass", "binary"]))
    if task == "binary":
        z = z[:, 1] - z[:, 0]
        y = (y == 1) if kind != "backwards" else (z < 0)
        y[:2] = [False, True]
    return y, z, w, task


@settings(max_examples=50, deadline=None)
@given(batches())
def test_fitted_temperature_reaches_the_grid_search_optimum_on_any_batch(batch: Any) -> None:
    y, z, w, task = batch
    cal = TemperatureScaling.fit(y, z, score_type="logit", sample_weight=w, device="cpu")
    assert T_MIN <= cal.temperature <= T_MAX
    logits = two_class(z.astype(np.float64)) if task == "binary" else z.astype(np.float64)
    labels = np.asarray(y, dtype=np.intp)
    best = grid_optimum(logits, labels, w)
    assert nll(logits, labels, w, cal.temperature) <= best * (1 + 1e-6) + 1e-300


def test_separable_batches_get_the_smallest_temperature_and_backwards_ones_the_largest() -> None:
    z = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 0.5]])
    assert TemperatureScaling.fit([0, 1, 0], z, score_type="logit").temperature == T_MIN
    assert TemperatureScaling.fit([1, 0, 1], z, score_type="logit").temperature == T_MAX


def test_constant_logits_leave_the_temperature_at_one() -> None:
    cal = TemperatureScaling.fit([0, 1, 2], np.zeros((3, 3)), score_type="logit")
    assert cal.temperature == 1.0


def test_bracketed_newton_finishes_when_lbfgs_stops_far_from_the_optimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    y, z = sample(2_000, 5, 2.5, seed=3)
    calls: list[int] = []

    def stuck(objective: Any, u_lo: float, u_hi: float) -> float:
        calls.append(1)
        return float(np.log(40.0))  # as if L-BFGS had stopped at T = 40

    monkeypatch.setattr(temperature_module, "_lbfgs", stuck)
    cal = TemperatureScaling.fit(y, z, score_type="logit")
    assert calls
    assert nll(z, y, None, cal.temperature) <= grid_optimum(z, y, None) * (1 + 1e-9)


# -- what temperature scaling does and does not change ------------------------------------------


def test_temperature_scaling_keeps_the_argmax_and_the_binary_ranking() -> None:
    y, z = sample(5_000, 6, 3.0, seed=11)
    cal = TemperatureScaling.fit(y, z, score_type="logit")
    assert cal.temperature > 1.5
    p = cal.apply(z)
    np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    zb = z[:, 1] - z[:, 0]
    binary = TemperatureScaling.fit(y == 1, zb, score_type="logit")
    order = np.argsort(zb, kind="stable")
    assert (np.diff(binary.apply(zb)[order]) >= 0).all()


def test_temperature_scaling_lowers_the_ece_of_over_confident_predictions() -> None:
    y, z = sample(40_000, 10, 3.0, seed=5)  # logits three times too large
    fit_rows, test_rows = slice(0, 20_000), slice(20_000, None)
    cal = TemperatureScaling.fit(y[fit_rows], z[fit_rows], score_type="logit")
    before = prob.multiclass_calibration_error(y[test_rows], softmax(z[test_rows], axis=1)).ece
    after = prob.multiclass_calibration_error(y[test_rows], cal.apply(z[test_rows])).ece
    assert before > 0.1
    assert after < before / 5


def test_probability_input_is_clipped_then_logged() -> None:
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(4, 0.3), 500)
    p[0] = [1.0, 0.0, 0.0, 0.0]
    y = rng.integers(0, 4, 500)
    from_proba = TemperatureScaling.fit(y, p, score_type="probability")
    logits = np.log(np.clip(p, EPS, 1 - EPS))
    from_logits = TemperatureScaling.fit(y, logits, score_type="logit")
    assert from_proba.temperature == pytest.approx(from_logits.temperature, rel=1e-9)
    np.testing.assert_allclose(
        from_proba.apply(p), softmax(logits / from_proba.temperature, axis=1), atol=1e-12
    )
    pb = rng.random(300)
    pb[:2] = [0.0, 1.0]
    yb = rng.random(300) < pb
    cal = TemperatureScaling.fit(yb, pb, score_type="probability")
    expected = expit(logit(np.clip(pb, EPS, 1 - EPS)) / cal.temperature)
    np.testing.assert_allclose(cal.apply(pb), expected, atol=1e-12)


class _Logits(ClassifierMixin, BaseEstimator):
    """A "model" whose decision function is its input."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Logits:
        self.classes_ = np.arange(x.shape[1])
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.argmax(axis=1)


@pytest.mark.parametrize("seed", range(3))
def test_temperature_matches_scikit_learn_temperature_calibration_on_logits(seed: int) -> None:
    y, z = sample(3_000, 5, 1.0 + seed, seed=seed)
    w = np.random.default_rng(seed).exponential(size=y.size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CalibratedClassifierCV(FrozenEstimator(_Logits().fit(z, y)), method="temperature")
        ref.fit(z, y, sample_weight=w)
        expected = ref.predict_proba(z)
    cal = TemperatureScaling.fit(y, z, score_type="logit", sample_weight=w)
    np.testing.assert_allclose(cal.apply(z), expected, atol=1e-6)


# -- weights, dtypes, devices -------------------------------------------------------------------


def test_integer_weights_equal_repeated_rows_and_zero_weights_equal_dropped_rows() -> None:
    y, z = sample(400, 4, 2.0, seed=9)
    counts = np.random.default_rng(9).integers(0, 4, y.size)
    counts[:4] = 1
    weighted = TemperatureScaling.fit(y, z, score_type="logit", sample_weight=counts)
    repeated = TemperatureScaling.fit(
        np.repeat(y, counts), np.repeat(z, counts, axis=0), score_type="logit"
    )
    assert weighted.temperature == pytest.approx(repeated.temperature, rel=1e-9)
    ones = TemperatureScaling.fit(y, z, score_type="logit", sample_weight=np.ones(y.size))
    plain = TemperatureScaling.fit(y, z, score_type="logit")
    assert ones.temperature == pytest.approx(plain.temperature, rel=1e-12)


def test_float32_logits_fit_the_same_temperature_as_their_float64_values() -> None:
    y, z = sample(5_000, 7, 1.7, seed=4)
    z32 = z.astype(np.float32)
    a = TemperatureScaling.fit(y, z32, score_type="logit")
    b = TemperatureScaling.fit(y, z32.astype(np.float64), score_type="logit")
    assert a.temperature == pytest.approx(b.temperature, rel=1e-10)


def test_read_only_input_is_accepted() -> None:
    y, z = sample(100, 3, 1.0, seed=1)
    z.setflags(write=False)
    assert TemperatureScaling.fit(y, z, score_type="logit").temperature > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_equals_the_cpu_fit() -> None:  # pragma: no cover - GPU machines only
    y, z = sample(50_000, 20, 2.0, seed=6)
    cpu = TemperatureScaling.fit(y, z.astype(np.float32), score_type="logit", device="cpu")
    gpu = TemperatureScaling.fit(y, z.astype(np.float32), score_type="logit", device="cuda")
    assert gpu.temperature == pytest.approx(cpu.temperature, rel=1e-9)


def test_devices_are_checked() -> None:
    y, z = sample(20, 3, 1.0, seed=1)
    with pytest.raises(InvalidInput) as err:
        TemperatureScaling.fit(y, z, score_type="logit", device="tpu")  # type: ignore[arg-type]
    assert err.value.field == "device"
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput) as err:
            TemperatureScaling.fit(y, z, score_type="logit", device="cuda")
        assert err.value.field == "device"
