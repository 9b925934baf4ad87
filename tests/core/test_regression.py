"""Regression metrics against scikit-learn, and the constant-target policy."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import regression as reg
from app.errors import InvalidInput, UndefinedMetricError

SEEDS = range(30)

# ours -> the sklearn reference (multioutput="uniform_average" is sklearn's default).
PAIRS: dict[str, Callable[..., float]] = {
    "mean_squared_error": skm.mean_squared_error,
    "root_mean_squared_error": skm.root_mean_squared_error,
    "mean_absolute_error": skm.mean_absolute_error,
    "median_absolute_error": skm.median_absolute_error,
    "mean_absolute_percentage_error": skm.mean_absolute_percentage_error,
    "r2": skm.r2_score,
    "explained_variance": skm.explained_variance_score,
    "mean_squared_log_error": skm.mean_squared_log_error,
    "root_mean_squared_log_error": skm.root_mean_squared_log_error,
    "mean_pinball_loss": skm.mean_pinball_loss,
}


def data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Random targets: 1-D or several outputs, ties, zero targets, weights with zeros."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([2, 3, 7, 50, 300]))
    shape = (n,) if seed % 3 else (n, int(rng.integers(1, 4)))
    y = rng.gamma(2.0, 2.0, shape)
    if seed % 5 == 0:
        y = np.round(y)  # ties and exact zeros
    y_pred = np.abs(y + rng.normal(0, 1.5, shape))
    w = None
    if seed % 2:
        w = rng.exponential(size=n) * (rng.random(n) > 0.2)
        w[:2] = [1.0, 2.0]  # two positive weights keep y_true non-constant
        y[1] = y[0] + 1.0
    return y, y_pred, w


def sk(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_metric_matches_sklearn(seed: int, name: str) -> None:
    y, y_pred, w = data(seed)
    ours = getattr(reg, name)(y, y_pred, sample_weight=w)
    assert ours == pytest.approx(PAIRS[name](y, y_pred, sample_weight=w), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.9, 1.0])
def test_pinball_loss_matches_sklearn_for_each_quantile(alpha: float) -> None:
    y, y_pred, w = data(3)
    ref = skm.mean_pinball_loss(y, y_pred, sample_weight=w, alpha=alpha)
    assert reg.mean_pinball_loss(y, y_pred, sample_weight=w, alpha=alpha) == pytest.approx(ref)


def test_pinball_loss_rejects_alpha_outside_the_unit_interval() -> None:
    with pytest.raises(InvalidInput) as err:
        reg.mean_pinball_loss(np.ones(3), np.ones(3), alpha=1.5)
    assert err.value.field == "alpha"


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([0, 1, 2])),
        min_size=1,
        max_size=9,
    ),
)
def test_weighted_median_absolute_error_matches_sklearn_with_ties_and_zero_weights(
    values: list[tuple[int, int, int]],
) -> None:
    y, y_pred, w = (np.array(v, dtype=np.float64) for v in zip(*values, strict=True))
    if not w.any():
        w[0] = 1.0
    ref = skm.median_absolute_error(y, y_pred, sample_weight=w)
    assert reg.median_absolute_error(y, y_pred, sample_weight=w) == ref


def test_weighted_median_with_unit_weights_is_the_plain_median() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 6):
        y, y_pred = rng.normal(size=n), rng.normal(size=n)
        unit = reg.median_absolute_error(y, y_pred, sample_weight=np.ones(n))
        assert unit == reg.median_absolute_error(y, y_pred) == np.median(np.abs(y - y_pred))


# -- the constant-target policy ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["r2", "explained_variance"])
def test_constant_target_with_perfect_predictions_scores_one_like_sklearn(name: str) -> None:
    y = np.full(5, 0.1)
    assert getattr(reg, name)(y, y.copy()) == 1.0 == PAIRS[name](y, y.copy())


@pytest.mark.parametrize("name", ["r2", "explained_variance"])
def test_constant_target_with_imperfect_predictions_is_undefined(name: str) -> None:
    y = np.full(10, 0.1)  # the mean of ten 0.1 is not exactly 0.1: rounding can't fool the check
    y_pred = y + np.linspace(-1, 1, 10)
    with pytest.raises(UndefinedMetricError, match="y_true is constant"):
        getattr(reg, name)(y, y_pred)
    assert sk(PAIRS[name], y, y_pred, force_finite=False) < -1e10  # sklearn: -inf or huge


def test_constant_target_among_positive_weights_is_undefined() -> None:
    y = np.array([1.0, 1.0, 5.0])
    w = np.array([1.0, 2.0, 0.0])  # the only different value carries no weight
    with pytest.raises(UndefinedMetricError):
        reg.r2(y, np.array([1.0, 2.0, 3.0]), sample_weight=w)
    assert reg.r2(y, np.array([1.0, 1.0, 0.0]), sample_weight=w) == 1.0


def test_explained_variance_of_a_constant_target_and_constant_offset_is_one() -> None:
    y = np.full(4, 3.0)
    assert reg.explained_variance(y, y + 0.3) == 1.0


def test_multioutput_r2_names_the_undefined_output() -> None:
    y = np.column_stack([np.arange(4.0), np.full(4, 2.0)])
    y_pred = y + 0.5
    with pytest.raises(UndefinedMetricError, match=r"output 1"):
        reg.r2(y, y_pred)


def test_r2_with_a_single_sample_is_undefined() -> None:
    with pytest.raises(UndefinedMetricError, match="fewer than two samples"):
        reg.r2(np.array([1.0]), np.array([2.0]))


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(-2, 2), st.integers(-2, 2)), min_size=2, max_size=8),
    scale=st.sampled_from([1.0, 0.1, 1e-3, 1e6]),
)
def test_r2_and_explained_variance_match_sklearn_or_are_undefined_on_small_integer_data(
    pairs: list[tuple[int, int]], scale: float
) -> None:
    y, y_pred = (np.array(v, dtype=np.float64) * scale for v in zip(*pairs, strict=True))
    residual = y - y_pred
    for name, perfect in (
        ("r2", np.all(residual == 0)),
        ("explained_variance", np.all(residual == residual[0])),
    ):
        if np.all(y == y[0]) and perfect:
            # sklearn agrees unless rounding leaves its Var(residual) a hair above 0 (then 0.0).
            assert getattr(reg, name)(y, y_pred) == 1.0
        elif np.all(y == y[0]):  # sklearn: 0.0, or -inf / a huge negative number unforced
            with pytest.raises(UndefinedMetricError):
                getattr(reg, name)(y, y_pred)
        else:
            ref = PAIRS[name](y, y_pred, force_finite=False)
            assert getattr(reg, name)(y, y_pred) == pytest.approx(ref, rel=1e-9, abs=1e-12)


# -- the other special cases ----------------------------------------------------------------------


def test_mape_of_a_zero_target_is_huge_and_equal_to_sklearn() -> None:
    y, y_pred = np.array([0.0, 2.0]), np.array([1.0, 2.0])
    ours = reg.mean_absolute_percentage_error(y, y_pred)
    assert ours == skm.mean_absolute_percentage_error(y, y_pred)
    assert ours == pytest.approx(0.5 / np.finfo(np.float64).eps)


@pytest.mark.parametrize("name", ["mean_squared_log_error", "root_mean_squared_log_error"])
def test_squared_log_error_refuses_values_at_or_below_minus_one(name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        getattr(reg, name)(np.array([0.0, 1.0]), np.array([-1.0, 1.0]))
    assert err.value.field == "y_pred" and "-1" in err.value.detail
    y, y_pred = np.array([-0.5, 1.0]), np.array([0.0, 3.0])  # > -1 is allowed, as in sklearn
    assert getattr(reg, name)(y, y_pred) == pytest.approx(PAIRS[name](y, y_pred))


def test_max_error_matches_sklearn_and_ignores_zero_weight_rows() -> None:
    y, y_pred = np.array([3.0, 2, 7, 1]), np.array([4.0, 2, 7, 9])
    assert reg.max_error(y, y_pred) == skm.max_error(y, y_pred) == 8.0
    w = np.array([0.5, 1.0, 1.0, 0.0])
    assert reg.max_error(y, y_pred, sample_weight=w) == skm.max_error(y[:3], y_pred[:3]) == 1.0


def test_max_error_of_several_outputs_is_the_mean_of_the_per_output_maxima() -> None:
    y = np.array([[0.0, 0.0], [1.0, 1.0]])
    y_pred = np.array([[1.0, 0.0], [1.0, 4.0]])
    assert reg.max_error(y, y_pred) == 2.0


def test_integer_weights_equal_repeated_rows() -> None:
    rng = np.random.default_rng(5)
    y, y_pred = rng.normal(size=40), rng.normal(size=40)
    reps = rng.integers(0, 4, 40)
    reps[:2] = 1
    for name in sorted(PAIRS):
        if "log" in name:
            continue
        fn = getattr(reg, name)
        weighted = fn(y, y_pred, sample_weight=reps.astype(np.float64))
        repeated = fn(np.repeat(y, reps), np.repeat(y_pred, reps))
        assert weighted == pytest.approx(repeated, rel=1e-9), name


def test_mismatched_shapes_are_invalid_input() -> None:
    with pytest.raises(InvalidInput) as err:
        reg.mean_squared_error(np.zeros((4, 2)), np.zeros(4))
    assert err.value.field == "y_pred"
