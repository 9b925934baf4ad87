"""Checkpoint and resume of the fit loop: a fit stopped mid-epoch and resumed from its
checkpoint ends exactly where an uninterrupted fit does."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
import pytest
import torch

from app.errors import InvalidInput
from app.training import (
    EarlyStoppingSpec,
    ModelSpec,
    OptimizerSpec,
    ScheduleSpec,
    TrainingSpec,
    fit,
)
from app.training.checkpoint import Checkpoint
from app.training.loop import EpochRecord

TIMING = {"epoch_time_s", "train_time_s", "samples_per_s"}


def _data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    return X, (X[:, 0] - 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)


def _spec(**kw: Any) -> TrainingSpec:
    # Every source of state the checkpoint must carry: dropout (global RNG), shuffles (their own
    # generator), Adam moments, a cosine schedule, early stopping's best weights and patience.
    base: dict[str, Any] = {
        "task": "binary",
        "model": ModelSpec(hidden=(16, 8), dropout=0.3),
        "optimizer": OptimizerSpec(name="adam", lr=0.02),
        "schedule": ScheduleSpec(name="cosine", min_lr=0.001),
        "early_stopping": EarlyStoppingSpec(monitor="val_loss", patience=50, restore_best=False),
        "batch_size": 16,
        "epochs": 7,
        "device": "cpu",
    }
    return TrainingSpec(**(base | kw))


def _comparable(record: EpochRecord) -> dict[str, Any]:
    fields = dataclasses.asdict(dataclasses.replace(record, val_logits=None))
    return {k: v for k, v in fields.items() if k not in TIMING}


def _stop_after(batches: int) -> Any:
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > batches

    return should_stop


def test_a_resumed_fit_ends_with_the_weights_of_an_uninterrupted_one() -> None:
    X, y = _data()
    Xtr, ytr, Xva, yva = X[:180], y[:180], X[180:], y[180:]
    spec = _spec()
    whole = fit(spec, Xtr, ytr, Xva, yva)

    # 12 batches per epoch: stop after 3 epochs and 5 batches of the 4th
    stopped = fit(
        spec, Xtr, ytr, Xva, yva, should_stop=_stop_after(3 * 12 + 5), checkpoint_on_stop=True
    )
    assert stopped.cancelled and stopped.epochs_completed == 3
    checkpoint = stopped.checkpoint
    assert checkpoint is not None and checkpoint.epoch == 3 and checkpoint.steps == 36
    # through bytes, as the worker stores it in runs.checkpoint
    restored = Checkpoint.from_bytes(checkpoint.to_bytes())

    seen: list[int] = []
    resumed = fit(
        spec, Xtr, ytr, Xva, yva, resume=restored, on_epoch_end=lambda r: seen.append(r.epoch)
    )
    assert seen == [3, 4, 5, 6] and [r.epoch for r in resumed.history] == seen
    assert resumed.epochs_completed == 7 and resumed.steps == whole.steps == 7 * 12
    assert [_comparable(r) for r in resumed.history] == [_comparable(r) for r in whole.history[3:]]
    assert [_comparable(r) for r in stopped.history] == [_comparable(r) for r in whole.history[:3]]
    assert (resumed.best_epoch, resumed.best_value) == (whole.best_epoch, whole.best_value)
    assert resumed.state_dict.keys() == whole.state_dict.keys()
    for name, tensor in whole.state_dict.items():
        assert torch.equal(resumed.state_dict[name], tensor), name
    np.testing.assert_array_equal(resumed.val_logits, whole.val_logits)


def test_resuming_restores_the_best_weights_of_epochs_before_the_checkpoint() -> None:
    X, y = _data()
    Xtr, ytr, Xva, yva = X[:180], y[:180], X[180:], y[180:]
    # lr so high that validation loss is best early: the best weights come from the checkpoint
    es = EarlyStoppingSpec(monitor="val_loss", patience=50, restore_best=True)
    spec = _spec(early_stopping=es, optimizer=OptimizerSpec(name="sgd", lr=3.0))
    whole = fit(spec, Xtr, ytr, Xva, yva)
    stopped = fit(
        spec, Xtr, ytr, Xva, yva, should_stop=_stop_after(4 * 12), checkpoint_on_stop=True
    )
    assert stopped.checkpoint is not None and stopped.checkpoint.epoch == 4
    resumed = fit(
        spec, Xtr, ytr, Xva, yva, resume=Checkpoint.from_bytes(stopped.checkpoint.to_bytes())
    )
    assert resumed.restored_best and resumed.best_epoch == whole.best_epoch
    for name, tensor in whole.state_dict.items():
        assert torch.equal(resumed.state_dict[name], tensor), name


def test_a_checkpoint_is_returned_only_when_asked_for_and_stopped() -> None:
    X, y = _data(64)
    spec = _spec(epochs=2)
    assert fit(spec, X, y, X, y, checkpoint_on_stop=True).checkpoint is None  # ran to its end
    assert fit(spec, X, y, X, y, should_stop=_stop_after(5)).checkpoint is None  # not asked
    first = fit(spec, X, y, X, y, should_stop=_stop_after(2), checkpoint_on_stop=True)
    assert first.checkpoint is not None and first.checkpoint.epoch == 0  # no epoch done yet


def test_a_checkpoint_that_does_not_fit_the_spec_is_refused() -> None:
    X, y = _data(64)
    stopped = fit(_spec(), X, y, X, y, should_stop=_stop_after(6), checkpoint_on_stop=True)
    assert stopped.checkpoint is not None and stopped.checkpoint.epoch == 1
    with pytest.raises(InvalidInput) as info:
        fit(_spec(model=ModelSpec(hidden=(4,))), X, y, X, y, resume=stopped.checkpoint)
    assert info.value.field == "checkpoint"
    with pytest.raises(InvalidInput, match="epoch 1 of 1"):
        fit(_spec(epochs=1), X, y, X, y, resume=stopped.checkpoint)
    with pytest.raises(InvalidInput):
        Checkpoint.from_bytes(_torch_bytes({"version": 0}))


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
