"""Segmentation overlap losses (Tversky, focal Tversky, soft Jaccard) on binary and multiclass
masks: hand-computed cases, a torch reimplementation, relations to Dice, and input errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import softmax

from app.core.losses import LOSSES, compute_loss, dice, focal_tversky, jaccard, tversky
from app.errors import InvalidInput

REDUCTIONS = ("none", "mean", "sum")


def torch_focal_tversky(
    y_pred: torch.Tensor,
    y_true: torch.Tensor,
    alpha: float,
    beta: float,
    gamma: float,
    smooth: float,
    multiclass: bool,
) -> torch.Tensor:
    """Per-sample loss with an explicit one-hot target (segmentation_models_pytorch's recipe)."""
    if multiclass:
        n_classes = y_pred.shape[1]
        target = F.one_hot(y_true.long(), n_classes).movedim(-1, 1).to(y_pred.dtype)
        pred = y_pred
    else:
        target, pred = y_true[:, None], y_pred[:, None]
    dims = tuple(range(2, pred.ndim))
    tp = (pred * target).sum(dims)
    fp = (pred * (1 - target)).sum(dims)
    fn = ((1 - pred) * target).sum(dims)
    ti = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return ((1 - ti) ** gamma).mean(dim=1)


def _reduce(per_sample: np.ndarray, reduction: str, w: np.ndarray | None = None) -> Any:
    w = np.ones(len(per_sample)) if w is None else w
    if reduction == "none":
        return w * per_sample
    total = float((w * per_sample).sum())
    return total if reduction == "sum" else total / w.sum()


def _binary_batch(rng: np.random.Generator, n: int = 6, shape=(7, 9)):
    t = (rng.uniform(0, 1, (n, *shape)) < 0.3).astype(float)
    t[0] = 0.0  # an empty target
    p = np.clip(t * 0.7 + rng.uniform(0, 0.5, t.shape), 0, 1)
    return t, p


def _multiclass_batch(rng: np.random.Generator, n: int = 5, n_classes: int = 4, shape=(6, 8)):
    y = rng.integers(0, n_classes - 1, (n, *shape))  # the last class never occurs
    logits = rng.normal(0, 1.5, (n, n_classes, *shape)) + 2 * np.moveaxis(
        np.eye(n_classes)[y], -1, 1
    )
    return y, softmax(logits, axis=1)


# ---------------------------------------------------------------- hand-computed


def test_binary_hand_computed_counts():
    # TP = 0.9 + 0.6 = 1.5, FP = 0.2 + 0.1 = 0.3, FN = 0.1 + 0.4 = 0.5
    t = [[[1, 1], [0, 0]]]
    p = [[[0.9, 0.6], [0.2, 0.1]]]
    assert tversky(t, p, smooth=0.0) == pytest.approx(1 - 1.5 / (1.5 + 0.3 * 0.3 + 0.7 * 0.5))
    assert tversky(t, p) == pytest.approx(1 - 2.5 / (2.5 + 0.09 + 0.35))  # smooth 1
    assert jaccard(t, p, smooth=0.0) == pytest.approx(1 - 1.5 / 2.3, rel=1e-15)
    ti = 1.5 / (1.5 + 0.5 * 0.3 + 0.5 * 0.5)
    assert focal_tversky(t, p, alpha=0.5, beta=0.5, gamma=2.0, smooth=0.0) == pytest.approx(
        (1 - ti) ** 2, rel=1e-14
    )
    assert focal_tversky(t, p, smooth=0.0) == pytest.approx(
        (1 - 1.5 / (1.5 + 0.09 + 0.35)) ** 0.75, rel=1e-14
    )


def test_multiclass_hand_computed_mean_over_classes():
    y = [[0, 1, 1]]  # one sample, three pixels
    p = [[[0.8, 0.1, 0.3], [0.2, 0.9, 0.7]]]  # classes x pixels
    # class 0: TP 0.8, FP 0.4, FN 0.2; class 1: TP 1.6, FP 0.2, FN 0.4
    j0, j1 = 0.8 / 1.4, 1.6 / 2.2
    assert jaccard(y, p, smooth=0.0) == pytest.approx(1 - (j0 + j1) / 2, rel=1e-14)
    t0, t1 = 0.8 / (0.8 + 0.3 * 0.4 + 0.7 * 0.2), 1.6 / (1.6 + 0.3 * 0.2 + 0.7 * 0.4)
    assert tversky(y, p, smooth=0.0) == pytest.approx(1 - (t0 + t1) / 2, rel=1e-14)
    want = ((1 - t0) ** 0.75 + (1 - t1) ** 0.75) / 2
    assert focal_tversky(y, p, smooth=0.0) == pytest.approx(want, rel=1e-14)


def test_perfect_and_empty_masks():
    t = np.zeros((2, 3, 3))
    t[1, :2, :2] = 1.0
    for fn in (tversky, focal_tversky, jaccard):
        np.testing.assert_array_equal(fn(t, t.copy(), reduction="none"), [0.0, 0.0])
        # smooth = 0: an empty target predicted empty is perfect agreement, not 0/0
        np.testing.assert_array_equal(fn(t, t.copy(), reduction="none", smooth=0.0), [0.0, 0.0])
        assert fn(t[1:], 1 - t[1:], smooth=0.0) == 1.0  # all wrong
    # a class absent from target and prediction counts as agreement (loss 0 in the class mean)
    y = np.zeros((1, 2, 2), dtype=int)
    p = np.zeros((1, 3, 2, 2))
    p[:, 0] = 1.0
    assert jaccard(y, p) == 0.0


# ---------------------------------------------------------------- torch reimplementation


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("alpha", "beta", "gamma", "smooth"),
    [(0.3, 0.7, 1.0, 1.0), (0.5, 0.5, 1.0, 0.0), (0.7, 0.3, 0.75, 1e-5), (1.0, 1.0, 2.0, 2.0)],
)
@pytest.mark.parametrize("multiclass", [False, True])
def test_losses_equal_torch_reimplementation(multiclass, alpha, beta, gamma, smooth, reduction):
    rng = np.random.default_rng(int(10 * alpha + 100 * gamma))
    y, p = _multiclass_batch(rng) if multiclass else _binary_batch(rng)
    w = rng.uniform(0, 2, len(y))
    per = torch_focal_tversky(
        torch.from_numpy(p), torch.from_numpy(y), alpha, beta, gamma, smooth, multiclass
    ).numpy()
    got = focal_tversky(
        y, p, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, reduction=reduction
    )
    np.testing.assert_allclose(got, _reduce(per, reduction), rtol=1e-12, atol=1e-15)
    got_w = focal_tversky(
        y, p, sample_weight=w, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth,
        reduction=reduction,
    )  # fmt: skip
    np.testing.assert_allclose(got_w, _reduce(per, reduction, w), rtol=1e-12, atol=1e-15)
    if gamma == 1.0:
        tv = tversky(y, p, alpha=alpha, beta=beta, smooth=smooth, reduction=reduction)
        np.testing.assert_allclose(tv, got, rtol=1e-15)
    if alpha == beta == 1.0:
        per_j = torch_focal_tversky(
            torch.from_numpy(p), torch.from_numpy(y), 1.0, 1.0, 1.0, smooth, multiclass
        ).numpy()
        np.testing.assert_allclose(
            jaccard(y, p, smooth=smooth, reduction=reduction),
            _reduce(per_j, reduction),
            rtol=1e-12,
        )


