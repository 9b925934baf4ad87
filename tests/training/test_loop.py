"""The fit loop on tiny CPU problems: it learns, it is exact where it can be checked by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Lasso, Ridge

from app.core.losses import focal, penalty
from app.errors import InvalidInput
from app.training import (
    EarlyStoppingSpec,
    EpochRecord,
    LossSpec,
    ModelSpec,
    NonFiniteLossError,
    OptimizerSpec,
    RegularizationSpec,
    ScheduleSpec,
    TrainingSpec,
    build_loss,
    fit,
    load_model,
    predict,
)
from app.training.loop import batch_bounds

TIMING_FIELDS = {"epoch_time_s", "train_time_s", "samples_per_s"}


def _blobs(n: int, n_features: int = 4, n_classes: int = 2, seed: int = 0, sep: float = 3.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    centers = rng.normal(scale=sep, size=(n_classes, n_features))
    X = centers[y] + rng.normal(size=(n, n_features))
    return X.astype(np.float32), y


def _linear_data(n: int = 200, seed: int = 0):
    """y = 2 x0 - x1 + 0.5 + noise; features 2..5 are irrelevant."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    y = 2.0 * X[:, 0] - X[:, 1] + 0.5 + rng.normal(scale=0.5, size=n)
    return X, y


def _spec(task: str = "binary", **kw: Any) -> TrainingSpec:
    base: dict[str, Any] = {
        "task": task,
        "model": ModelSpec(hidden=(16,)),
        "optimizer": OptimizerSpec(lr=0.05),
        "batch_size": 32,
        "epochs": 10,
        "device": "cpu",
    }
    return TrainingSpec(**(base | kw))


def _sgd_linear(epochs: int, lr: float = 0.1, **reg: float) -> TrainingSpec:
    """Full-batch gradient descent on a linear model: the loop as a plain optimizer."""
    return TrainingSpec(
        task="regression",
        model=ModelSpec(hidden=()),
        optimizer=OptimizerSpec(name="sgd", lr=lr),
        regularization=RegularizationSpec(**reg),
        batch_size=10_000,
        epochs=epochs,
        device="cpu",
    )


def _finite_record(r: EpochRecord) -> bool:
    numbers = [v for k, v in dataclasses.asdict(r).items() if isinstance(v, float)]
    for d in (r.grad_norms, r.grad_norms_max, r.update_ratios):
        numbers += list(d.values())
    numbers += [v for v in r.metrics.values() if v is not None]
    return all(math.isfinite(v) for v in numbers)


# -- it learns ----------------------------------------------------------------------------------
def test_a_separable_binary_problem_reaches_95_percent_validation_accuracy() -> None:
    X, y = _blobs(600)
    result = fit(_spec(), X[:400], y[:400], X[400:], y[400:])
    accuracy = np.mean((result.val_logits > 0) == y[400:])
    assert accuracy >= 0.95
    assert result.val_logits.shape == (200,) and result.val_logits.dtype == np.float32
    assert result.device == "cpu" and not result.cancelled and result.epochs_completed == 10
    assert result.history[-1].val_loss < result.history[0].val_loss


def test_it_can_overfit_64_rows_of_random_labels_to_near_zero_training_loss() -> None:
    # the "can it memorize a tiny subset" sanity check: no dropout, no penalty, one batch
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(64, 8)), rng.integers(0, 2, size=64)
    spec = _spec(
        model=ModelSpec(hidden=(64, 64)),
        optimizer=OptimizerSpec(lr=1e-2),
        batch_size=64,
        epochs=300,
    )
    result = fit(spec, X, y, X, y)
    assert result.history[-1].train_loss < 1e-2
    assert np.all((result.val_logits > 0) == y)


