"""Grad-CAM of image runs: it points at the evidence, and the batched pass equals the textbook
per-image loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.errors import InvalidInput
from app.training import TrainingSpec, fit, load_model
from app.training.cnn import CNN
from app.training.gradcam import gradcam, gradcam_per_image, pointing_game
from app.training.images import make_patch_images
from app.training.spec import CNNSpec, OptimizerSpec

PATCH = 4


@pytest.fixture(scope="module")
def patch_model() -> tuple[CNN, np.ndarray, np.ndarray, np.ndarray]:
    """A small CNN trained on bright-patch images; the held-out images and their patch boxes."""
    torch.set_num_threads(1)
    X, y, boxes = make_patch_images(600, size=16, patch=PATCH, seed=0)
    n_train = 400
    spec = TrainingSpec(
        task="binary",
        model=CNNSpec(
            blocks=[{"channels": 8}, {"channels": 16, "pool": "none"}],
            head=(),
            head_pool="avg",
            input_shape=(1, 16, 16),
        ),
        optimizer=OptimizerSpec(lr=3e-3),
        epochs=12,
        batch_size=32,
        device="cpu",
    )
    flat = X.reshape(len(X), -1)
    result = fit(spec, flat[:n_train], y[:n_train], flat[n_train:], y[n_train:])
    model = load_model(spec, 256, result.state_dict)
    assert isinstance(model, CNN)
    return model, X[n_train:], y[n_train:], boxes[n_train:]


def test_the_gradcam_peak_falls_inside_the_bright_patch_pointing_game(patch_model) -> None:
    model, X, y, boxes = patch_model
    res = gradcam(model, X, task="binary", target=1)
    predicted = (res.outputs[:, 0] >= 0).astype(int)
    hits = (predicted == y) & (y == 1)
    assert hits.sum() >= 80  # the model learned the task: most positives are classified right
    inside = pointing_game(res.peaks[hits], boxes[hits], PATCH)
    assert inside.mean() >= 0.9, inside.mean()
    # the decoy-only images get maps too, but a random point would hit a 4x4 patch 1/16 of the
    # time: the score above is not something a blind map reaches
    assert res.maps.shape == (len(X), 16, 16)
    assert float(res.maps.min()) >= 0.0 and float(res.maps.max()) <= 1.0


def test_batched_gradcam_equals_the_per_image_hook_loop(patch_model) -> None:
    model, X, _, _ = patch_model
    for layer in ("conv0", "conv1"):
        fast = gradcam(model, X[:40], task="binary", layer=layer, batch_size=16)
        slow = gradcam_per_image(model, X[:40], task="binary", layer=layer)
        np.testing.assert_array_equal(fast.targets, slow.targets)
        np.testing.assert_allclose(fast.raw, slow.raw, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fast.maps, slow.maps, rtol=1e-4, atol=1e-5)
        assert fast.layer == layer


def test_the_default_target_is_the_predicted_class_and_class_0_flips_the_logit(
    patch_model,
) -> None:
    model, X, _, _ = patch_model
    default = gradcam(model, X[:20], task="binary")
    np.testing.assert_array_equal(default.targets, (default.outputs[:, 0] >= 0).astype(int))
    one, zero = (gradcam(model, X[:20], task="binary", target=t) for t in (1, 0))
    # α for class 0 is -α for class 1: where one map has positive evidence the other has none
    both = (one.raw > 1e-6) & (zero.raw > 1e-6)
    assert not both.any()


def test_gradcam_refuses_unknown_layers_and_bad_targets(patch_model) -> None:
    model, X, _, _ = patch_model
    with pytest.raises(InvalidInput) as err:
        gradcam(model, X[:2], task="binary", layer="hidden0")
    assert err.value.field == "layer" and "conv0" in err.value.detail
    with pytest.raises(InvalidInput) as err:
        gradcam(model, X[:2], task="binary", target=2)
    assert err.value.field == "target"
    with pytest.raises(InvalidInput):
        gradcam(model, X[:2], task="binary", target=[0, 1, 1])
    with pytest.raises(InvalidInput):
        gradcam(model, X[:2], task="regression", target=0)
