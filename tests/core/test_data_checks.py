"""Data checks: KS and chi-square equal scipy.stats; PSI, duplicates and leakage suspects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from app.core import data_checks as dc


@pytest.mark.parametrize(("n1", "n2"), [(30, 45), (200, 200), (500, 12_000)])
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_ks_statistic_and_p_value_equal_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    a = np.round(rng.normal(size=n1), 1)  # ties on both sides
    b = np.round(rng.normal(loc=shift, size=n2), 1)
    ref = stats.ks_2samp(a, b)
    ours = dc.ks_two_sample(a, b)
    assert ours["statistic"] == pytest.approx(ref.statistic, abs=1e-9)
    assert ours["p_value"] == pytest.approx(ref.pvalue, abs=1e-9)


def test_numeric_drift_leaves_missing_values_out_of_the_ks_test() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=300), rng.normal(0.5, size=200)
    a_missing = np.concatenate([a, [np.nan] * 20])
    out = dc.compare(["f"], [a_missing], [b])
    ref = stats.ks_2samp(a, b)
    drift = out["features"][0]["drift"]
    assert drift["test"] == "ks"
    assert drift["statistic"] == pytest.approx(ref.statistic, abs=1e-9)
    assert drift["p_value"] == pytest.approx(ref.pvalue, abs=1e-9)
    assert out["features"][0]["train"]["missing_rate"] == pytest.approx(20 / 320)
    assert out["drifted"] == ["f"]


@pytest.mark.parametrize("k", [2, 3, 6])
def test_chi_square_equals_scipy_chi2_contingency_without_correction(k: int) -> None:
    rng = np.random.default_rng(k)
    table = rng.integers(1, 60, size=(2, k)).astype(float)
    stat, p, dof, _ = stats.chi2_contingency(table, correction=False)
    ours = dc.chi_square(table)
    assert ours["statistic"] == pytest.approx(stat, abs=1e-9)
    assert ours["p_value"] == pytest.approx(p, abs=1e-9)
    assert ours["dof"] == dof


def test_categorical_drift_counts_categories_of_both_sides() -> None:
    a = np.array(["x"] * 50 + ["y"] * 30 + ["z"] * 20, dtype=object)
    b = np.array(["x"] * 20 + ["y"] * 30 + ["w"] * 10, dtype=object)
    out = dc.compare(["c"], [a], [b], categorical=[True])["features"][0]
    table = np.array([[0, 50, 30, 20], [10, 20, 30, 0]], dtype=float)  # w, x, y, z
    stat, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert out["drift"]["statistic"] == pytest.approx(stat, abs=1e-9)
    assert out["drift"]["p_value"] == pytest.approx(p, abs=1e-9)
    pa, pb = np.maximum(table[0] / 100, 1e-4), np.maximum(table[1] / 60, 1e-4)
    assert out["drift"]["psi"] == pytest.approx(np.sum((pb - pa) * np.log(pb / pa)), abs=1e-12)
    assert out["train"]["kind"] == "categorical" and out["train"]["top"]["x"] == 50


def test_summary_quantiles_and_std_match_numpy() -> None:
    x = np.random.default_rng(2).normal(size=101)
    s = dc.feature_summary(x)
    assert s["std"] == pytest.approx(np.std(x), abs=1e-12)
    assert s["quantiles"]["0.25"] == pytest.approx(np.quantile(x, 0.25), abs=1e-12)
    assert s["missing_rate"] == 0.0


def test_rows_duplicated_across_train_and_validation_are_found_with_their_labels() -> None:
    Xt = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, -0.0]])
    Xv = np.array([[3.0, 4.0], [5.0, 6.0], [-0.0, 0.0]])
    out = dc.duplicated_rows(Xt, Xv, np.array([0, 1, 0]), np.array([1, 0, 1]))
    assert out["n_val_rows_in_train"] == 2 and out["val_indices"] == [0, 2]
    assert out["with_same_label"] == 1


def test_a_feature_that_encodes_the_label_is_a_leakage_suspect_in_either_direction() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    honest = rng.normal(size=400) + 0.5 * y
    leak = -y + 0.01 * rng.normal(size=400)  # AUC 0: separates perfectly the other way
    suspects = dc.leakage_suspects({"honest": honest, "leak": leak}, y, "binary")
    assert [s["feature"] for s in suspects] == ["leak"]
    assert suspects[0]["roc_auc"] == pytest.approx(0.0) and suspects[0]["separation"] == 1.0


def test_class_frequencies_cover_classes_seen_on_either_side() -> None:
    out = dc.class_frequencies(np.array([0, 0, 2]), np.array([1, 2]))
    assert [(c["class"], c["train_count"], c["val_count"]) for c in out] == [
        ("0", 2, 0),
        ("1", 0, 1),
        ("2", 1, 1),
    ]


def test_image_features_are_each_channels_pixel_mean_and_std() -> None:
    rng = np.random.default_rng(1)
    images = rng.normal(size=(7, 3, 4, 5))
    names, cols = dc.image_features(images.reshape(7, -1), (3, 4, 5))
    assert names == [f"channel{c}_{s}" for c in range(3) for s in ("mean", "std")]
    for c in range(3):
        np.testing.assert_allclose(cols[2 * c], images[:, c].mean(axis=(1, 2)), rtol=1e-12)
        np.testing.assert_allclose(cols[2 * c + 1], images[:, c].std(axis=(1, 2)), rtol=1e-12)


def test_compare_images_counts_pixel_exact_duplicates_not_equal_summaries() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(50, 1 * 3 * 3))
    val = rng.normal(size=(20, 9))
    val[3] = train[10]
    val[4] = train[11][::-1]  # same mean and std as a training image, different pixels
    res = dc.compare_images(train, val, (1, 3, 3))
    assert res["duplicates"]["n_val_rows_in_train"] == 1
    assert res["duplicates"]["val_indices"] == [3]
    assert res["image_shape"] == [1, 3, 3]