def test_multiclass_learns_and_outputs_one_logit_per_class() -> None:
    X, y = _blobs(600, n_classes=3, seed=2)
    seen: list[dict[str, float | None]] = []

    def metric_fn(logits: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
        assert logits.shape == (200, 3) and y_val.dtype == np.int64
        return {"accuracy": float(np.mean(logits.argmax(axis=1) == y_val))}

    result = fit(
        _spec("multiclass"),
        X[:400],
        y[:400],
        X[400:],
        y[400:],
        metric_fn=metric_fn,
        on_epoch_end=lambda r: seen.append(r.metrics),
    )
    assert result.n_outputs == 3 and result.val_logits.shape == (200, 3)
    assert seen[-1]["accuracy"] is not None and seen[-1]["accuracy"] >= 0.9
    np.testing.assert_array_equal(
        predict(result.state_dict, _spec("multiclass"), X[400:]), result.val_logits
    )


def test_regression_fits_a_linear_target() -> None:
    X, y = _linear_data(400)
    spec = _spec(
        "regression",
        loss=LossSpec(name="huber", delta=1.0),
        epochs=30,
        optimizer=OptimizerSpec(lr=0.01),
    )
    result = fit(spec, X[:300], y[:300], X[300:], y[300:])
    assert result.val_logits.shape == (100,)
    assert np.mean((result.val_logits - y[300:]) ** 2) < 0.5  # noise variance is 0.25


# -- regularization -----------------------------------------------------------------------------
def test_l2_penalty_matches_the_ridge_closed_form_with_an_unpenalized_bias() -> None:
    X, y = _linear_data()
    lam = 0.1
    result = fit(_sgd_linear(400, l2=lam), X, y, X, y)
    # mean squared error + λ Σ w² has the minimizer of sklearn's Σ (y - Xw - b)² + nλ Σ w²
    ridge = Ridge(alpha=lam * len(y)).fit(X, y)
    np.testing.assert_allclose(
        result.state_dict["output.weight"].numpy()[0], ridge.coef_, atol=1e-4
    )
    np.testing.assert_allclose(
        result.state_dict["output.bias"].numpy()[0], ridge.intercept_, atol=1e-4
    )
    plain = fit(_sgd_linear(400), X, y, X, y)
    assert np.linalg.norm(result.state_dict["output.weight"]) < np.linalg.norm(
        plain.state_dict["output.weight"]
    )


def test_l1_drives_the_weights_of_irrelevant_features_toward_zero() -> None:
    X, y = _linear_data()
    lam = 0.3
    plain = fit(_sgd_linear(300, lr=0.05), X, y, X, y).state_dict["output.weight"].numpy()[0]
    lasso = fit(_sgd_linear(300, lr=0.05, l1=lam), X, y, X, y).state_dict["output.weight"]
    lasso_w = lasso.numpy()[0]
    # subgradient steps hover within about lr·λ of zero instead of landing on it
    assert np.abs(lasso_w[2:]).max() < 0.25 * np.abs(plain[2:]).max()
    # MSE + λ Σ|w| is sklearn's Lasso objective times 2, with alpha = λ / 2
    reference = Lasso(alpha=lam / 2).fit(X, y).coef_
    np.testing.assert_allclose(lasso_w, reference, atol=0.03)


@pytest.mark.parametrize("reg", [{"l2": 0.01}, {"l1": 0.003}, {"l1": 0.002, "l2": 0.02}])
def test_reported_penalty_equals_lambda_times_the_weights_norm_computed_by_hand(
    reg: dict[str, float],
) -> None:
    X, y = _blobs(50)
    # a vanishing learning rate keeps the weights where the penalty was measured
    spec = _spec(
        model=ModelSpec(hidden=(8, 4)),
        optimizer=OptimizerSpec(name="sgd", lr=1e-12),
        regularization=RegularizationSpec(**reg),
        epochs=1,
    )
    result = fit(spec, X, y, X, y)
    weights = [v.numpy() for k, v in result.state_dict.items() if k.endswith(".weight")]
    by_hand = sum(
        reg.get("l1", 0.0) * np.abs(w).sum() + reg.get("l2", 0.0) * (w**2).sum() for w in weights
    )
    record = result.history[0]
    assert record.train_penalty == pytest.approx(by_hand, rel=1e-5)
    assert record.train_penalty == pytest.approx(
        penalty([w.ravel() for w in weights], **reg), rel=1e-5
    )
    assert record.train_total == pytest.approx(record.train_loss + record.train_penalty)


def test_sgd_weight_decay_equals_an_l2_penalty_of_half_its_strength() -> None:
    X, y = _linear_data()
    decayed = fit(_sgd_linear(50, weight_decay=0.2), X, y, X, y)
    penalized = fit(_sgd_linear(50, l2=0.1), X, y, X, y)
    for key in ("output.weight", "output.bias"):
        torch.testing.assert_close(decayed.state_dict[key], penalized.state_dict[key])
    assert decayed.history[-1].train_penalty == 0.0  # weight decay is not a reported penalty


# -- early stopping, cancellation, determinism --------------------------------------------------
def _overfitting_run(restore_best: bool) -> tuple[Any, TrainingSpec, list[EpochRecord], np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 10))
    y = (X[:, 0] + rng.normal(scale=1.5, size=120) > 0).astype(int)  # noisy: easy to overfit
    records: list[EpochRecord] = []
    spec = _spec(
        model=ModelSpec(hidden=(128, 128)),
        optimizer=OptimizerSpec(lr=1e-2),
        epochs=60,
        batch_size=16,
        early_stopping=EarlyStoppingSpec(patience=3, restore_best=restore_best),
    )
    result = fit(spec, X[:60], y[:60], X[60:], y[60:], on_epoch_end=records.append)
    return result, spec, records, X[60:]


