"""Data checks: KS and chi-square equal scipy.stats; PSI, duplicates and leakage suspects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

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


def _leaky_text(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A text column whose category names encode the label, each category on many rows."""
    return np.array([f"{'churn' if v else 'stay'}-{rng.integers(0, 4)}" for v in y], dtype=object)


def test_a_text_column_whose_categories_encode_the_label_is_a_leakage_suspect() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=300)
    color = rng.choice(np.array(["red", "green", "blue"], dtype=object), size=300)
    out = dc.compare(
        ["leak", "color", "x"],
        [_leaky_text(y, rng), color, rng.normal(size=300)],
        [_leaky_text(y[:50], rng), color[:50], rng.normal(size=50)],
        categorical=[True, True, False],
        y_train=y,
        y_val=y[:50],
        task="binary",
    )
    assert out["leakage_suspects"] == [
        {
            "feature": "leak",
            "class": "1",
            "roc_auc": 1.0,
            "separation": 1.0,
            "scored_by": "out_of_fold_target_encoding",
        }
    ]


def test_a_multiclass_label_encoded_in_a_category_is_found_one_vs_rest() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, size=300)
    text = np.array([f"tier{v}-{rng.integers(0, 3)}" for v in y], dtype=object)
    noise = rng.choice(np.array(["a", "b", "c"], dtype=object), size=300)
    suspects = dc.leakage_suspects(
        {"text": text, "noise": noise}, y, "multiclass", categorical={"text", "noise"}
    )
    assert [(s["feature"], s["roc_auc"]) for s in suspects] == [("text", 1.0)]


def test_a_unique_id_column_is_not_a_leakage_suspect_though_in_sample_encoding_separates() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, size=400)
    ids = np.array([f"user-{i:05d}" for i in range(400)], dtype=object)
    # In-sample, each ID's positive rate is its own label: ROC-AUC 1 on the training side.
    assert roc_auc_score(y, y.astype(float)) == 1.0
    assert dc.leakage_suspects({"id": ids}, y, "binary", categorical={"id"}) == []
    out = dc.compare(
        ["id"], [ids], [ids[:20]], categorical=[True], y_train=y, y_val=y[:20], task="binary"
    )
    assert out["leakage_suspects"] == []
    # Few rows: out of fold, an ID scores the other folds' rate, lower where its own fold has
    # more positives (AUC near 0); only AUC >= 0.99 counts for an encoding, never 1 - AUC.
    few = dc.leakage_suspects({"id": ids[:10]}, y[:10], "binary", threshold=0.0, categorical={"id"})
    assert few[0]["roc_auc"] < 0.5 and few[0]["separation"] == few[0]["roc_auc"]
    assert dc.leakage_suspects({"id": ids[:10]}, y[:10], "binary", categorical={"id"}) == []


def test_categorical_auc_equals_sklearn_on_the_out_of_fold_encoding() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=500)
    cats = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    # Partly informative, with rare categories and missing values.
    informative, random = cats[y * 3 + rng.integers(0, 3, size=500)], rng.choice(cats, size=500)
    x = np.where(rng.random(500) < 0.6, informative, random)
    x[rng.random(500) < 0.05] = None
    x[:7] = [f"rare{i}" for i in range(7)]
    scores = dc.target_encoding(x, y == 1)
    present = ~np.isnan(scores)
    assert present.sum() == sum(v is not None for v in x)
    ref = roc_auc_score(y[present] == 1, scores[present])
    assert 0.6 < ref < 0.99
    (suspect,) = dc.leakage_suspects({"x": x}, y, "binary", threshold=0.0, categorical={"x"})
    assert abs(suspect["roc_auc"] - ref) <= 1e-12 and suspect["separation"] == suspect["roc_auc"]


def test_target_encoding_leaves_each_rows_own_label_out_and_is_deterministic() -> None:
    rng = np.random.default_rng(8)
    x = rng.choice(np.array(["p", "q", "r"], dtype=object), size=60)
    y = rng.integers(0, 2, size=60) == 1
    base = dc.target_encoding(x, y)
    np.testing.assert_array_equal(base, dc.target_encoding(x, y))
    for i in (0, 17, 59):
        flipped = y.copy()
        flipped[i] = not flipped[i]
        assert dc.target_encoding(x, flipped)[i] == base[i]


def test_duplicates_compare_categories_too_and_missing_equals_missing() -> None:
    num_t, num_v = np.array([1.0, 2.0, np.nan, 4.0]), np.array([1.0, 2.0, np.nan, 4.0, 1.0])
    cat_t = np.array(["x", "y", None, "z"], dtype=object)
    cat_v = np.array(["x", "other", None, "None", "x"], dtype=object)
    out = dc.compare(
        ["n", "c"],
        [num_t, cat_t],
        [num_v, cat_v],
        categorical=[False, True],
        y_train=np.array([0, 1, 0, 1]),
        y_val=np.array([0, 1, 1, 1, 1]),
        task="binary",
    )
    # Row 1 equals training row 1 in numbers only; row 3's label "None" is not a missing value.
    assert out["duplicates"] == {
        "n_val_rows_in_train": 3,
        "share_of_val": 3 / 5,
        "val_indices": [0, 2, 4],
        "with_same_label": 1,
    }


def test_all_categorical_columns_still_give_the_duplicates_entry() -> None:
    a = np.array(["red", "red", "blue", "green"], dtype=object)
    b = np.array(["s", "m", "m", "l"], dtype=object)
    va = np.array(["red", "blue", "blue", "green", "red"], dtype=object)
    vb = np.array(["m", "l", "s", "l", "s"], dtype=object)  # rows 1 and 2: new combinations
    out = dc.compare(
        ["color", "size"],
        [a, b],
        [va, vb],
        categorical=[True, True],
        y_train=np.array([1, 0, 1, 0]),
        y_val=np.array([0, 0, 1, 1, 1]),
        task="binary",
    )
    assert out["duplicates"] == {
        "n_val_rows_in_train": 3,
        "share_of_val": 3 / 5,
        "val_indices": [0, 3, 4],
        "with_same_label": 2,
    }


def test_numeric_only_compare_keeps_its_duplicates_and_suspects() -> None:
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, size=200)
    cols_t = [rng.normal(size=200), y + 0.01 * rng.normal(size=200)]
    cols_v = [c[:30].copy() for c in cols_t]
    out = dc.compare(["a", "b"], cols_t, cols_v, y_train=y, y_val=y[:30], task="binary")
    Xt, Xv = np.column_stack(cols_t), np.column_stack(cols_v)
    assert out["duplicates"] == dc.duplicated_rows(Xt, Xv, y, y[:30])
    assert out["leakage_suspects"] == dc.leakage_suspects(
        {"a": cols_t[0], "b": cols_t[1]}, y, "binary"
    )
    assert list(out) == ["features", "drifted", "duplicates", "classes", "leakage_suspects"]
    assert "scored_by" not in out["leakage_suspects"][0]
