"""Run specs: defaults, range checks that name the dotted field, and the dict round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidInput
from app.training.spec import (
    EarlyStoppingSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    RegularizationSpec,
    ScheduleSpec,
    TrainingSpec,
)


@pytest.mark.parametrize(
    ("task", "loss"),
    [("binary", "bce_with_logits"), ("multiclass", "cross_entropy"), ("regression", "mse")],
)
def test_loss_defaults_to_the_tasks_natural_loss(task: str, loss: str) -> None:
    assert TrainingSpec(task=task).loss.name == loss  # type: ignore[arg-type]


def test_lists_are_normalized_to_tuples_and_ints_to_floats() -> None:
    spec = TrainingSpec(
        task="multiclass",
        model=ModelSpec(hidden=[8, 4], dropout=0),  # type: ignore[arg-type]
        loss=LossSpec(class_weights=[1, 2, 3]),  # type: ignore[arg-type]
    )
    assert spec.model.hidden == (8, 4)
    assert spec.loss.class_weights == (1.0, 2.0, 3.0)
    assert isinstance(spec.model.dropout, float)
    assert spec.n_classes == 3  # taken from the class weights


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ModelSpec(hidden=(8, 0)), "model.hidden[1]"),
        (lambda: ModelSpec(hidden="8"), "model.hidden"),  # type: ignore[arg-type]
        (lambda: ModelSpec(hidden=(True,)), "model.hidden[0]"),
        (lambda: ModelSpec(activation="sigmoid"), "model.activation"),  # type: ignore[arg-type]
        (lambda: ModelSpec(dropout=1.0), "model.dropout"),
        (lambda: ModelSpec(dropout=float("nan")), "model.dropout"),
        (lambda: LossSpec(name="hinge"), "loss.name"),  # type: ignore[arg-type]
        (lambda: LossSpec(pos_weight=0.0), "loss.pos_weight"),
        (lambda: LossSpec(class_weights=(0.0, 0.0)), "loss.class_weights"),
        (lambda: LossSpec(class_weights=(1.0, -1.0)), "loss.class_weights[1]"),
        (lambda: LossSpec(label_smoothing=1.0), "loss.label_smoothing"),
        (lambda: LossSpec(delta=0.0), "loss.delta"),
        (lambda: LossSpec(gamma=-1.0), "loss.gamma"),
        (lambda: LossSpec(alpha=1.5), "loss.alpha"),
        (lambda: LossSpec(name="mse", pos_weight=2.0), "loss.pos_weight"),
        (lambda: LossSpec(name="bce_with_logits", label_smoothing=0.1), "loss.label_smoothing"),
        (lambda: RegularizationSpec(l1=-0.1), "regularization.l1"),
        (lambda: RegularizationSpec(weight_decay=float("inf")), "regularization.weight_decay"),
        (lambda: OptimizerSpec(name="rmsprop"), "optimizer.name"),  # type: ignore[arg-type]
        (lambda: OptimizerSpec(lr=0.0), "optimizer.lr"),
        (lambda: OptimizerSpec(momentum=1.0, name="sgd"), "optimizer.momentum"),
        (lambda: OptimizerSpec(name="adam", momentum=0.9), "optimizer.momentum"),
        (lambda: OptimizerSpec(name="sgd", nesterov=True), "optimizer.nesterov"),
        (lambda: ScheduleSpec(name="linear"), "schedule.name"),  # type: ignore[arg-type]
        (lambda: ScheduleSpec(step_size=0), "schedule.step_size"),
        (lambda: ScheduleSpec(gamma=0.0), "schedule.gamma"),
        (lambda: EarlyStoppingSpec(patience=0), "early_stopping.patience"),
        (lambda: EarlyStoppingSpec(mode="up"), "early_stopping.mode"),  # type: ignore[arg-type]
        (lambda: EarlyStoppingSpec(monitor="accuracy"), "early_stopping.mode"),
        (lambda: EarlyStoppingSpec(min_delta=-1.0), "early_stopping.min_delta"),
        (lambda: TrainingSpec(task="ranking"), "task"),  # type: ignore[arg-type]
        (lambda: TrainingSpec(task="binary", batch_size=0), "batch_size"),
        (lambda: TrainingSpec(task="binary", epochs=1.5), "epochs"),  # type: ignore[arg-type]
        (lambda: TrainingSpec(task="binary", seed=-1), "seed"),
        (lambda: TrainingSpec(task="binary", device="tpu"), "device"),  # type: ignore[arg-type]
        (lambda: TrainingSpec(task="binary", grad_clip_norm=0.0), "grad_clip_norm"),
        (lambda: TrainingSpec(task="binary", loss=LossSpec(name="mse")), "loss.name"),
        (lambda: TrainingSpec(task="regression", loss=LossSpec(name="focal")), "loss.name"),
        (
            lambda: TrainingSpec(task="binary", loss=LossSpec(class_weights=(1, 2))),
            "loss.class_weights",
        ),
        (lambda: TrainingSpec(task="binary", n_classes=2), "n_classes"),
        (lambda: TrainingSpec(task="multiclass", n_classes=1), "n_classes"),
        (
            lambda: TrainingSpec(
                task="multiclass", n_classes=4, loss=LossSpec(class_weights=(1, 2, 3))
            ),
            "loss.class_weights",
        ),
    ],
)
def test_out_of_range_values_raise_invalid_input_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        build()
    assert info.value.field == field


def test_early_stopping_mode_defaults_to_min_for_the_loops_own_losses() -> None:
    assert EarlyStoppingSpec(monitor="val_loss").mode == "min"
    assert EarlyStoppingSpec(monitor="train_total").mode == "min"
    assert EarlyStoppingSpec(monitor="roc_auc", mode="max").mode == "max"


def test_to_dict_survives_json_and_from_dict_rebuilds_the_same_spec() -> None:
    spec = TrainingSpec(
        task="multiclass",
        model=ModelSpec(hidden=(16, 8), activation="gelu", dropout=0.1),
        loss=LossSpec(class_weights=(1.0, 2.0, 0.5), label_smoothing=0.1),
        regularization=RegularizationSpec(l1=1e-4, l2=1e-3),
        optimizer=OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
        schedule=ScheduleSpec(name="step", step_size=3, gamma=0.5),
        early_stopping=EarlyStoppingSpec(monitor="accuracy", mode="max", patience=2),
        grad_clip_norm=1.0,
    )
    again = TrainingSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_from_dict_fills_defaults_and_rejects_unknown_keys_by_dotted_name() -> None:
    spec = TrainingSpec.from_dict({"task": "binary", "model": {"hidden": [4]}, "loss": None})
    assert spec.model.hidden == (4,)
    assert spec.loss.name == "bce_with_logits"
    with pytest.raises(InvalidInput) as info:
        TrainingSpec.from_dict({"task": "binary", "model": {"width": 4}})
    assert info.value.field == "model.width"
    with pytest.raises(InvalidInput) as info:
        TrainingSpec.from_dict({"task": "binary", "lr": 0.1})
    assert info.value.field == "lr"
    with pytest.raises(InvalidInput) as info:
        TrainingSpec.from_dict({"model": {}})
    assert info.value.field == "task"


def test_specs_are_frozen() -> None:
    spec = TrainingSpec(task="binary")
    with pytest.raises(AttributeError):
        spec.epochs = 3  # type: ignore[misc]