def test_early_stopping_restores_the_weights_of_the_best_epoch() -> None:
    result, spec, records, X_val = _overfitting_run(restore_best=True)
    val_losses = [r.val_loss for r in result.history]
    assert result.stopped_early and result.restored_best
    assert result.best_epoch == int(np.argmin(val_losses))
    assert len(result.history) == result.best_epoch + 1 + 3  # patience epochs after the best
    assert result.best_value == val_losses[result.best_epoch]
    best = records[result.best_epoch]
    assert best.is_best and best.val_logits is not None
    # the returned weights reproduce the best epoch's validation outputs exactly
    np.testing.assert_array_equal(predict(result.state_dict, spec, X_val), best.val_logits)
    np.testing.assert_array_equal(result.val_logits, best.val_logits)
    assert all(r.val_logits is None for r in result.history)  # history does not hoard outputs


def test_without_restore_best_the_last_epochs_weights_are_returned() -> None:
    result, spec, records, X_val = _overfitting_run(restore_best=False)
    assert result.stopped_early and not result.restored_best
    np.testing.assert_array_equal(predict(result.state_dict, spec, X_val), records[-1].val_logits)


def test_early_stopping_can_monitor_a_metric_from_metric_fn() -> None:
    X, y = _blobs(200)

    def metric_fn(logits: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
        return {"accuracy": float(np.mean((logits > 0) == y_val)), "undefined": float("nan")}

    spec = _spec(
        epochs=30, early_stopping=EarlyStoppingSpec(monitor="accuracy", mode="max", patience=2)
    )
    result = fit(spec, X[:100], y[:100], X[100:], y[100:], metric_fn=metric_fn)
    assert result.monitor == "accuracy"
    assert result.best_value == max(r.metrics["accuracy"] for r in result.history)  # type: ignore[type-var]
    assert all(r.metrics["undefined"] is None for r in result.history)  # NaN becomes null


def test_monitoring_a_metric_nobody_computes_is_an_input_error() -> None:
    X, y = _blobs(40)
    spec = _spec(early_stopping=EarlyStoppingSpec(monitor="roc_auc", mode="max"))
    with pytest.raises(InvalidInput) as info:
        fit(spec, X, y, X, y)
    assert info.value.field == "early_stopping.monitor"
    with pytest.raises(InvalidInput) as info:
        fit(spec, X, y, X, y, metric_fn=lambda logits, y_val: {"accuracy": 1.0})
    assert info.value.field == "early_stopping.monitor"


def test_should_stop_cancels_at_a_batch_boundary() -> None:
    X, y = _blobs(100)
    calls: list[int] = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) == 15  # 10 batches per epoch: stop before the 5th batch of epoch 1

    spec = _spec(batch_size=10, epochs=5)
    result = fit(spec, X, y, X, y, should_stop=should_stop)
    assert result.cancelled and not result.stopped_early
    assert result.steps == 14 and result.epochs_completed == 1 and len(result.history) == 1
    # the partial epoch moved the weights: the returned outputs are those of the returned weights
    np.testing.assert_array_equal(predict(result.state_dict, spec, X), result.val_logits)


