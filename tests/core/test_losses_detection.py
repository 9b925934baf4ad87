"""Detector classification losses: sigmoid focal (torchvision), varifocal (VarifocalNet) and
distribution focal (GFL), against reference values, hand-computed cases and the papers' code
written out in torch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.losses import (
    LOSSES,
    compute_loss,
    distribution_focal,
    focal,
    sigmoid_focal,
    varifocal,
)
from app.errors import InvalidInput

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "box_losses.json"
MISSING = (
    f"reference fixture {FIXTURE} is missing: the sigmoid focal tests compare against values "
    "computed with torchvision 0.29.1 kept in shared/fixtures beside the repository "
    "(CI copies shared/ next to its clone)"
)
REDUCTIONS = ("none", "mean", "sum")


def _fixture_cases(key: str) -> list[Any]:
    if not FIXTURE.is_file():
        return [pytest.param(None, id="fixture-missing")]
    cases = json.loads(FIXTURE.read_text())[key]
    return [pytest.param(c, id=f"gamma={c['gamma']}-alpha={c['alpha']}") for c in cases]


def _reduce(loss: torch.Tensor, reduction: str) -> Any:
    if reduction == "mean":
        return float(loss.mean())
    if reduction == "sum":
        return float(loss.sum())
    return loss.numpy()


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------- sigmoid focal


def torchvision_sigmoid_focal_loss(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss (reduction "none"), written out."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


@pytest.mark.parametrize("case", _fixture_cases("sigmoid_focal_loss"))
def test_sigmoid_focal_equals_torchvision_on_every_fixture_case(case):
    if case is None:
        pytest.fail(MISSING)
    kw = {"alpha": case["alpha"], "gamma": case["gamma"]}
    expected = case["expected"]
    for reduction in REDUCTIONS:
        got = sigmoid_focal(case["targets"], case["logits"], reduction=reduction, **kw)
        # atol: torchvision's 1 - p_t cancels where p_t ~ 1 (losses below 1e-8 keep only a few
        # digits there); expit(-x) keeps them all
        np.testing.assert_allclose(got, expected[reduction], rtol=1e-12, atol=1e-18)
    # and the written-out torchvision formula gives the fixture's numbers too
    ref = torchvision_sigmoid_focal_loss(_t(case["logits"]), _t(case["targets"]), **kw)
    np.testing.assert_allclose(ref.numpy(), expected["none"], rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 0.0), (0.6, 1.5), (1.0, 3.0)])
@pytest.mark.parametrize("soft", [False, True])
def test_sigmoid_focal_equals_torchvision_formula_on_random_batches(soft, alpha, gamma, reduction):
    rng = np.random.default_rng(7)
    shape = (40, 5)
    y = rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape).astype(float)
    x = rng.normal(0, 4, shape)
    want = _reduce(torchvision_sigmoid_focal_loss(_t(x), _t(y), alpha, gamma), reduction)
    got = sigmoid_focal(y, x, reduction=reduction, alpha=alpha, gamma=gamma)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)


def test_sigmoid_focal_is_focal_on_logits_under_torchvision_names():
    rng = np.random.default_rng(8)
    y, x = rng.integers(0, 2, (30, 3)).astype(float), rng.normal(0, 3, (30, 3))
    w = rng.uniform(0, 2, 30)
    assert sigmoid_focal(y, x, sample_weight=w) == focal(y, x, sample_weight=w, from_logits=True)
    assert sigmoid_focal(y, x, alpha=-1.0) == focal(y, x, alpha=None, from_logits=True)
    # hand-computed: p = 1/2 at logit 0, so (1 - p_t)^2 = 1/4 and BCE = log 2
    np.testing.assert_allclose(
        sigmoid_focal([1.0, 0.0], [0.0, 0.0], reduction="none"),
        [0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)],
        rtol=1e-15,
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [({"alpha": 1.5}, "alpha"), ({"alpha": math.nan}, "alpha"), ({"gamma": -1.0}, "gamma")],
)
def test_sigmoid_focal_parameters_are_checked(params, field):
    with pytest.raises(InvalidInput) as err:
        sigmoid_focal([1.0], [0.0], **params)
    assert err.value.field == field


# ---------------------------------------------------------------- varifocal


def mmdet_varifocal_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.75,
    gamma: float = 2.0,
    iou_weighted: bool = True,
) -> torch.Tensor:
    """mmdetection's varifocal_loss (VarifocalNet's reference code), reduction "none"."""
    pred_sigmoid = pred.sigmoid()
    target = target.type_as(pred)
    negative_weight = alpha * (pred_sigmoid - target).abs().pow(gamma) * (target <= 0.0).float()
    if iou_weighted:
        focal_weight = target * (target > 0.0).float() + negative_weight
    else:
        focal_weight = (target > 0.0).float() + negative_weight
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * focal_weight


def _iou_targets(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """IoU-aware targets: mostly 0, the rest IoUs in (0, 1], a few exactly 1."""
    q = rng.uniform(0, 1, shape) * (rng.uniform(0, 1, shape) < 0.3)
    q.flat[:3] = 1.0
    return q


def test_varifocal_hand_computed_from_probabilities():
    q, p = [0.8, 0.0, 1.0, 0.35], [0.6, 0.3, 0.9, 0.5]
    want = [
        -0.8 * (0.8 * math.log(0.6) + 0.2 * math.log(0.4)),  # q > 0: -q (q log p + (1-q) log(1-p))
        -0.75 * 0.3**2 * math.log(0.7),  # q = 0: -α p^γ log(1 - p)
        -1.0 * math.log(0.9),
        -0.35 * (0.35 * math.log(0.5) + 0.65 * math.log(0.5)),
    ]
    got = varifocal(q, p, from_logits=False, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert varifocal(q, p, from_logits=False) == pytest.approx(sum(want) / 4, rel=1e-14)
    unweighted = varifocal(q, p, from_logits=False, iou_weighted=False, reduction="none")
    np.testing.assert_allclose(unweighted[[0, 3]], np.asarray(want)[[0, 3]] / [0.8, 0.35])
    custom = varifocal([0.0], [0.3], from_logits=False, alpha=0.5, gamma=3.0)
    assert custom == pytest.approx(-0.5 * 0.3**3 * math.log(0.7), rel=1e-14)


def test_varifocal_hand_computed_from_logits():
    x = [0.0, math.log(3.0)]  # p = 1/2 and 3/4
    got = varifocal([0.0, 0.5], x, reduction="none")
    want = [0.75 * 0.25 * math.log(2.0), -0.5 * (0.5 * math.log(0.75) + 0.5 * math.log(0.25))]
    np.testing.assert_allclose(got, want, rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("iou_weighted", [True, False])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.75, 2.0), (0.25, 1.0), (1.0, 0.0)])
def test_varifocal_equals_mmdetection_on_random_batches(alpha, gamma, iou_weighted, reduction):
    rng = np.random.default_rng(12)
    q, x = _iou_targets(rng, (60, 4)), rng.normal(-1, 3, (60, 4))
    ref = mmdet_varifocal_loss(_t(x), _t(q), alpha, gamma, iou_weighted)
    kw = {"alpha": alpha, "gamma": gamma, "iou_weighted": iou_weighted}
    got = varifocal(q, x, reduction=reduction, **kw)
    np.testing.assert_allclose(got, _reduce(ref, reduction), rtol=1e-10, atol=1e-300)
    # probabilities give the same numbers as their logits (away from the clipping at 0 and 1)
    p = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(
        varifocal(q, p, reduction=reduction, from_logits=False, **kw), got, rtol=1e-9
    )


def test_varifocal_is_finite_and_stable_at_extreme_logits():
    q = np.array([0.0, 0.0, 0.9, 0.9, 1.0])
    x = np.array([-800.0, 800.0, -800.0, 800.0, 60.0])
    got = varifocal(q, x, reduction="none")
    assert np.isfinite(got).all()
    np.testing.assert_allclose(
        got, [0.0, 0.75 * 800.0, 0.9 * 0.9 * 800.0, 0.9 * 0.1 * 800.0, math.exp(-60.0)], rtol=1e-12
    )


def test_varifocal_weights_and_one_dimensional_input():
    rng = np.random.default_rng(13)
    q, x, w = _iou_targets(rng, (25,)), rng.normal(0, 2, 25), rng.uniform(0, 2, 25)
    per = mmdet_varifocal_loss(_t(x), _t(q)).numpy()
    assert varifocal(q, x, sample_weight=w) == pytest.approx((w * per).sum() / w.sum(), 1e-12)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kw", "field"),
    [
        ([1.2, 0.0], [0.5, 0.5], {}, "y_true"),
        ([0.5, -0.1], [0.5, 0.5], {}, "y_true"),
        ([0.5, 0.0], [0.5, 1.5], {"from_logits": False}, "y_pred"),
        ([0.5, 0.0], [0.5], {}, "y_pred"),
        ([0.5, 0.0], [0.5, math.nan], {}, "y_pred"),
        ([0.5, 0.0], [0.5, 0.5], {"alpha": -0.1}, "alpha"),
        ([0.5, 0.0], [0.5, 0.5], {"gamma": -1.0}, "gamma"),
        ([0.5, 0.0], [0.5, 0.5], {"iou_weighted": 1}, "iou_weighted"),
        ([0.5, 0.0], [0.5, 0.5], {"from_logits": "no"}, "from_logits"),
    ],
)
def test_varifocal_invalid_input_names_the_field(y_true, y_pred, kw, field):
    with pytest.raises(InvalidInput) as err:
        varifocal(y_true, y_pred, **kw)
    assert err.value.field == field


# ---------------------------------------------------------------- distribution focal


def gfl_distribution_focal_loss(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """GFL's distribution_focal_loss (mmdetection), reduction "none"; needs label < n_bins - 1."""
    dis_left = label.long()
    dis_right = dis_left + 1
    weight_left = dis_right.to(label.dtype) - label
    weight_right = label - dis_left.to(label.dtype)
    return (
        F.cross_entropy(pred, dis_left, reduction="none") * weight_left
        + F.cross_entropy(pred, dis_right, reduction="none") * weight_right
    )


