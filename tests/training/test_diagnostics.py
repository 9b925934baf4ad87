"""The loop's per-layer diagnostics (gradient mean and zeros, dead ReLUs), where a divergence is
reported, gradient clipping, and the spec of sanity mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.errors import InvalidInput
from app.training import (
    ModelSpec,
    NonFiniteLossError,
    OptimizerSpec,
    RegularizationSpec,
    TrainingSpec,
    build_loss,
    build_model,
    fit,
)
from app.training.loop import _raise_if_nonfinite, seed_everything
from app.training.spec import Activation, EarlyStoppingSpec, LossSpec, SanityCheckSpec


def _data(n: int = 48, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def test_gradient_mean_and_zero_fraction_equal_a_hand_computed_full_batch_step() -> None:
    X, y = _data()
    spec = TrainingSpec(
        task="binary",
        model=ModelSpec(hidden=(6,)),
        optimizer=OptimizerSpec(name="sgd", lr=0.1),
        batch_size=len(y),  # one batch: the epoch's statistics are that batch's
        epochs=1,
        device="cpu",
    )
    record = fit(spec, X, y, X, y).history[0]

    seed_everything(spec.seed)
    model = build_model(spec, X.shape[1])
    loss = build_loss(spec.loss)(model(torch.from_numpy(X)), torch.from_numpy(y).float())
    loss.backward()
    for name, layer in model.linear_layers():
        g = layer.weight.grad
        assert g is not None
        assert record.grad_means[name] == pytest.approx(float(g.mean()), rel=1e-4, abs=1e-9)
        assert record.grad_zero_fracs[name] == pytest.approx(float((g == 0).float().mean()))
        assert record.grad_norms[name] == pytest.approx(float(g.norm()), rel=1e-5)


def test_constant_zero_features_freeze_the_first_layer_and_its_relus_die_or_live_together() -> None:
    # all-zero inputs: the first layer's weight gradient x^T delta is exactly 0
    X = np.zeros((40, 3), dtype=np.float32)
    y = np.arange(40) % 2
    spec = TrainingSpec(
        task="binary",
        model=ModelSpec(hidden=(16,)),
        optimizer=OptimizerSpec(lr=0.05),
        batch_size=8,
        epochs=3,
        device="cpu",
    )
    result = fit(spec, X, y, X, y)
    for record in result.history:
        assert record.grad_zero_fracs["hidden0"] == 1.0
        assert record.update_ratios["hidden0"] == 0.0
        assert record.grad_means["hidden0"] == 0.0
        assert record.grad_zero_fracs["output"] < 1.0
    # every row is the same, so a unit is dead exactly when its bias is <= 0
    bias = result.state_dict["hidden0.bias"]
    assert result.history[-1].dead_fracs["hidden0"] == pytest.approx(
        float((bias <= 0).float().mean())
    )


def test_dead_units_are_measured_for_relu_layers_only() -> None:
    X, y = _data()
    cases: list[tuple[Activation, set[str]]] = [("relu", {"hidden0", "hidden1"}), ("tanh", set())]
    for activation, expected in cases:
        spec = TrainingSpec(
            task="binary",
            model=ModelSpec(hidden=(4, 4), activation=activation),
            epochs=1,
            device="cpu",
        )
        record = fit(spec, X, y, X, y).history[0]
        assert set(record.dead_fracs) == expected
        assert all(0.0 <= v <= 1.0 for v in record.dead_fracs.values())


def test_the_non_finite_layer_is_the_one_nearest_the_output_where_backprop_starts() -> None:
    names = ["hidden0", "hidden1", "output"]
    ok = [0.5, 0.0, 1.0, 1.0, 1.0]
    # batch 3: hidden1 overflowed and hidden0 below it got NaN, the output layer is finite
    bad = [0.5, 0.0, math.nan, math.inf, 2.0]
    rows = np.array([ok, ok, ok, bad, bad])
    with pytest.raises(NonFiniteLossError) as info:
        _raise_if_nonfinite(rows, 10, epoch=2, names=names)
    err = info.value
    assert (err.epoch, err.batch, err.layer) == (2, 13, "hidden1")
    assert "non-finite gradient (loss 0.5)" in str(err)
    assert err.to_dict() == {
        "kind": "non_finite",
        "epoch": 2,
        "batch": 13,
        "layer": "hidden1",
        "loss": 0.5,
    }
    # extra per-layer columns after the norms are not mistaken for layers
    with_stats = np.array([[math.inf, 0.0, math.inf, math.inf, math.inf, math.nan]])
    with pytest.raises(NonFiniteLossError) as info:
        _raise_if_nonfinite(with_stats, 0, epoch=0, names=["hidden0", "output"])
    assert info.value.layer == "output" and info.value.to_dict()["loss"] == "inf"


def _high_lr_regression(clip: float | None) -> TrainingSpec:
    return TrainingSpec(
        task="regression",
        model=ModelSpec(hidden=(8,)),
        optimizer=OptimizerSpec(name="sgd", lr=1e-3),
        batch_size=8,
        epochs=4,
        device="cpu",
        grad_clip_norm=clip,
    )


def test_gradient_clipping_keeps_a_high_lr_run_finite_and_records_pre_clip_norms() -> None:
    X = np.random.default_rng(3).normal(size=(64, 2)) * 1e3
    y = X[:, 0]
    with pytest.raises(NonFiniteLossError):
        fit(_high_lr_regression(None), X, y, X, y)
    result = fit(_high_lr_regression(1.0), X, y, X, y)
    assert result.epochs_completed == 4
    for record in result.history:
        assert math.isfinite(record.train_loss) and math.isfinite(record.val_loss)
        # the recorded norms are what the loss asked for, far above the clipped 1.0
        assert min(record.grad_norms.values()) > 1e3
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_sanity_mode_turns_the_regularizers_off_and_sets_the_epochs() -> None:
    spec = TrainingSpec.from_dict(
        {
            "task": "multiclass",
            "model": {"hidden": [8], "dropout": 0.5},
            "loss": {"label_smoothing": 0.2},
            "regularization": {"l1": 0.1, "l2": 0.1, "weight_decay": 0.01},
            "early_stopping": {"monitor": "val_loss"},
            "epochs": 5,
            "sanity_check": {"rows": 64, "epochs": 120},
        }
    )
    assert spec.model.dropout == 0.0 and spec.loss.label_smoothing == 0.0
    assert spec.regularization == RegularizationSpec()
    assert spec.early_stopping is None and spec.epochs == 120
    assert spec.sanity_check == SanityCheckSpec(rows=64, epochs=120)
    assert TrainingSpec.from_dict(spec.to_dict()) == spec
    plain = TrainingSpec(
        task="multiclass",
        model=ModelSpec(dropout=0.5),
        loss=LossSpec(label_smoothing=0.2),
        early_stopping=EarlyStoppingSpec(),
    )
    assert plain.model.dropout == 0.5 and plain.early_stopping is not None


@pytest.mark.parametrize(("rows", "field"), [(31, "rows"), (257, "rows"), (True, "rows")])
def test_sanity_rows_outside_32_to_256_are_input_errors(rows: object, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        TrainingSpec.from_dict({"task": "binary", "sanity_check": {"rows": rows}})
    assert info.value.field == f"sanity_check.{field}"
    with pytest.raises(InvalidInput) as info:
        TrainingSpec.from_dict({"task": "binary", "sanity_check": {"rows": 64, "foo": 1}})
    assert info.value.field == "sanity_check.foo"
