"""The loss registry, invariants every loss must satisfy, input errors, and penalties."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, softmax

from app.core.losses import (
    LOSSES,
    LossSpec,
    PenalizedLoss,
    compute_loss,
    huber,
    mse,
    penalized_loss,
    penalty,
)
from app.errors import InvalidInput

Batch = tuple[np.ndarray, np.ndarray]


def _regression(rng: np.random.Generator, n: int) -> Batch:
    y = rng.normal(0, 2, n)
    return y, y + rng.standard_t(3, n)


def _labels_and(scores: Callable[[np.random.Generator, int], np.ndarray]):
    return lambda rng, n: (rng.integers(0, 2, (n, 3)).astype(float), scores(rng, n))


def _classes_and(scores: Callable[[np.ndarray], np.ndarray]):
    return lambda rng, n: (rng.integers(0, 4, n), scores(rng.normal(0, 2, (n, 4))))


def _box_pairs(rng: np.random.Generator, n: int) -> Batch:
    """xyxy target boxes and predictions near them (overlapping, or not)."""
    xy, wh = rng.uniform(0, 50, (n, 2)), rng.uniform(1, 20, (n, 2))
    xy_pred, wh_pred = xy + rng.normal(0, 5, (n, 2)), wh * rng.uniform(0.5, 1.5, (n, 2))
    return np.hstack([xy, xy + wh]), np.hstack([xy_pred, xy_pred + wh_pred])


def _masks(rng: np.random.Generator, n: int) -> Batch:
    return rng.integers(0, 2, (n, 4, 5)).astype(float), rng.uniform(0, 1, (n, 4, 5))


BATCHES: dict[str, Callable[[np.random.Generator, int], Batch]] = {
    "mse": _regression,
    "mae": _regression,
    "rmse": _regression,
    "huber": _regression,
    "smooth_l1": _regression,
    "log_cosh": _regression,
    "quantile": _regression,
    "poisson_nll": lambda rng, n: (rng.poisson(3.0, n).astype(float), rng.normal(1, 0.5, n)),
    "binary_cross_entropy": _labels_and(lambda rng, n: rng.uniform(0, 1, (n, 3))),
    "binary_cross_entropy_with_logits": _labels_and(lambda rng, n: rng.normal(0, 3, (n, 3))),
    "focal": _labels_and(lambda rng, n: rng.uniform(0, 1, (n, 3))),
    "dice": _labels_and(lambda rng, n: rng.uniform(0, 1, (n, 3))),
    "cross_entropy": _classes_and(lambda s: softmax(s, axis=1)),
    "nll": _classes_and(lambda s: log_softmax(s, axis=1)),
    "hinge": _classes_and(lambda s: s),
    "squared_hinge": _classes_and(lambda s: s),
    "kl_div": lambda rng, n: tuple(softmax(rng.normal(0, 2, (2, n, 4)), axis=2)),
    "iou": _box_pairs,
    "giou": _box_pairs,
    "diou": _box_pairs,
    "ciou": _box_pairs,
    "sigmoid_focal": _labels_and(lambda rng, n: rng.normal(0, 3, (n, 3))),
    "varifocal": lambda rng, n: (
        rng.uniform(0, 1, (n, 3)) * rng.integers(0, 2, (n, 3)),
        rng.normal(0, 3, (n, 3)),
    ),
    "distribution_focal": lambda rng, n: (rng.uniform(0, 7, (n, 4)), rng.normal(0, 2, (n, 4, 8))),
    "tversky": _masks,
    "focal_tversky": _masks,
    "jaccard": _masks,
}
NAMES = sorted(LOSSES)


def _reductions(name: str) -> tuple[str, ...]:
    return LOSSES[name].reductions


def test_every_registered_loss_has_a_batch_generator_and_vice_versa():
    assert set(BATCHES) == set(LOSSES)


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_describes_its_function(name):
    spec = LOSSES[name]
    assert isinstance(spec, LossSpec) and spec.name == name == spec.fn.__name__
    assert spec.tasks and spec.tasks <= {
        "binary",
        "multiclass",
        "multilabel",
        "regression",
        "detection",
        "segmentation",
    }
    assert spec.input in {
        "value",
        "log_rate",
        "probability",
        "logit",
        "decision",
        "log_probability",
        "box",
    }
    assert spec.summary and "\n" not in spec.summary
    sig = inspect.signature(spec.fn)
    kw_only = {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert kw_only.pop("sample_weight") is None and kw_only.pop("reduction") == "mean"
    assert kw_only == dict(spec.params)  # same parameters, same defaults
    with pytest.raises(TypeError):
        spec.params["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize("name", NAMES)
def test_weights_of_one_equal_no_weights(name):
    y, p = BATCHES[name](np.random.default_rng(1), 20)
    for reduction in _reductions(name):
        np.testing.assert_allclose(
            compute_loss(name, y, p, sample_weight=np.ones(20), reduction=reduction),
            compute_loss(name, y, p, reduction=reduction),
            rtol=1e-14,
        )


@pytest.mark.parametrize("name", NAMES)
def test_integer_weights_equal_repeated_rows(name):
    rng = np.random.default_rng(2)
    y, p = BATCHES[name](rng, 15)
    w = rng.integers(0, 4, 15)
    w[0] = 2
    for reduction in ("mean", "sum"):
        if reduction not in _reductions(name):
            continue
        np.testing.assert_allclose(
            compute_loss(name, y, p, sample_weight=w.astype(float), reduction=reduction),
            compute_loss(
                name, np.repeat(y, w, axis=0), np.repeat(p, w, axis=0), reduction=reduction
            ),
            rtol=1e-12,
        )


@pytest.mark.parametrize("name", NAMES)
def test_rows_may_be_permuted(name):
    rng = np.random.default_rng(3)
    y, p = BATCHES[name](rng, 25)
    w = rng.uniform(0, 2, 25)
    perm = rng.permutation(25)
    for reduction in _reductions(name):
        got = compute_loss(name, y[perm], p[perm], sample_weight=w[perm], reduction=reduction)
        want = compute_loss(name, y, p, sample_weight=w, reduction=reduction)
        np.testing.assert_allclose(got, want[perm] if reduction == "none" else want, rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in NAMES if "none" in LOSSES[n].reductions])
def test_reductions_agree_with_each_other(name):
    rng = np.random.default_rng(4)
    y, p = BATCHES[name](rng, 18)
    w = rng.uniform(0, 2, 18)
    per = compute_loss(name, y, p, sample_weight=w, reduction="none")
    assert isinstance(per, np.ndarray) and per.dtype == np.float64 and per.shape[0] == 18
    total = compute_loss(name, y, p, sample_weight=w, reduction="sum")
    mean = compute_loss(name, y, p, sample_weight=w, reduction="mean")
    assert type(total) is float and type(mean) is float
    assert total == pytest.approx(float(per.sum()), rel=1e-12)
    assert mean == pytest.approx(total / (w.sum() * (per.size // 18)), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_float32_input_is_accumulated_in_float64(name):
    y, p = BATCHES[name](np.random.default_rng(5), 30)
    p32 = p.astype(np.float32)
    if name in ("cross_entropy", "kl_div"):  # keep rows on the simplex after rounding
        p32 = (p32 / p32.sum(axis=1, keepdims=True)).astype(np.float32)
    y32 = y.astype(np.float32) if y.dtype.kind == "f" else y
    if name == "kl_div":
        y32 = (y32 / y32.sum(axis=1, keepdims=True)).astype(np.float32)
    for reduction in _reductions(name):
        got = compute_loss(name, y32, p32, reduction=reduction)
        want = compute_loss(
            name, y32.astype(np.float64), p32.astype(np.float64), reduction=reduction
        )
        np.testing.assert_array_equal(got, want)


@settings(max_examples=120, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    seed=st.integers(0, 2**32 - 1),
    weights=st.lists(st.integers(0, 3), min_size=1, max_size=12).filter(any),
    scale=st.sampled_from([1e-150, 1e-8, 1.0, 1e8, 1e150]),
)
def test_zero_and_integer_weights_on_adversarial_batches(name, seed, weights, scale):
    """Weights 0..3 equal dropping/repeating rows, with ties and tiny or huge regression values."""
    rng = np.random.default_rng(seed)
    n = len(weights)
    y, p = BATCHES[name](rng, n)
    if "regression" in LOSSES[name].tasks and name != "poisson_nll":
        y, p = y * scale, p * scale
    y[n // 2 :], p[n // 2 :] = y[: n - n // 2], p[: n - n // 2]  # duplicated rows: ties
    w = np.asarray(weights)
    reduction = "mean" if name == "rmse" else "sum"
    got = compute_loss(name, y, p, sample_weight=w.astype(float), reduction=reduction)
    want = compute_loss(name, np.repeat(y, w, axis=0), np.repeat(p, w, axis=0), reduction=reduction)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-300)


# ---------------------------------------------------------------- compute_loss errors


def test_unknown_loss_names_the_losses_field_and_lists_known_names():
    with pytest.raises(InvalidInput) as err:
        compute_loss("mean_squared", [1.0], [1.0])
    assert err.value.field == "losses"
    assert "'mean_squared'" in err.value.detail
    assert all(name in err.value.detail for name in LOSSES)


def test_unknown_parameter_names_itself_and_the_allowed_ones():
    with pytest.raises(InvalidInput) as err:
        compute_loss("focal", [1.0], [0.5], delta=2.0)
    assert err.value.field == "delta"
    assert all(p in err.value.detail for p in ("gamma", "alpha", "from_logits"))


def test_compute_loss_passes_parameters_through():
    y, p = [0.0, 0.0], [0.5, 3.0]
    assert compute_loss("huber", y, p, delta=0.3) == huber(y, p, delta=0.3) != huber(y, p)
    assert compute_loss("mse", y, p, reduction="sum") == mse(y, p, reduction="sum") == 9.25


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("huber", {"delta": 0.0}, "delta"),
        ("huber", {"delta": math.inf}, "delta"),
        ("huber", {"delta": True}, "delta"),
        ("huber", {"delta": "1"}, "delta"),
        ("smooth_l1", {"beta": -0.1}, "beta"),
        ("quantile", {"q": 0.0}, "q"),
        ("quantile", {"q": 1.0}, "q"),
        ("poisson_nll", {"eps": 0.0}, "eps"),
        ("poisson_nll", {"log_input": 1}, "log_input"),
        ("focal", {"gamma": -1.0}, "gamma"),
        ("focal", {"alpha": 1.5}, "alpha"),
        ("focal", {"gamma": math.nan}, "gamma"),
        ("dice", {"smooth": -1.0}, "smooth"),
        ("binary_cross_entropy_with_logits", {"pos_weight": [1.0, -1.0, 1.0]}, "pos_weight"),
        ("binary_cross_entropy_with_logits", {"pos_weight": [1.0, 2.0]}, "pos_weight"),
        ("cross_entropy", {"label_smoothing": 1.1}, "label_smoothing"),
        ("cross_entropy", {"weight": [1.0, 1.0]}, "weight"),
        ("cross_entropy", {"weight": [1.0, -1.0, 1.0, 1.0]}, "weight"),
        ("cross_entropy", {"from_logits": "yes"}, "from_logits"),
        ("nll", {"weight": [1.0, math.nan, 1.0, 1.0]}, "weight"),
    ],
)
def test_out_of_range_parameters_name_their_field(name, params, field):
    y, p = BATCHES[name](np.random.default_rng(6), 5)
    with pytest.raises(InvalidInput) as err:
        compute_loss(name, y, p, **params)
    assert err.value.field == field


def _err(name: str, y: Any, p: Any, **kw: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        compute_loss(name, y, p, **kw)
    return err.value


@pytest.mark.parametrize(
    ("name", "y", "p", "kw", "field"),
    [
        ("mse", [1.0, 2.0], [1.0], {}, "y_pred"),
        ("mse", [1.0, 2.0], [[1.0], [2.0]], {}, "y_pred"),
        ("mse", [1.0, math.nan], [1.0, 2.0], {}, "y_true"),
        ("mae", [1.0, 2.0], [1.0, math.inf], {}, "y_pred"),
        ("mse", [], [], {}, "y_true"),
        ("mse", [1.0, 2.0], [1.0, 2.0], {"sample_weight": [1.0]}, "sample_weight"),
        ("mse", [1.0, 2.0], [1.0, 2.0], {"sample_weight": [1.0, -1.0]}, "sample_weight"),
        ("mse", [1.0, 2.0], [1.0, 2.0], {"sample_weight": [0.0, 0.0]}, "sample_weight"),
        ("mse", [1.0], [1.0], {"reduction": "avg"}, "reduction"),
        ("binary_cross_entropy", [1.0, 0.0], [0.5, 1.2], {}, "y_pred"),
        ("binary_cross_entropy", [1.0, 2.0], [0.5, 0.5], {}, "y_true"),
        ("focal", [1.0, -0.5], [0.5, 0.5], {}, "y_true"),
        ("cross_entropy", [0, 1], [[0.5, 0.6], [0.5, 0.5]], {}, "y_pred"),
        ("cross_entropy", [0, 2], [[0.5, 0.5], [0.5, 0.5]], {}, "y_true"),
        ("cross_entropy", [0, 0.5], [[0.5, 0.5], [0.5, 0.5]], {}, "y_true"),
        ("cross_entropy", ["a", "b"], [[0.5, 0.5], [0.5, 0.5]], {}, "y_true"),
        ("cross_entropy", [[0.5, 0.6]], [[0.5, 0.5]], {}, "y_true"),
        ("cross_entropy", [0], [0.5, 0.5], {}, "y_pred"),
        ("kl_div", [[1.0, 0.0]], [[0.2, 0.7]], {}, "y_pred"),
        ("hinge", [0, 1], [[0.5], [0.5]], {}, "y_pred"),
        ("hinge", [-1, 0, 1], [0.5, 0.5, 0.5], {}, "y_true"),
    ],
)
def test_invalid_inputs_name_their_field(name, y, p, kw, field):
    assert _err(name, y, p, **kw).field == field


def test_error_details_point_at_the_first_bad_index():
    assert "y_pred[1]" in _err("binary_cross_entropy", [1.0, 0.0], [0.5, 1.2]).detail
    assert "y_true[1]" in _err("cross_entropy", [0, 7], [[0.5, 0.5], [0.5, 0.5]]).detail


# ---------------------------------------------------------------- penalties


def test_penalty_follows_the_course_definitions():
    w = np.array([[0.5, -2.0], [0.0, 3.0]])
    assert penalty(w, l1=0.1) == pytest.approx(0.1 * 5.5, rel=1e-15)  # Ω = Σ|w|
    assert penalty(w, l2=0.01) == pytest.approx(0.01 * 13.25, rel=1e-15)  # Ω = Σ w² (no 1/2)
    assert penalty(w, l1=0.1, l2=0.01) == pytest.approx(0.55 + 0.1325, rel=1e-15)
    assert penalty(w) == 0.0


def test_penalty_sums_over_layers_of_different_shapes():
    layers = [np.ones((2, 3)), np.array([-1.0, 2.0]), np.zeros((0,))]
    assert penalty(layers, l1=1.0, l2=1.0) == pytest.approx((6 + 3) + (6 + 5), rel=1e-15)
    assert penalty([], l2=1.0) == 0.0


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"l1": -0.1}, "l1"),
        ({"l2": math.inf}, "l2"),
        ({"l2": math.nan}, "l2"),
        ({"l1": "0.1"}, "l1"),
    ],
)
def test_penalty_strengths_must_be_finite_and_non_negative(kw, field):
    with pytest.raises(InvalidInput) as err:
        penalty([1.0], **kw)
    assert err.value.field == field


@pytest.mark.parametrize("weights", [[1.0, math.nan], [[1.0], [math.inf, 2.0]], "abc"])
def test_penalty_rejects_non_finite_or_non_numeric_weights(weights):
    with pytest.raises(InvalidInput) as err:
        penalty(weights, l2=1.0)
    assert err.value.field == "weights"


def test_penalized_loss_reports_data_loss_penalty_and_total():
    y, p = [0.0, 1.0, 2.0], [0.5, 1.0, 1.0]
    got = penalized_loss("huber", y, p, weights=[3.0, -4.0], l1=0.1, l2=0.01, delta=0.5)
    data = huber(y, p, delta=0.5)
    assert got == PenalizedLoss(data_loss=data, penalty=0.1 * 7 + 0.01 * 25, total=got.total)
    assert got.total == pytest.approx(data + 0.95, rel=1e-15)


def test_penalized_loss_needs_a_scalar_data_loss():
    with pytest.raises(InvalidInput) as err:
        penalized_loss("mse", [0.0], [1.0], weights=[1.0], l2=1.0, reduction="none")
    assert err.value.field == "reduction"