def test_masks_of_any_spatial_rank():
    rng = np.random.default_rng(21)
    t, p = _binary_batch(rng, shape=(3, 4, 5))  # volumes
    per = torch_focal_tversky(torch.from_numpy(p), torch.from_numpy(t), 0.3, 0.7, 1.0, 1.0, False)
    np.testing.assert_allclose(tversky(t, p, reduction="none"), per.numpy(), rtol=1e-12)
    flat = tversky(t.reshape(len(t), -1), p.reshape(len(p), -1), reduction="none")
    np.testing.assert_allclose(flat, per.numpy(), rtol=1e-12)


# ---------------------------------------------------------------- relations


@pytest.mark.parametrize("smooth", [0.0, 1.0, 3.0])
def test_tversky_with_half_weights_is_dice_with_double_smoothing(smooth):
    t, p = _binary_batch(np.random.default_rng(22))
    flat_t, flat_p = t.reshape(len(t), -1), p.reshape(len(p), -1)
    np.testing.assert_allclose(
        tversky(t, p, alpha=0.5, beta=0.5, smooth=smooth / 2, reduction="none"),
        dice(flat_t, flat_p, smooth=smooth, reduction="none"),
        rtol=1e-13,
    )


def test_multiclass_equals_the_mean_of_binary_one_hot_losses():
    y, p = _multiclass_batch(np.random.default_rng(23))
    per_class = [
        jaccard((y == c).astype(float), p[:, c], reduction="none") for c in range(p.shape[1])
    ]
    np.testing.assert_allclose(
        jaccard(y, p, reduction="none"), np.mean(per_class, axis=0), rtol=1e-13
    )


