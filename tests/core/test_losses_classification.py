"""Classification losses against torch.nn.functional, scikit-learn and scipy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import log_softmax, rel_entr, softmax
from sklearn.metrics import f1_score, hinge_loss, log_loss

from app.core.losses import (
    PROBABILITY_EPS,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    dice,
    focal,
    hinge,
    kl_div,
    nll,
    squared_hinge,
)
from app.errors import InvalidInput, UndefinedMetricError

REDUCTIONS = ("mean", "sum", "none")
TOL = {np.float32: {"rtol": 1e-6, "atol": 1e-6}, np.float64: {"rtol": 1e-9, "atol": 1e-12}}
DTYPES = [np.float32, np.float64]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _np(out: torch.Tensor) -> Any:
    return out.numpy() if out.ndim else float(out)


def _binary_batch(rng: np.random.Generator, shape: tuple[int, ...], dtype: type, soft: bool):
    y = rng.uniform(0, 1, size=shape) if soft else rng.integers(0, 2, size=shape).astype(float)
    logits = rng.normal(0.0, 2.5, size=shape)
    return y.astype(dtype), logits.astype(dtype)


def _torchvision_sigmoid_focal_loss(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float, reduction: str
) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss, verbatim (torchvision itself is not installable)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


# ---------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(41,), (9, 4)])
@pytest.mark.parametrize("soft", [False, True])
def test_binary_cross_entropy_matches_torch(soft, shape, reduction, dtype):
    rng = np.random.default_rng(1)
    y, _ = _binary_batch(rng, shape, dtype, soft)
    p = rng.uniform(1e-7, 1 - 1e-7, size=shape).astype(dtype)
    p.flat[:4] = np.array([1.5e-7, 1 - 1.5e-7, 0.5, 1e-3], dtype=dtype)
    got = binary_cross_entropy(y, p, reduction=reduction)
    want = _np(F.binary_cross_entropy(_t(p), _t(y), reduction=reduction))
    np.testing.assert_allclose(got, want, **TOL[dtype])


def test_binary_cross_entropy_matches_sklearn_log_loss_including_exact_zero_and_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    p = rng.uniform(0, 1, 60)
    p[:4] = [0.0, 1.0, 0.0, 1.0]
    y[:4] = [1, 0, 0, 1]  # two clipped worst cases, two clipped perfect ones
    w = rng.uniform(0, 2, 60)
    assert binary_cross_entropy(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)
    assert binary_cross_entropy(y, p, sample_weight=w) == pytest.approx(
        log_loss(y, p, sample_weight=w), rel=1e-9
    )


def test_binary_cross_entropy_clips_at_eps_where_torch_clamps_the_log_at_minus_100():
    ours = binary_cross_entropy([1.0, 0.0], [0.0, 1.0], reduction="none")
    np.testing.assert_allclose(ours, -math.log(PROBABILITY_EPS), rtol=1e-15)
    theirs = F.binary_cross_entropy(
        torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]), reduction="none"
    )
    np.testing.assert_allclose(theirs.numpy(), 100.0)  # the documented difference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [None, 3.0, "per-label"])
@pytest.mark.parametrize("soft", [False, True])
def test_bce_with_logits_matches_torch(soft, pos_weight, reduction, dtype):
    rng = np.random.default_rng(3)
    y, x = _binary_batch(rng, (11, 3), dtype, soft)
    pw = rng.uniform(0, 4, 3).astype(dtype) if pos_weight == "per-label" else pos_weight
    got = binary_cross_entropy_with_logits(y, x, reduction=reduction, pos_weight=pw)
    kw = {} if pw is None else {"pos_weight": _t(np.asarray(pw, dtype=dtype))}
    want = _np(F.binary_cross_entropy_with_logits(_t(x), _t(y), reduction=reduction, **kw))
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("big", [1e4, 1e30, 1e300])
def test_bce_with_logits_is_finite_and_exact_at_huge_logits(big):
    x = np.array([big, big, -big, -big, big, -big])
    y = np.array([1.0, 0.0, 1.0, 0.0, 0.25, 0.25])
    got = binary_cross_entropy_with_logits(y, x, reduction="none")
    # the limits: softplus(-x) -> 0 for x >> 0, -> |x| for x << 0
    np.testing.assert_allclose(got, [0.0, big, big, 0.0, 0.75 * big, 0.25 * big], rtol=1e-15)
    if big == 1e4:  # torch in float64 agrees where its own formula stays in range
        want = F.binary_cross_entropy_with_logits(_t(x), _t(y), reduction="none").numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12)


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float64, st.integers(1, 10), elements=st.floats(-1e308, 1e308, allow_nan=False)),
    st.data(),
)
def test_bce_with_logits_matches_torch_float64_on_any_finite_logit(x, data):
    y = data.draw(arrays(np.float64, x.shape, elements=st.sampled_from([0.0, 1.0, 0.5, 1e-9])))
    got = binary_cross_entropy_with_logits(y, x, reduction="none")
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    # exact: y * log(1 + e^-x) + (1 - y) * log(1 + e^x), numpy's logaddexp as the reference
    exact = y * np.logaddexp(0.0, -x) + (1 - y) * np.logaddexp(0.0, x)
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=0)
    want = F.binary_cross_entropy_with_logits(_t(x), _t(y), reduction="none").numpy()
    # torch's (1 - y)x + softplus(-x) cancels, so its error is ~eps*|x| absolute, not relative
    assert np.all(np.abs(got - want) <= 4e-16 * np.abs(x) + 1e-13 * got)


# ---------------------------------------------------------------- focal


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("gamma", "alpha"), [(2.0, 0.25), (0.0, 0.6), (3.5, None), (1.0, 0.0)])
def test_focal_from_logits_matches_torchvision_formula(gamma, alpha, reduction, dtype):
    rng = np.random.default_rng(4)
    y, x = _binary_batch(rng, (12, 3), dtype, soft=False)
    got = focal(y, x, reduction=reduction, gamma=gamma, alpha=alpha, from_logits=True)
    want = _torchvision_sigmoid_focal_loss(
        _t(x), _t(y), alpha=-1 if alpha is None else alpha, gamma=gamma, reduction=reduction
    )
    np.testing.assert_allclose(got, _np(want), **TOL[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_on_probabilities_equals_focal_on_their_logits(reduction):
    rng = np.random.default_rng(5)
    y, x = _binary_batch(rng, (30,), np.float64, soft=True)
    p = 1.0 / (1.0 + np.exp(-x))
    np.testing.assert_allclose(
        focal(y, p, reduction=reduction, gamma=1.5),
        focal(y, x, reduction=reduction, gamma=1.5, from_logits=True),
        rtol=1e-9,
    )


def test_focal_without_focusing_or_alpha_is_binary_cross_entropy():
    rng = np.random.default_rng(6)
    y, x = _binary_batch(rng, (25,), np.float64, soft=False)
    got = focal(y, x, gamma=0.0, alpha=None, from_logits=True, reduction="none")
    np.testing.assert_allclose(
        got, binary_cross_entropy_with_logits(y, x, reduction="none"), rtol=1e-14
    )


# ---------------------------------------------------------------- cross-entropy and nll


def _multiclass_batch(rng: np.random.Generator, n: int, k: int, dtype: type):
    logits = rng.normal(0.0, 2.0, size=(n, k)).astype(dtype)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    return y, logits


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_from_logits_with_indices_matches_torch(
    weighted, label_smoothing, reduction, dtype
):
    rng = np.random.default_rng(7)
    y, logits = _multiclass_batch(rng, 23, 5, dtype)
    cw = rng.uniform(0.2, 3.0, 5).astype(dtype) if weighted else None
    got = cross_entropy(
        y, logits, from_logits=True, weight=cw, label_smoothing=label_smoothing,
        reduction=reduction,
    )  # fmt: skip
    want = F.cross_entropy(
        _t(logits), _t(y), weight=None if cw is None else _t(cw),
        label_smoothing=label_smoothing, reduction=reduction,
    )  # fmt: skip
    np.testing.assert_allclose(got, _np(want), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_with_soft_targets_matches_torch(weighted, label_smoothing, reduction, dtype):
    rng = np.random.default_rng(8)
    _, logits = _multiclass_batch(rng, 17, 4, dtype)
    targets = softmax(rng.normal(0, 1.5, size=(17, 4)), axis=1).astype(dtype)
    targets[0] = [1.0, 0.0, 0.0, 0.0]
    cw = rng.uniform(0.2, 3.0, 4).astype(dtype) if weighted else None
    got = cross_entropy(
        targets, logits, from_logits=True, weight=cw, label_smoothing=label_smoothing,
        reduction=reduction,
    )  # fmt: skip
    want = F.cross_entropy(
        _t(logits), _t(targets), weight=None if cw is None else _t(cw),
        label_smoothing=label_smoothing, reduction=reduction,
    )  # fmt: skip
    np.testing.assert_allclose(got, _np(want), **TOL[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_on_probabilities_equals_torch_on_their_logs(label_smoothing, reduction):
    rng = np.random.default_rng(9)
    y, logits = _multiclass_batch(rng, 20, 6, np.float64)
    p = softmax(logits, axis=1)
    cw = rng.uniform(0.5, 2.0, 6)
    got = cross_entropy(y, p, weight=cw, label_smoothing=label_smoothing, reduction=reduction)
    want = F.cross_entropy(
        _t(np.log(p)), _t(y), weight=_t(cw), label_smoothing=label_smoothing, reduction=reduction
    )
    np.testing.assert_allclose(got, _np(want), rtol=1e-9, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: arrays(
            np.float64, (n, 3), elements=st.floats(-1e308, 1e308, allow_nan=False) | st.just(0.0)
        )
    ),
    st.data(),
)
def test_cross_entropy_on_extreme_logits_is_never_nan_and_matches_torch(logits, data):
    n = logits.shape[0]
    y = np.asarray(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 1.0]))
    got = cross_entropy(y, logits, from_logits=True, label_smoothing=smoothing, reduction="none")
    assert not np.isnan(got).any() and (got >= 0).all()
    with np.errstate(over="ignore", invalid="ignore"):
        want = F.cross_entropy(
            _t(logits), _t(y), label_smoothing=smoothing, reduction="none"
        ).numpy()
    f = np.isfinite(want)  # torch's log_softmax overflows where ours does: inf on both sides
    scale = np.abs(logits).max(axis=1)
    assert np.all(np.abs(got[f] - want[f]) <= 1e-9 * want[f] + 4e-16 * scale[f])
    assert np.all(np.isinf(got[~f]))


def test_cross_entropy_matches_sklearn_log_loss_with_sample_weight():
    rng = np.random.default_rng(10)
    y, logits = _multiclass_batch(rng, 50, 4, np.float64)
    p = softmax(logits, axis=1)
    p[0] = [0.0, 0.0, 1.0, 0.0]  # a clipped zero on the true class (y[0] == 0)
    w = rng.uniform(0, 2, 50)
    labels = list(range(4))
    assert cross_entropy(y, p) == pytest.approx(log_loss(y, p, labels=labels), rel=1e-9)
    assert cross_entropy(y, p, sample_weight=w) == pytest.approx(
        log_loss(y, p, sample_weight=w, labels=labels), rel=1e-9
    )


def test_cross_entropy_mean_with_class_and_sample_weights_divides_by_their_product():
    rng = np.random.default_rng(11)
    y, logits = _multiclass_batch(rng, 15, 3, np.float64)
    cw, sw = rng.uniform(0.5, 2, 3), rng.uniform(0, 2, 15)
    per = F.cross_entropy(_t(logits), _t(y), weight=_t(cw), reduction="none").numpy()
    got = cross_entropy(y, logits, from_logits=True, weight=cw, sample_weight=sw)
    assert got == pytest.approx(np.sum(sw * per) / np.sum(sw * cw[y]), rel=1e-12)


def test_cross_entropy_mean_is_undefined_when_present_classes_weigh_zero():
    with pytest.raises(UndefinedMetricError):
        cross_entropy([0, 0], [[0.5, 0.5], [0.9, 0.1]], weight=[0.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_matches_torch(weighted, reduction, dtype):
    rng = np.random.default_rng(12)
    y, logits = _multiclass_batch(rng, 19, 4, np.float64)
    logp = log_softmax(logits, axis=1).astype(dtype)
    cw = rng.uniform(0.2, 3.0, 4).astype(dtype) if weighted else None
    got = nll(y, logp, weight=cw, reduction=reduction)
    want = F.nll_loss(_t(logp), _t(y), weight=None if cw is None else _t(cw), reduction=reduction)
    np.testing.assert_allclose(got, _np(want), **TOL[dtype])


def test_nll_rejects_positive_log_probabilities():
    with pytest.raises(InvalidInput) as err:
        nll([0], [[0.1, -2.0]])
    assert err.value.field == "y_pred" and "y_pred[0][0]" in err.value.detail


# ---------------------------------------------------------------- KL divergence


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_div_matches_torch_batchmean_sum_and_row_sums(dtype):
    rng = np.random.default_rng(13)
    p = softmax(rng.normal(0, 2, size=(14, 5)), axis=1)
    p[0] = [0.0, 0.5, 0.5, 0.0, 0.0]  # 0 log 0 = 0
    q = softmax(rng.normal(0, 2, size=(14, 5)), axis=1)
    p, q = p.astype(dtype), q.astype(dtype)
    logq, tp = torch.log(_t(q)), _t(p)
    np.testing.assert_allclose(
        kl_div(p, q), float(F.kl_div(logq, tp, reduction="batchmean")), **TOL[dtype]
    )
    np.testing.assert_allclose(
        kl_div(p, q, reduction="sum"), float(F.kl_div(logq, tp, reduction="sum")), **TOL[dtype]
    )
    np.testing.assert_allclose(
        kl_div(p, q, reduction="none"),
        F.kl_div(logq, tp, reduction="none").sum(dim=1).numpy(),
        **TOL[dtype],
    )


def test_kl_div_matches_scipy_rel_entr_with_sample_weight():
    rng = np.random.default_rng(14)
    p = softmax(rng.normal(0, 2, size=(30, 3)), axis=1)
    p[:3, 0] = 0.0
    p[:3] /= p[:3].sum(axis=1, keepdims=True)
    q = softmax(rng.normal(0, 2, size=(30, 3)), axis=1)
    w = rng.uniform(0, 2, 30)
    rows = rel_entr(p, q).sum(axis=1)
    np.testing.assert_allclose(kl_div(p, q, reduction="none"), rows, rtol=1e-12, atol=1e-15)
    assert kl_div(p, q, sample_weight=w) == pytest.approx(np.average(rows, weights=w), rel=1e-12)


def test_kl_div_is_cross_entropy_minus_entropy():
    rng = np.random.default_rng(15)
    p = softmax(rng.normal(0, 1, size=(10, 4)), axis=1)
    q = softmax(rng.normal(0, 1, size=(10, 4)), axis=1)
    entropy = -np.sum(p * np.log(p), axis=1)
    np.testing.assert_allclose(
        kl_div(p, q, reduction="none"),
        cross_entropy(p, q, reduction="none") - entropy,
        rtol=1e-9,
        atol=1e-14,
    )


# ---------------------------------------------------------------- hinge


@pytest.mark.parametrize("labels", [(0, 1), (-1, 1)])
def test_binary_hinge_matches_sklearn(labels):
    rng = np.random.default_rng(16)
    y = np.asarray(labels)[rng.integers(0, 2, 40)]
    f = rng.normal(0, 1.5, 40)
    f[:2] = [1.0, -1.0]  # exactly on the margin
    w = rng.uniform(0, 2, 40)
    assert hinge(y, f) == pytest.approx(hinge_loss(y, f), rel=1e-9)
    assert hinge(y, f, sample_weight=w) == pytest.approx(
        hinge_loss(y, f, sample_weight=w), rel=1e-9
    )


def test_multiclass_hinge_matches_sklearn_crammer_singer():
    rng = np.random.default_rng(17)
    y, f = _multiclass_batch(rng, 35, 4, np.float64)
    f[5] = 0.0  # all classes tied
    w = rng.uniform(0, 2, 35)
    labels = np.arange(4)
    assert hinge(y, f) == pytest.approx(hinge_loss(y, f, labels=labels), rel=1e-9)
    assert hinge(y, f, sample_weight=w) == pytest.approx(
        hinge_loss(y, f, labels=labels, sample_weight=w), rel=1e-9
    )


@pytest.mark.parametrize("multiclass", [False, True])
def test_squared_hinge_squares_sklearn_per_sample_hinge(multiclass):
    rng = np.random.default_rng(18)
    if multiclass:
        y, f = _multiclass_batch(rng, 12, 3, np.float64)
        kw: dict[str, Any] = {"labels": np.arange(3)}
    else:
        y, f, kw = np.tile([-1, 1], 6), rng.normal(0, 1.5, 12), {}
    # sklearn's loss of sample i alone: its weighted mean with weight 1 on i, 0 elsewhere
    per = [hinge_loss(y, f, sample_weight=np.eye(12)[i], **kw) for i in range(12)]
    np.testing.assert_allclose(squared_hinge(y, f, reduction="none"), np.square(per), rtol=1e-9)


def test_hinge_rejects_labels_outside_a_binary_encoding():
    with pytest.raises(InvalidInput) as err:
        hinge([0, 1, 2], [0.5, 0.1, 0.3])
    assert err.value.field == "y_true"


# ---------------------------------------------------------------- dice


def test_dice_with_no_smoothing_is_one_minus_sklearn_f1_per_row():
    rng = np.random.default_rng(19)
    y = rng.integers(0, 2, size=(25, 8))
    p = rng.integers(0, 2, size=(25, 8))
    y[0], p[0] = 0, 0  # empty row: perfect agreement
    y[1], p[1] = 0, 1
    want = [1 - f1_score(y[i], p[i], zero_division=1.0) for i in range(25)]
    np.testing.assert_allclose(dice(y, p, smooth=0.0, reduction="none"), want, rtol=1e-12)


def test_dice_with_smoothing_by_hand():
    y = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    p = np.array([[0.8, 0.3, 0.4], [0.1, 0.0, 0.2]])
    # row 0: 1 - (2*1.2 + 1) / (1.5 + 2 + 1); row 1: 1 - 1 / (0.3 + 0 + 1)
    want = np.array([1 - 3.4 / 4.5, 1 - 1 / 1.3])
    np.testing.assert_allclose(dice(y, p, reduction="none"), want, rtol=1e-12)
    w = np.array([2.0, 1.0])
    assert dice(y, p, sample_weight=w) == pytest.approx(np.average(want, weights=w), rel=1e-12)


def test_dice_of_a_1d_batch_is_per_sample():
    y, p = np.array([1.0, 0.0, 1.0]), np.array([0.5, 0.5, 1.0])
    np.testing.assert_allclose(
        dice(y, p, reduction="none"), dice(y[:, None], p[:, None], reduction="none"), rtol=0
    )
    assert dice(y, p, reduction="none").shape == (3,)
