"""Image perturbation families: level 0 is the clean image, each does what it says, and the
robustness engine runs them reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from app.core import image_perturbations as ip
from app.core.robustness import FAMILIES, check_request, evaluate
from app.errors import InvalidInput

NAMES = ("gaussian_noise", "blur", "occlusion", "brightness", "contrast")


def images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(1.0, 2.0, size=(n, 2, 10, 12)).astype(np.float32)


def stats(X: np.ndarray) -> dict[str, np.ndarray]:
    flat = X.reshape(len(X), -1).astype(np.float64)
    return {"mean": flat.mean(axis=0), "std": flat.std(axis=0)}


def test_the_pixel_statistics_are_those_of_all_training_pixels_together() -> None:
    X = images(50)
    mu, s = ip.pixel_stats(stats(X))
    assert mu == pytest.approx(float(X.astype(np.float64).mean()), rel=1e-9)
    assert s == pytest.approx(float(X.astype(np.float64).std()), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_level_zero_is_the_clean_image_and_inputs_are_not_modified(name: str) -> None:
    X = images()
    before = X.copy()
    out = FAMILIES[name].apply(X, 0.0, np.random.default_rng(0), stats(X))
    np.testing.assert_allclose(out, X, atol=1e-6)
    np.testing.assert_array_equal(X, before)
    assert FAMILIES[name].modality == "image" and out.shape == X.shape


def test_each_family_perturbs_as_documented() -> None:
    X = images()
    st = stats(X)
    mu, s = ip.pixel_stats(st)
    rng = np.random.default_rng(1)
    noisy = FAMILIES["gaussian_noise"].apply(X, 2.0, rng, st) - X
    assert noisy.std() == pytest.approx(2.0 * s, rel=0.05)
    bright = FAMILIES["brightness"].apply(X, 0.5, rng, st)
    np.testing.assert_allclose(bright - X, 0.5 * s, rtol=1e-5)
    flat = FAMILIES["contrast"].apply(X, 1.0, rng, st)
    np.testing.assert_allclose(
        flat, np.broadcast_to(X.mean(axis=(2, 3), keepdims=True), X.shape), rtol=1e-5
    )
    blurred = FAMILIES["blur"].apply(X, 1.5, rng, st)
    assert blurred.std() < X.std()  # smoother
    np.testing.assert_allclose(blurred.mean(axis=(2, 3)), X.mean(axis=(2, 3)), atol=0.1)
    occluded = FAMILIES["occlusion"].apply(X, 0.25, rng, st)
    changed = (occluded != X).any(axis=1)  # per pixel, over channels
    side_h, side_w = round(0.5 * 10), round(0.5 * 12)
    assert (changed.sum(axis=(1, 2)) == side_h * side_w).all()
    assert np.allclose(occluded[:, :, :, :][np.repeat(changed[:, None], 2, axis=1)], mu)


def test_the_engine_runs_image_families_reproducibly_and_checks_levels() -> None:
    X = images(20)
    st = stats(X)
    levels = check_request(list(NAMES), {"blur": [0.5, 2.0]}, "image")
    assert levels["blur"] == [0.5, 2.0] and levels["occlusion"] == [0.05, 0.1, 0.25, 0.5]

    def run() -> dict:
        return evaluate(
            X,
            lambda A: A.reshape(len(A), -1).mean(axis=1),
            lambda p: float(p.std()),
            list(NAMES),
            levels,
            st,
            seed=3,
        )

    assert run() == run()
    with pytest.raises(InvalidInput) as err:
        check_request(["occlusion"], {"occlusion": [1.5]}, "image")
    assert err.value.field == "levels.occlusion"
    with pytest.raises(InvalidInput) as err:
        check_request(["blur"], {}, "tabular")
    assert err.value.field == "families"