def test_jaccard_of_hard_masks_is_one_minus_iou_and_relates_to_dice():
    t, p = _binary_batch(np.random.default_rng(24))
    hard = (p > 0.5).astype(float)
    inter = (hard * t).sum(axis=(1, 2))
    union = np.maximum(hard, t).sum(axis=(1, 2))
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
    np.testing.assert_allclose(jaccard(t, hard, smooth=0.0, reduction="none"), 1 - iou)
    d = 1 - dice(t.reshape(len(t), -1), hard.reshape(len(t), -1), smooth=0.0, reduction="none")
    np.testing.assert_allclose(iou, d / (2 - d), rtol=1e-13)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    alpha=st.floats(0, 2),
    beta=st.floats(0, 2),
    gamma=st.floats(0.1, 3),
    smooth=st.sampled_from([0.0, 1e-6, 1.0]),
)
def test_losses_lie_in_the_unit_interval(seed, alpha, beta, gamma, smooth):
    rng = np.random.default_rng(seed)
    y, p = _multiclass_batch(rng, n=3, n_classes=3, shape=(4, 4))
    p[0] = np.round(p[0])  # hard predictions, ties
    p[0, 0] = 1.0 - p[0, 1:].sum(axis=0)
    got = focal_tversky(y, p, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, reduction="none")
    assert np.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()


# ---------------------------------------------------------------- invalid input


def _err(fn: Any, y_true: Any, y_pred: Any, **kw: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        fn(y_true, y_pred, **kw)
    return err.value


def test_class_ids_out_of_range_name_the_pixel():
    y, p = _multiclass_batch(np.random.default_rng(25), n=3, n_classes=4, shape=(5, 6))
    y[1, 2, 3] = 4
    e = _err(tversky, y, p)
    assert e.field == "y_true" and e.detail.startswith("y_true[1][2][3] is 4")
    assert "[0, 4)" in e.detail
    y[1, 2, 3] = -1
    assert _err(jaccard, y, p).detail.startswith("y_true[1][2][3] is -1")
    yf = y.astype(float)
    yf[1, 2, 3] = 0.5
    assert _err(jaccard, yf, p).detail.startswith("y_true[1][2][3] is 0.5")
    assert _err(jaccard, y.astype(str), p).field == "y_true"


@pytest.mark.parametrize(
    ("y_true", "y_pred", "field", "detail"),
    [
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 4)), "y_pred", "masks must match"),
        (np.zeros((2, 3, 3)), np.zeros((3, 3, 3)), "y_pred", "rows"),
        (np.zeros((2, 3, 3), int), np.full((2, 2, 3, 4), 0.5), "y_pred", "masks must match"),
        (np.zeros((2, 3, 3), int), np.full((1, 2, 3, 3), 0.5), "y_pred", "rows"),
        (np.zeros((2, 3, 3)), np.zeros((2, 1, 1, 3, 3)), "y_pred", "y_pred must be (n, H, W)"),
        (np.zeros(3), np.zeros(3), "y_pred", "y_pred must be (n, H, W)"),
        (np.zeros(3, int), np.full((3, 2), 0.5), "y_pred", "y_pred must be (n, H, W)"),
        (np.zeros((1, 2)), [[0.5, 1.5]], "y_pred", "y_pred[0][1] is 1.5"),
        ([[0.0, 2.0]], [[0.5, 0.5]], "y_true", "y_true[0][1] is 2.0"),
        ([[0.0, math.nan]], [[0.5, 0.5]], "y_true", "finite"),
        (np.zeros((1, 2)), [[0.5, math.inf]], "y_pred", "finite"),
        (np.zeros((1, 2), int), [[[0.5, 0.6], [0.5, 0.5]]], "y_pred", "y_pred[0][:][1] sums"),
        ([[0, 1]], [[[0.5, 0.5], [0.5, -0.5]]], "y_pred", "y_pred[0][1][1] is -0.5"),
    ],
)
def test_invalid_masks_name_their_field(y_true, y_pred, field, detail):
    for fn in (tversky, focal_tversky, jaccard):
        e = _err(fn, y_true, y_pred)
        assert e.field == field and detail in e.detail


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("tversky", {"alpha": -0.1}, "alpha"),
        ("tversky", {"beta": math.inf}, "beta"),
        ("tversky", {"smooth": -1.0}, "smooth"),
        ("focal_tversky", {"gamma": 0.0}, "gamma"),
        ("focal_tversky", {"gamma": True}, "gamma"),
        ("jaccard", {"smooth": "1"}, "smooth"),
        ("jaccard", {"alpha": 0.5}, "alpha"),
        ("jaccard", {"reduction": "avg"}, "reduction"),
    ],
)
def test_invalid_parameters_name_their_field(name, params, field):
    t, p = _binary_batch(np.random.default_rng(26))
    with pytest.raises(InvalidInput) as err:
        compute_loss(name, t, p, **params)
    assert err.value.field == field


def test_registry_describes_the_segmentation_losses():
    for name in ("tversky", "focal_tversky", "jaccard"):
        assert LOSSES[name].tasks == {"segmentation"} and LOSSES[name].input == "probability"
        assert LOSSES[name].params["smooth"] == 1.0 == LOSSES["dice"].params["smooth"]
    assert dict(LOSSES["focal_tversky"].params) == {
        "alpha": 0.3,
        "beta": 0.7,
        "gamma": 0.75,
        "smooth": 1.0,
    }