def test_the_same_seed_gives_the_identical_history_and_weights() -> None:
    X, y = _blobs(200)
    spec = _spec(model=ModelSpec(hidden=(16, 16), dropout=0.2), epochs=4)
    a, b = (fit(spec, X[:150], y[:150], X[150:], y[150:]) for _ in range(2))
    other = fit(dataclasses.replace(spec, seed=1), X[:150], y[:150], X[150:], y[150:])

    def untimed(r: EpochRecord) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(r).items() if k not in TIMING_FIELDS}

    assert [untimed(r) for r in a.history] == [untimed(r) for r in b.history]
    for key, value in a.state_dict.items():
        torch.testing.assert_close(value, b.state_dict[key], rtol=0, atol=0)
    assert [untimed(r) for r in a.history] != [untimed(r) for r in other.history]


def test_a_last_partial_batch_is_trained_on_so_every_row_counts_once_per_epoch() -> None:
    assert batch_bounds(103, 10)[-1] == (100, 103)
    X, y = _blobs(103)
    spec = _spec(optimizer=OptimizerSpec(name="sgd", lr=1e-12), batch_size=10, epochs=1)
    result = fit(spec, X, y, X, y)
    assert result.history[0].n_batches == 11 and result.steps == 11
    # with frozen weights the epoch's mean loss is the loss over all 103 rows, each counted once
    full = F.binary_cross_entropy_with_logits(
        torch.from_numpy(result.val_logits), torch.from_numpy(y.astype(np.float32))
    )
    assert result.history[0].train_loss == pytest.approx(float(full), rel=1e-6)


# -- divergence, losses, inputs -----------------------------------------------------------------
def test_a_diverging_run_raises_non_finite_loss_error_and_never_reports_nan() -> None:
    X, y = _linear_data(640)
    records: list[EpochRecord] = []
    spec = _spec("regression", optimizer=OptimizerSpec(name="sgd", lr=1e4), batch_size=8, epochs=3)
    with pytest.raises(NonFiniteLossError) as info:
        fit(spec, X, y * 1e3, X, y, on_epoch_end=records.append)
    err = info.value
    assert err.epoch == 0 and err.batch is not None and err.batch < 64
    assert err.layer in {"hidden0", "output", None}
    assert "diverged" in str(err)
    assert all(_finite_record(r) for r in records)


def test_a_healthy_run_reports_only_finite_numbers_and_named_layer_diagnostics() -> None:
    X, y = _blobs(200)
    records: list[EpochRecord] = []
    spec = _spec(
        model=ModelSpec(hidden=(8, 8)),
        grad_clip_norm=0.5,
        schedule=ScheduleSpec(name="step", step_size=2, gamma=0.5),
        epochs=4,
    )
    fit(spec, X, y, X, y, on_epoch_end=records.append)
    assert all(_finite_record(r) for r in records)
    assert set(records[0].grad_norms) == {"hidden0", "hidden1", "output"}
    assert all(r.grad_norms_max[k] >= r.grad_norms[k] for r in records for k in r.grad_norms)
    assert all(v > 0 for v in records[0].update_ratios.values())
    assert [r.lr for r in records] == pytest.approx([0.05, 0.05, 0.025, 0.025])


def test_cosine_schedule_anneals_to_min_lr() -> None:
    X, y = _blobs(40)
    spec = _spec(schedule=ScheduleSpec(name="cosine", min_lr=0.01), epochs=3)
    lrs = [r.lr for r in fit(spec, X, y, X, y).history]
    # lr_t = min_lr + (lr - min_lr)(1 + cos(π t / epochs)) / 2
    assert lrs == pytest.approx([0.05, 0.04, 0.02])


