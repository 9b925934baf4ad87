"""Regression losses against torch.nn.functional and scikit-learn."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import (
    mean_absolute_error,
    mean_pinball_loss,
    mean_squared_error,
    root_mean_squared_error,
)

from app.core.losses import (
    huber,
    log_cosh,
    mae,
    mse,
    poisson_nll,
    quantile,
    rmse,
    smooth_l1,
)
from app.errors import InvalidInput

REDUCTIONS = ("mean", "sum", "none")
# float32: our float64 result against torch's float32 arithmetic; float64: both exact to rounding.
TOL = {np.float32: {"rtol": 1e-6, "atol": 1e-6}, np.float64: {"rtol": 1e-9, "atol": 1e-12}}
SHAPES = [(37,), (13, 3)]


def _torch(fn: Callable[..., torch.Tensor], y_true: np.ndarray, y_pred: np.ndarray, **kw: Any):
    out = fn(torch.from_numpy(y_pred), torch.from_numpy(y_true), **kw)
    return out.numpy() if out.ndim else float(out)


def _regression_batch(rng: np.random.Generator, shape: tuple[int, ...]):
    y_true = rng.normal(0.0, 3.0, size=shape)
    y_pred = y_true + rng.standard_t(2.0, size=shape)  # heavy tails: both Huber branches
    y_pred.flat[:3] = y_true.flat[:3]  # exact zeros of the residual
    return y_true, y_pred


TORCH_PAIRS = [
    (mse, F.mse_loss, {}, {}),
    (mae, F.l1_loss, {}, {}),
    (huber, F.huber_loss, {"delta": 1.0}, {"delta": 1.0}),
    (huber, F.huber_loss, {"delta": 0.3}, {"delta": 0.3}),
    (smooth_l1, F.smooth_l1_loss, {"beta": 1.0}, {"beta": 1.0}),
    (smooth_l1, F.smooth_l1_loss, {"beta": 2.5}, {"beta": 2.5}),
    (smooth_l1, F.smooth_l1_loss, {"beta": 0.0}, {"beta": 0.0}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("ours", "theirs", "params", "torch_params"), TORCH_PAIRS)
def test_elementwise_regression_losses_match_torch(
    ours, theirs, params, torch_params, reduction, shape, dtype
):
    rng = np.random.default_rng(sum(shape) + len(params))
    y_true, y_pred = (a.astype(dtype) for a in _regression_batch(rng, shape))
    got = ours(y_true, y_pred, reduction=reduction, **params)
    want = _torch(theirs, y_true, y_pred, reduction=reduction, **torch_params)
    np.testing.assert_allclose(got, want, **TOL[dtype])
    if reduction == "none":
        assert got.shape == shape and got.dtype == np.float64
    else:
        assert type(got) is float


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("ours", "theirs", "params", "torch_params"), TORCH_PAIRS)
def test_sample_weight_scales_torch_elementwise_losses(ours, theirs, params, torch_params, shape):
    rng = np.random.default_rng(7)
    y_true, y_pred = _regression_batch(rng, shape)
    w = rng.uniform(0.0, 3.0, size=shape[0])
    w[0] = 0.0
    per = _torch(theirs, y_true, y_pred, reduction="none", **torch_params)
    wb = w.reshape((-1,) + (1,) * (len(shape) - 1))
    np.testing.assert_allclose(
        ours(y_true, y_pred, sample_weight=w, reduction="none", **params), wb * per, rtol=1e-12
    )
    np.testing.assert_allclose(
        ours(y_true, y_pred, sample_weight=w, reduction="sum", **params),
        np.sum(wb * per),
        rtol=1e-12,
    )
    n_out = per.size // shape[0]
    np.testing.assert_allclose(
        ours(y_true, y_pred, sample_weight=w, **params),
        np.sum(wb * per) / (w.sum() * n_out),
        rtol=1e-12,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("ours", "reference"),
    [(mse, mean_squared_error), (mae, mean_absolute_error)],
)
def test_mean_matches_sklearn_with_sample_weight(ours, reference, shape):
    rng = np.random.default_rng(3)
    y_true, y_pred = _regression_batch(rng, shape)
    w = rng.uniform(0.0, 2.0, size=shape[0])
    assert ours(y_true, y_pred) == pytest.approx(reference(y_true, y_pred), rel=1e-9)
    assert ours(y_true, y_pred, sample_weight=w) == pytest.approx(
        reference(y_true, y_pred, sample_weight=w), rel=1e-9
    )


def test_rmse_matches_sklearn_and_torch_in_one_dimension():
    rng = np.random.default_rng(4)
    y_true, y_pred = _regression_batch(rng, (50,))
    w = rng.uniform(0.0, 2.0, size=50)
    assert rmse(y_true, y_pred) == pytest.approx(root_mean_squared_error(y_true, y_pred), rel=1e-9)
    assert rmse(y_true, y_pred, sample_weight=w) == pytest.approx(
        root_mean_squared_error(y_true, y_pred, sample_weight=w), rel=1e-9
    )
    y32, p32 = y_true.astype(np.float32), y_pred.astype(np.float32)
    torch_rmse = math.sqrt(_torch(F.mse_loss, y32, p32))
    assert rmse(y32, p32) == pytest.approx(torch_rmse, rel=1e-6)


def test_rmse_of_two_outputs_is_the_root_of_the_mean_over_all_elements():
    y_true = np.array([[0.0, 0.0], [0.0, 0.0]])
    y_pred = np.array([[3.0, 0.0], [3.0, 4.0]])
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt((9 + 9 + 16) / 4), rel=1e-12)
    # sklearn's default averages per-column RMSEs instead: (3 + sqrt(8)) / 2
    assert root_mean_squared_error(y_true, y_pred) == pytest.approx((3 + math.sqrt(8)) / 2)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_rmse_rejects_reductions_other_than_mean(reduction):
    with pytest.raises(InvalidInput) as err:
        rmse([0.0, 1.0], [1.0, 1.0], reduction=reduction)
    assert err.value.field == "reduction"


@pytest.mark.parametrize("q", [0.05, 0.5, 0.9])
@pytest.mark.parametrize("shape", SHAPES)
def test_quantile_matches_sklearn_mean_pinball_loss(q, shape):
    rng = np.random.default_rng(int(q * 100))
    y_true, y_pred = _regression_batch(rng, shape)
    w = rng.uniform(0.0, 2.0, size=shape[0])
    assert quantile(y_true, y_pred, q=q) == pytest.approx(
        mean_pinball_loss(y_true, y_pred, alpha=q), rel=1e-9
    )
    assert quantile(y_true, y_pred, q=q, sample_weight=w) == pytest.approx(
        mean_pinball_loss(y_true, y_pred, alpha=q, sample_weight=w), rel=1e-9
    )


def test_quantile_at_median_is_half_the_absolute_error():
    rng = np.random.default_rng(5)
    y_true, y_pred = _regression_batch(rng, (40,))
    np.testing.assert_allclose(
        quantile(y_true, y_pred, q=0.5, reduction="none"),
        0.5 * mae(y_true, y_pred, reduction="none"),
        rtol=1e-15,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("log_input", "full"), [(True, False), (True, True), (False, False), (False, True)]
)
def test_poisson_nll_matches_torch(log_input, full, reduction, dtype):
    rng = np.random.default_rng(11)
    rate = rng.gamma(2.0, 2.0, size=(20, 2))
    y_true = rng.poisson(rate).astype(dtype)  # zeros, ones and > 1 (Stirling branch)
    y_pred = (np.log(rate) if log_input else rate).astype(dtype)
    y_pred[0, 0] = 0.0  # a zero rate exercises eps
    kw = {"log_input": log_input, "full": full}
    got = poisson_nll(y_true, y_pred, reduction=reduction, **kw)
    want = _torch(F.poisson_nll_loss, y_true, y_pred, reduction=reduction, **kw)
    tol = dict(TOL[dtype])
    if dtype == np.float32 and reduction != "none":
        # Without `full` the terms have both signs, and torch's float32 sum of them carries an
        # error of ~1e-7 times the *magnitudes*; compare at that scale, and exactly in float64.
        per = np.abs(poisson_nll(y_true, y_pred, reduction="none", **kw))
        tol["atol"] = 1e-6 * float(per.sum() if reduction == "sum" else per.mean())
        exact = _torch(
            F.poisson_nll_loss,
            *(a.astype(np.float64) for a in (y_true, y_pred)),
            **kw,
            reduction=reduction,
        )
        np.testing.assert_allclose(got, exact, **TOL[np.float64])
    np.testing.assert_allclose(got, want, **tol)


def test_poisson_nll_overflowing_rate_is_inf_and_zero_weight_drops_it():
    assert poisson_nll([1.0], [800.0]) == math.inf
    assert poisson_nll([1.0, 2.0], [800.0, 0.0], sample_weight=[0.0, 1.0]) == 1.0


@pytest.mark.parametrize(
    ("y_true", "y_pred", "log_input", "field"),
    [([-1.0], [0.0], True, "y_true"), ([1.0], [-0.5], False, "y_pred")],
)
def test_poisson_nll_rejects_negative_counts_and_rates(y_true, y_pred, log_input, field):
    with pytest.raises(InvalidInput) as err:
        poisson_nll(y_true, y_pred, log_input=log_input)
    assert err.value.field == field


def test_log_cosh_matches_the_logaddexp_identity_across_magnitudes():
    rng = np.random.default_rng(6)
    e = np.concatenate(
        [rng.normal(0, 1e-4, 20), rng.normal(0, 3, 20), rng.normal(0, 1e3, 20), [1e300, -1e300]]
    )
    want = np.logaddexp(e, -e) - math.log(2.0)  # log((e^x + e^-x) / 2), an independent route
    got = log_cosh(np.zeros_like(e), e, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)  # the identity cancels at 0
    small = np.abs(e) < 300
    np.testing.assert_allclose(got[small], np.log(np.cosh(e[small])), rtol=1e-9, atol=1e-15)


def test_log_cosh_is_finite_where_cosh_overflows():
    got = log_cosh([0.0, 0.0], [800.0, -1e300], reduction="none")
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [800.0 - math.log(2.0), 1e300], rtol=1e-15)


def test_log_cosh_near_zero_is_half_the_squared_error():
    e = np.array([1e-3, -2e-4, 1e-8, 3e-170])
    got = log_cosh(np.zeros(4), e, reduction="none")
    np.testing.assert_allclose(got, e**2 / 2 - e**4 / 12 + e**6 / 45, rtol=1e-14)


def test_smooth_l1_is_huber_divided_by_beta():
    rng = np.random.default_rng(8)
    y_true, y_pred = _regression_batch(rng, (30,))
    np.testing.assert_allclose(
        smooth_l1(y_true, y_pred, beta=0.7, reduction="none"),
        huber(y_true, y_pred, delta=0.7, reduction="none") / 0.7,
        rtol=1e-12,
    )


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.integers(1, 8),
        elements=st.floats(-1e300, 1e300, allow_nan=False, allow_subnormal=True),
    ),
    st.data(),
)
def test_regression_losses_never_give_nan_on_finite_input(y_true, data):
    y_pred = data.draw(
        arrays(np.float64, y_true.shape, elements=st.floats(-1e300, 1e300, allow_nan=False))
    )
    w = data.draw(arrays(np.float64, y_true.shape, elements=st.sampled_from([0.0, 0.5, 1.0, 3.0])))
    w[0] = 1.0  # not all zero
    for fn in (mse, mae, huber, smooth_l1, log_cosh, quantile):
        got = fn(y_true, y_pred, sample_weight=w)
        assert not math.isnan(got) and got >= 0.0, fn.__name__
        per = fn(y_true, y_pred, sample_weight=w, reduction="none")
        assert not np.isnan(per).any() and (per[w == 0] == 0).all(), fn.__name__
