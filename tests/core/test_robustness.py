"""Robustness families: checked levels, seeded reproducible perturbations, breaking points."""

from __future__ import annotations

import numpy as np
import pytest

from app.core import robustness as rb
from app.errors import InvalidInput

STATS = {"mean": np.array([0.0, 10.0]), "std": np.array([1.0, 5.0])}


def _setup() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) * STATS["std"] + STATS["mean"]
    return X, (X[:, 0] > 0).astype(int)


def _evaluate(seed: int) -> dict:
    X, y = _setup()
    return rb.evaluate(
        X,
        lambda A: A[:, 0],
        lambda out: float(np.mean((out > 0) == y)),
        ["gaussian_jitter", "missingness", "feature_dropout"],
        {"gaussian_jitter": [0.1, 1.0, 3.0], "missingness": [0.2, 0.8], "feature_dropout": [0.5]},
        STATS,
        seed=seed,
    )


def test_the_same_request_gives_the_same_numbers_and_another_seed_others() -> None:
    first, again, other = _evaluate(0), _evaluate(0), _evaluate(1)
    assert first == again
    assert first["families"]["gaussian_jitter"] != other["families"]["gaussian_jitter"]
    assert first["clean"] == 1.0
    jitter = first["families"]["gaussian_jitter"]["values"]
    assert jitter[0] > jitter[1] > jitter[2]  # more noise, lower accuracy


def test_jitter_is_in_units_of_the_training_std_and_missingness_imputes_means() -> None:
    X = np.full((20_000, 2), -1.0)  # no value equals a training mean
    rng = np.random.default_rng(0)
    J = rb.FAMILIES["gaussian_jitter"].apply(X, 2.0, rng, STATS)
    np.testing.assert_allclose(J.std(axis=0), 2.0 * STATS["std"], rtol=0.03)
    M = rb.FAMILIES["missingness"].apply(X, 0.3, rng, STATS)
    assert np.mean(M[:, 1] == 10.0) == pytest.approx(0.3, abs=0.02)
    D = rb.FAMILIES["feature_dropout"].apply(X, 0.5, rng, STATS)
    assert ((D != X).sum(axis=1) == 1).all()  # exactly round(0.5 * 2) = 1 feature per row


@pytest.mark.parametrize(
    ("families", "levels", "field"),
    [
        (["gaussian_jitter"], {"gaussian_jitter": [-0.1]}, "levels.gaussian_jitter"),
        (["missingness"], {"missingness": [1.5]}, "levels.missingness"),
        (["feature_dropout"], {"feature_dropout": [float("nan")]}, "levels.feature_dropout"),
        (["blur"], {}, "families"),
        (["missingness"], {"gaussian_jitter": [0.1]}, "levels"),
    ],
)
def test_out_of_range_levels_and_unknown_families_are_invalid(
    families: list[str], levels: dict, field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        rb.check_request(families, levels, "tabular")
    assert err.value.field == field


def test_default_levels_fill_in_and_image_families_register_without_touching_the_core() -> None:
    assert rb.check_request(["missingness"], {}, "tabular") == {
        "missingness": [0.05, 0.1, 0.2, 0.4, 0.6]
    }
    fam = rb.Family("test_brightness", "image", 0.0, 1.0, lambda X, lv, rng, s: X + lv, "x + l")
    rb.register_family(fam)
    try:
        with pytest.raises(InvalidInput, match="for image inputs"):
            rb.check_request(["test_brightness"], {"test_brightness": [0.1]}, "tabular")
        assert rb.check_request(["test_brightness"], {"test_brightness": [0.5]}, "image")
    finally:
        del rb.FAMILIES["test_brightness"]


def test_breaking_point_is_the_first_level_past_the_floor_or_the_relative_drop() -> None:
    levels, values = [1.0, 0.1, 0.5], [0.5, 0.9, 0.8]  # unsorted on purpose
    assert rb.breaking_point(levels, values, 0.95, greater_is_better=True, floor=0.85) == {
        "level": 0.5,
        "value": 0.8,
        "reason": "floor",
    }
    loss = rb.breaking_point(
        [0.1, 0.2], [0.3, 0.6], 0.25, greater_is_better=False, max_relative_drop=1.0
    )
    assert loss == {"level": 0.2, "value": 0.6, "reason": "relative_drop"}
    assert rb.breaking_point([0.1], [0.9], 0.95, greater_is_better=True, floor=0.5) is None
