"""The cnn model of image runs: its spec round-trips and names bad fields, and the existing fit
loop trains it on flattened images (penalties, gradient stats and predictions included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.errors import InvalidInput
from app.training import TrainingSpec, fit, load_model, predict
from app.training.cnn import CNN
from app.training.images import as_image_rows, make_patch_images
from app.training.spec import CNNSpec, ModelSpec, OptimizerSpec, RegularizationSpec


def test_a_cnn_spec_round_trips_through_its_stored_dict() -> None:
    spec = TrainingSpec.from_dict(
        {
            "task": "multiclass",
            "model": {
                "type": "cnn",
                "blocks": [{"channels": 8, "kernel": 5}, {"channels": 4, "pool": "avg"}],
                "head": [16],
                "batch_norm": True,
                "input_shape": [3, 12, 12],
            },
        }
    )
    assert isinstance(spec.model, CNNSpec)
    assert spec.model.blocks[0].kernel == 5 and spec.model.blocks[1].pool == "avg"
    assert spec.model.feature_shape() == (4, 3, 3)
    again = TrainingSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.to_dict()["model"]["type"] == "cnn"
    mlp = TrainingSpec.from_dict({"task": "binary", "model": {"type": "mlp", "hidden": [3]}})
    assert mlp.model == ModelSpec(hidden=(3,))


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ({"type": "rnn"}, "model.type"),
        ({"type": "cnn", "blocks": []}, "model.blocks"),
        ({"type": "cnn", "blocks": [{"channels": 4}, {"kernel": 0}]}, "model.blocks[1].kernel"),
        ({"type": "cnn", "blocks": [{"channels": 4, "stride": 2}]}, "model.blocks[0].stride"),
        ({"type": "cnn", "blocks": [{"pool": "min"}]}, "model.blocks[0].pool"),
        ({"type": "cnn", "head": [0]}, "model.head[0]"),
        ({"type": "cnn", "hidden": [4]}, "model.hidden"),
        ({"type": "cnn", "input_shape": [1, 8]}, "model.input_shape"),
        ({"type": "cnn", "input_shape": [1, 2, 2]}, "model.blocks[1].pool_size"),
        ({"type": "cnn", "batch_norm": 1}, "model.batch_norm"),
    ],
)
def test_bad_cnn_options_name_their_field(model: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        TrainingSpec.from_dict({"task": "binary", "model": model})
    assert err.value.field == field


def test_the_fit_loop_trains_a_cnn_on_flattened_images_with_penalties_and_stats() -> None:
    torch.set_num_threads(1)
    X, y, _ = make_patch_images(160, size=8, patch=2, seed=1)
    rows = X.reshape(len(X), -1)
    spec = TrainingSpec(
        task="binary",
        model=CNNSpec(blocks=[{"channels": 4}], head=(8,), input_shape=(1, 8, 8)),
        regularization=RegularizationSpec(l2=1e-4),
        optimizer=OptimizerSpec(lr=0.01),
        epochs=15,
        batch_size=16,
        device="cpu",
    )
    result = fit(spec, rows[:120], y[:120], rows[120:], y[120:])
    last = result.history[-1]
    assert set(last.grad_norms) == {"conv0", "hidden0", "output"}
    assert last.train_penalty > 0  # the conv weights are penalized too
    assert result.history[-1].val_loss < result.history[0].val_loss
    model = load_model(spec, 64, result.state_dict)
    assert isinstance(model, CNN)
    out = predict(result.state_dict, spec, rows[120:])
    np.testing.assert_allclose(out, result.val_logits, rtol=1e-5, atol=1e-6)
    images = torch.as_tensor(X[120:])
    np.testing.assert_allclose(model(images)[:, 0].detach().numpy(), out, rtol=1e-5, atol=1e-6)
    assert ((out >= 0) == y[120:]).mean() >= 0.8


def test_image_rows_accept_nchw_nhw_and_flat_rows_of_the_right_shape() -> None:
    X = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 1, 3, 4)
    for given in (X, X[:, 0], X.reshape(2, -1)):
        rows, shape = as_image_rows(given, "X", shape=(1, 3, 4))
        assert shape == (1, 3, 4) and rows.dtype == np.float32
        np.testing.assert_array_equal(rows, X.reshape(2, -1))
    for bad in (X[:, :, :2], X.reshape(2, -1)[:, :5], np.full((1, 3, 4), np.inf), np.zeros(3)):
        with pytest.raises(InvalidInput) as err:
            as_image_rows(bad, "X", shape=(1, 3, 4))
        assert err.value.field == "X"
    with pytest.raises(InvalidInput):
        as_image_rows(X.reshape(2, -1), "X")  # flat rows need a known shape