def test_distribution_focal_hand_computed():
    # uniform logits over 4 bins: S = 1/4 everywhere, loss log 4 whatever the target
    assert distribution_focal([1.3], [[0.0] * 4]) == pytest.approx(math.log(4), rel=1e-15)
    # S = softmax([0, 2, 0]); y = 1.25 sits between bins 1 and 2 with weights 0.75 and 0.25
    z = 2 + math.exp(2)
    want = -(0.75 * math.log(math.exp(2) / z) + 0.25 * math.log(1 / z))
    assert distribution_focal([1.25], [[0.0, 2.0, 0.0]]) == pytest.approx(want, rel=1e-15)
    # an integer target is the cross-entropy of its bin
    s = np.exp([1.0, 0.5, -1.0]) / np.exp([1.0, 0.5, -1.0]).sum()
    got = distribution_focal([0.0, 1.0, 2.0], [[1.0, 0.5, -1.0]] * 3, reduction="none")
    np.testing.assert_allclose(got, -np.log(s), rtol=1e-14)


def test_distribution_focal_is_smallest_at_the_two_bin_distribution_of_the_target():
    # S = (0, 0.7, 0.3, 0) (as far as logits allow) has expectation 1.3: loss = its entropy
    logits = np.log([1e-300, 0.7, 0.3, 1e-300])
    entropy = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))
    assert distribution_focal([1.3], [logits]) == pytest.approx(entropy, rel=1e-12)
    rng = np.random.default_rng(14)
    for _ in range(20):
        assert distribution_focal([1.3], [logits + rng.normal(0, 0.1, 4)]) >= entropy


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_distribution_focal_equals_gfl_on_random_boxes_with_four_sides(reduction):
    rng = np.random.default_rng(15)
    n, n_bins = 30, 17  # reg_max = 16, as GFL
    y = rng.uniform(0, n_bins - 1 - 0.01, (n, 4))  # GFL clips targets to reg_max - 0.01
    y[0, :2] = [0.0, 5.0]
    x = rng.normal(0, 2, (n, 4, n_bins))
    ref = gfl_distribution_focal_loss(_t(x).reshape(-1, n_bins), _t(y).reshape(-1)).reshape(n, 4)
    got = distribution_focal(y, x, reduction=reduction)
    np.testing.assert_allclose(got, _reduce(ref, reduction), rtol=1e-12)
    w = rng.uniform(0, 2, n)
    weighted = distribution_focal(y, x, sample_weight=w, reduction=reduction)
    want = ref.numpy() * w[:, None]
    np.testing.assert_allclose(
        weighted,
        {"none": want, "sum": want.sum(), "mean": want.sum() / (4 * w.sum())}[reduction],
        rtol=1e-12,
    )


