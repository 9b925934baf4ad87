"""Per-group evaluation: each group equals the engine (and sklearn) on that slice alone."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm

from app.core.batch import Batch, make_batch
from app.core.registry import REGISTRY
from app.core.report import ReportOptions, evaluate
from app.core.slices import MAX_GROUPS, encode_groups, evaluate_groups
from app.errors import InvalidInput


def sk(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def binary(n: int = 300, seed: int = 0, weighted: bool = False) -> tuple[Batch, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    w = rng.exponential(size=n) if weighted else None
    groups = rng.choice(np.array(["north", "south", "east", "west"]), n)
    return make_batch("binary", y, p, sample_weight=w), groups


def slice_batch(batch: Batch, mask: np.ndarray) -> Batch:
    w = None if batch.sample_weight is None else batch.sample_weight[mask]
    return Batch(batch.task, batch.y[mask], batch.score[mask], batch.score_type, batch.classes, w)


@pytest.mark.parametrize("weighted", [False, True])
def test_each_group_equals_the_engine_on_its_slice(weighted: bool) -> None:
    batch, groups = binary(weighted=weighted)
    out = evaluate_groups(batch, {"region": groups}, None, n_bins=10)
    column = out["region"]
    assert [g["value"] for g in column["values"]] == ["east", "north", "south", "west"]
    for g in column["values"]:
        mask = groups == g["value"]
        alone = evaluate(slice_batch(batch, mask), ReportOptions(n_bins=10, losses=[]))
        assert g["n"] == int(mask.sum())
        expected_w = mask.sum() if batch.sample_weight is None else batch.sample_weight[mask].sum()
        assert g["weight"] == pytest.approx(expected_w)
        assert g["metrics"] == alone["metrics"]
        assert g["ece"] == alone["calibration"]["ece"]
        np.testing.assert_array_equal(g["confusion_matrix"], alone["confusion_matrix"]["counts"])
        assert g["warnings"] == []


def test_each_group_matches_sklearn_on_its_slice() -> None:
    rng = np.random.default_rng(1)
    n, k = 400, 3
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    groups = rng.integers(0, 5, n)
    batch = make_batch("multiclass", y, proba)
    metrics = [("accuracy", {}), ("f1_macro", {}), ("log_loss", {}), ("roc_auc_ovr", {})]
    out = evaluate_groups(batch, {"device": groups}, metrics)["device"]
    assert [g["value"] for g in out["values"]] == [0, 1, 2, 3, 4]
    for g in out["values"]:
        m = groups == g["value"]
        yt, pt = y[m], proba[m]
        got = g["metrics"]
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, pt.argmax(1)))
        assert got["f1_macro"] == pytest.approx(
            sk(skm.f1_score, yt, pt.argmax(1), average="macro", labels=range(k))
        )
        assert got["log_loss"] == pytest.approx(skm.log_loss(yt, pt, labels=range(k)))
        assert got["roc_auc_ovr"] == pytest.approx(
            skm.roc_auc_score(yt, pt, multi_class="ovr", labels=range(k))
        )
        np.testing.assert_array_equal(
            g["confusion_matrix"], skm.confusion_matrix(yt, pt.argmax(1), labels=range(k))
        )


def test_regression_groups_have_no_confusion_nor_ece() -> None:
    rng = np.random.default_rng(2)
    t = rng.normal(size=100)
    batch = make_batch("regression", t, t + rng.normal(size=100))
    groups = np.where(np.arange(100) < 30, "a", "b")
    out = evaluate_groups(batch, {"g": groups}, [("r2", {}), ("mean_absolute_error", {})])["g"]
    for g in out["values"]:
        m = groups == g["value"]
        assert g["ece"] is None and g["confusion_matrix"] is None
        assert g["metrics"]["r2"] == pytest.approx(skm.r2_score(t[m], batch.score[m]))


def test_weighted_mean_by_hand() -> None:
    batch, groups = binary(seed=3, weighted=True)
    out = evaluate_groups(batch, {"region": groups}, [("accuracy", {}), ("roc_auc", {})])
    col = out["region"]
    for key in ("accuracy", "roc_auc"):
        num = sum(g["weight"] * g["metrics"][key] for g in col["values"])
        den = sum(g["weight"] for g in col["values"])
        assert col["weighted_mean"][key] == pytest.approx(num / den)


def test_worst_group_in_both_directions() -> None:
    # Group "bad" predicts everything wrong; "good" everything right.
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.2, 0.8, 0.9, 0.1, 0.8, 0.2])
    groups = ["good"] * 4 + ["bad"] * 4
    batch = make_batch("binary", y, p)
    out = evaluate_groups(batch, {"g": groups}, [("accuracy", {}), ("log_loss", {})])["g"]
    assert REGISTRY["accuracy"].greater_is_better and not REGISTRY["log_loss"].greater_is_better
    assert out["worst"]["accuracy"] == {"value": "bad", "metric_value": 0.0}
    assert out["worst"]["log_loss"]["value"] == "bad"  # highest loss
    assert out["worst"]["log_loss"]["metric_value"] == pytest.approx(
        skm.log_loss(y[4:], p[4:], labels=[0, 1])
    )


def test_worst_group_ties_go_to_the_first_value() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.2, 0.8])
    out = evaluate_groups(make_batch("binary", y, p), {"g": [2, 2, 1, 1]}, [("accuracy", {})])
    assert out["g"]["worst"]["accuracy"] == {"value": 1, "metric_value": 1.0}


def test_undefined_metric_in_a_group_is_none_with_a_warning() -> None:
    y = np.array([0, 0, 0, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.3, 0.8, 0.3, 0.7])
    groups = ["only-negatives"] * 3 + ["mixed"] * 3
    out = evaluate_groups(make_batch("binary", y, p), {"g": groups}, [("roc_auc", {})])["g"]
    by_value = {g["value"]: g for g in out["values"]}
    neg = by_value["only-negatives"]
    assert neg["metrics"]["roc_auc"] is None
    assert neg["warnings"][0]["metric"] == "roc_auc"
    assert "no positive samples" in neg["warnings"][0]["message"]
    assert by_value["mixed"]["metrics"]["roc_auc"] == 1.0
    # Summaries skip the undefined group.
    assert out["weighted_mean"]["roc_auc"] == 1.0
    assert out["worst"]["roc_auc"] == {"value": "mixed", "metric_value": 1.0}
    # No group defines it: None.
    one = evaluate_groups(make_batch("binary", y[:3], p[:3]), {"g": groups[:3]}, [("roc_auc", {})])[
        "g"
    ]
    assert one["weighted_mean"]["roc_auc"] is None and one["worst"]["roc_auc"] is None


def test_a_group_of_zero_weight_is_reported_not_evaluated() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.9, 0.7, 0.8])
    batch = make_batch("binary", y, p, sample_weight=[1, 1, 0, 0])
    out = evaluate_groups(batch, {"g": ["a", "a", "b", "b"]}, [("accuracy", {})])["g"]
    b = out["values"][1]
    assert b["weight"] == 0 and b["n"] == 2
    assert b["metrics"] == {"accuracy": None} and b["confusion_matrix"] is None
    assert "zero weight" in b["warnings"][0]["message"]
    assert out["weighted_mean"]["accuracy"] == 1.0


def test_several_columns_and_many_groups() -> None:
    rng = np.random.default_rng(4)
    n = 5000
    batch = make_batch("binary", rng.integers(0, 2, n), rng.random(n))
    ids = rng.integers(0, 800, n)
    out = evaluate_groups(
        batch, {"shard": ids, "flag": rng.random(n) < 0.5}, [("accuracy", {})], n_bins=5
    )
    assert len(out["shard"]["values"]) == len(np.unique(ids))
    assert sum(g["n"] for g in out["shard"]["values"]) == n
    assert [g["value"] for g in out["flag"]["values"]] == [False, True]
    g = out["shard"]["values"][17]
    m = ids == g["value"]
    assert g["metrics"]["accuracy"] == pytest.approx(
        skm.accuracy_score(batch.y[m], batch.score[m] >= 0.5)
    )


def test_group_column_length_mismatch_names_the_column() -> None:
    batch, groups = binary()
    with pytest.raises(InvalidInput) as exc:
        evaluate_groups(batch, {"region": groups[:-1]})
    assert exc.value.field == "groups.region"


def test_too_many_groups_is_refused() -> None:
    n = MAX_GROUPS + 1
    batch = make_batch("regression", np.arange(n, dtype=float), np.arange(n, dtype=float))
    with pytest.raises(InvalidInput) as exc:
        evaluate_groups(batch, {"user_id": np.arange(n)})
    assert exc.value.field == "groups.user_id"
    assert f"{n} distinct values" in exc.value.detail
    assert evaluate_groups(batch, {"user_id": np.arange(n)}, max_groups=n)["user_id"]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1, "a", 2], "all strings or all numbers"),
        ([1.0, float("nan"), 2.0], "finite"),
        ([[1], [2], [3]], "1-D"),
        ([None, "a", "b"], "all strings or all numbers"),
    ],
)
def test_bad_group_values_are_refused(labels: list[Any], message: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        encode_groups(labels, 3, field="g")
    assert message in exc.value.detail


def test_encode_groups_mixed_python_and_numpy_numbers() -> None:
    values, codes = encode_groups([2, 1.5, np.int64(2)], 3, field="g")
    assert values == [1.5, 2.0]
    assert codes.tolist() == [1, 0, 1]
    values, codes = encode_groups([np.int64(3), 1, True], 3, field="g")
    assert values == [1, 3] and codes.tolist() == [1, 0, 0]