def test_losses_match_torch_functional_with_their_parameters() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(50, 1, generator=g), torch.randint(0, 2, (50,), generator=g).float()
    fn = build_loss(LossSpec(name="bce_with_logits", pos_weight=3.0))
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], y, pos_weight=torch.tensor(3.0))
    torch.testing.assert_close(fn(logits, y), expected)

    scores, labels = torch.randn(50, 3, generator=g), torch.randint(0, 3, (50,), generator=g)
    fn = build_loss(
        LossSpec(name="cross_entropy", class_weights=(1.0, 2.0, 0.5), label_smoothing=0.1)
    )
    expected = F.cross_entropy(
        scores, labels, weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1
    )
    torch.testing.assert_close(fn(scores, labels), expected)

    torch.testing.assert_close(
        build_loss(LossSpec(name="huber", delta=0.3))(logits, y),
        F.huber_loss(logits[:, 0], y, delta=0.3),
    )
    torch.testing.assert_close(
        build_loss(LossSpec(name="mse"))(logits, y), F.mse_loss(logits[:, 0], y)
    )

    fn = build_loss(LossSpec(name="focal", gamma=2.0, alpha=0.25))
    reference = focal(y.numpy(), logits[:, 0].numpy(), from_logits=True, gamma=2.0, alpha=0.25)
    assert float(fn(logits, y)) == pytest.approx(reference, rel=1e-5)


def test_the_reported_val_loss_uses_the_weighted_loss() -> None:
    X, y = _blobs(200)
    spec = _spec(loss=LossSpec(pos_weight=4.0), epochs=2)
    result = fit(spec, X[:100], y[:100], X[100:], y[100:])
    expected = F.binary_cross_entropy_with_logits(
        torch.from_numpy(result.val_logits),
        torch.from_numpy(y[100:].astype(np.float32)),
        pos_weight=torch.tensor(4.0),
    )
    assert result.history[-1].val_loss == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize(
    ("task", "y_bad", "field"),
    [("binary", 2, "y_train"), ("binary", 0.5, "y_train"), ("multiclass", -1, "y_train")],
)
def test_labels_outside_the_task_are_input_errors(task: str, y_bad: float, field: str) -> None:
    X, y = _blobs(20)
    y = y.astype(np.float64)
    y[3] = y_bad
    with pytest.raises(InvalidInput) as info:
        fit(_spec(task), X, y, X, y)
    assert info.value.field == field


def test_bad_arrays_are_input_errors_naming_the_array() -> None:
    X, y = _blobs(20)
    with pytest.raises(InvalidInput) as info:
        fit(_spec(), X, y, X[:, :3], y)
    assert info.value.field == "X_val"
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    with pytest.raises(InvalidInput) as info:
        fit(_spec(), X_nan, y, X, y)
    assert info.value.field == "X_train"
    with pytest.raises(InvalidInput) as info:
        fit(_spec(), X, y[:10], X, y)
    assert info.value.field == "y_train"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_asking_for_cuda_without_a_gpu_is_an_input_error() -> None:
    X, y = _blobs(20)
    with pytest.raises(InvalidInput) as info:
        fit(_spec(device="cuda"), X, y, X, y)
    assert info.value.field == "device"


def test_load_model_rebuilds_the_network_and_rejects_foreign_weights() -> None:
    X, y = _blobs(60, n_classes=3)
    spec = _spec("multiclass", epochs=2)
    result = fit(spec, X, y, X, y)
    model = load_model(spec, result.n_features, result.state_dict)
    assert not model.training
    np.testing.assert_array_equal(predict(model, spec, X), result.val_logits)
    with pytest.raises(InvalidInput) as info:
        load_model(_spec("multiclass", model=ModelSpec(hidden=(4,))), 4, result.state_dict)
    assert info.value.field == "state_dict"