@settings(max_examples=100, deadline=None)
@given(
    y=st.floats(0.0, 7.0, allow_nan=False),
    logits=st.lists(st.floats(-30, 30, allow_nan=False), min_size=8, max_size=8),
)
def test_distribution_focal_matches_gfl_at_any_target_including_the_last_bin(y, logits):
    x = torch.tensor([logits], dtype=torch.float64)
    got = distribution_focal([y], [logits])
    if y < 7.0:
        want = float(gfl_distribution_focal_loss(x, torch.tensor([y], dtype=torch.float64))[0])
    else:  # GFL would index bin 8; the limit y -> 7 is the cross-entropy of the last bin
        want = float(F.cross_entropy(x, torch.tensor([7]), reduction="none")[0])
    assert got == pytest.approx(want, rel=1e-12, abs=1e-13)


def test_distribution_focal_is_finite_for_extreme_logits():
    got = distribution_focal([0.5, 2.0], [[1e6, -1e6, 0.0], [0.0, 0.0, -1e300]], reduction="none")
    np.testing.assert_allclose(got, [0.5 * 2e6, 1e300], rtol=1e-12)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "field", "detail"),
    [
        ([1.0, 3.5], [[0.0] * 4] * 2, "y_true", "y_true[1] is 3.5"),
        ([-0.5], [[0.0] * 4], "y_true", "y_true[0] is -0.5"),
        ([[1.0, 2.0], [0.0, 9.0]], np.zeros((2, 2, 4)), "y_true", "y_true[1][1] is 9.0"),
        ([1.0, 2.0], [[0.0] * 4], "y_pred", "rows"),
        ([1.0, 2.0], [[0.0] * 4] * 2 + [[0.0] * 4], "y_pred", "rows"),
        ([[1.0, 2.0]], [[0.0] * 4], "y_pred", "y_true.shape + (n_bins,)"),
        ([0.0], [[0.0]], "y_pred", "at least 2"),
        ([0.0], [0.0, 1.0], "y_pred", "2-D or 3-D"),
        ([math.nan], [[0.0, 1.0]], "y_true", "finite"),
    ],
)
def test_distribution_focal_invalid_input_names_field_and_index(y_true, y_pred, field, detail):
    with pytest.raises(InvalidInput) as err:
        distribution_focal(y_true, y_pred)
    assert err.value.field == field and detail in err.value.detail


# ---------------------------------------------------------------- registry


def test_registry_describes_the_detection_losses():
    for name in ("sigmoid_focal", "varifocal", "distribution_focal"):
        assert LOSSES[name].tasks == {"detection"} and LOSSES[name].input == "logit"
    assert dict(LOSSES["varifocal"].params) == {
        "alpha": 0.75,
        "gamma": 2.0,
        "iou_weighted": True,
        "from_logits": True,
    }
    assert compute_loss("sigmoid_focal", [1.0], [0.0], alpha=-1, gamma=0) == pytest.approx(
        math.log(2), rel=1e-15
    )
