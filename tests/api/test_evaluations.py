"""POST /v1/evaluations end to end: the numbers equal scikit-learn's, for every task."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from scipy.special import softmax
from sklearn import metrics as skm

ARROW = "application/vnd.apache.arrow.stream"


def arrow_body(columns: dict[str, Any]) -> bytes:
    table = pa.table(columns)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def binary_batch(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Rounded scores: heavy ties, as real models produce.
    p = np.round(np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1), 2)
    w = rng.integers(0, 4, n).astype(float)
    return y, p, w


def test_binary_report_equals_sklearn_with_weights_and_string_labels(client: TestClient) -> None:
    y, p, w = binary_batch()
    labels = np.where(y == 1, "spam", "ham")
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "binary",
            "y_true": labels.tolist(),
            "y_score": p.tolist(),
            "sample_weight": w.tolist(),
            "pos_label": "spam",
        },
    )
    assert res.status_code == 200, res.text
    body = res.json()
    m = body["metrics"]
    pred = (p >= 0.5).astype(int)
    ref = {
        "roc_auc": skm.roc_auc_score(y, p, sample_weight=w),
        "average_precision": skm.average_precision_score(y, p, sample_weight=w),
        "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred, sample_weight=w),
        "precision": skm.precision_score(y, pred, sample_weight=w),
        "recall": skm.recall_score(y, pred, sample_weight=w),
        "f1": skm.f1_score(y, pred, sample_weight=w),
        "f1_macro": skm.f1_score(y, pred, sample_weight=w, average="macro"),
        "specificity": skm.recall_score(y, pred, sample_weight=w, pos_label=0),
        "npv": skm.precision_score(y, pred, sample_weight=w, pos_label=0),
        "jaccard": skm.jaccard_score(y, pred, sample_weight=w),
        "matthews_corrcoef": skm.matthews_corrcoef(y, pred, sample_weight=w),
        "cohen_kappa": skm.cohen_kappa_score(y, pred, sample_weight=w),
        "log_loss": skm.log_loss(y, p, sample_weight=w),
        "brier": skm.brier_score_loss(y, p, sample_weight=w),
        "hamming_loss": skm.hamming_loss(y, pred, sample_weight=w),
    }
    for name, value in ref.items():
        assert m[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    cm = skm.confusion_matrix(y, pred, sample_weight=w)
    assert np.array_equal(np.asarray(body["confusion_matrix"]["counts"]), cm)
    assert body["confusion_matrix"]["labels"] == ["ham", "spam"]
    assert body["losses"]["binary_cross_entropy"] == pytest.approx(m["log_loss"], rel=1e-9)
    assert body["warnings"] == []


def test_multiclass_logits_report_equals_sklearn_on_softmax(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    n, k = 300, 4
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    names = np.array(["cat", "dog", "eel", "fox"])
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "multiclass",
            "y_true": names[y].tolist(),
            "y_score": z.tolist(),
            "score_type": "logit",
            "labels": names.tolist(),
            "metrics": [
                "accuracy",
                "f1_macro",
                "f1_weighted",
                "roc_auc_ovr",
                "roc_auc_ovo",
                "log_loss",
                {"name": "top_k_accuracy", "k": 2},
                "cohen_kappa",
            ],
        },
    )
    assert res.status_code == 200, res.text
    m = res.json()["metrics"]
    p = softmax(z, axis=1)
    pred = z.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"), rel=1e-9)
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"), rel=1e-9)
    assert m["roc_auc_ovr"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"), rel=1e-9)
    assert m["roc_auc_ovo"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovo"), rel=1e-9)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)
    assert m["top_k_accuracy[k=2]"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=2))
    assert m["cohen_kappa"] == pytest.approx(skm.cohen_kappa_score(y, pred), rel=1e-9)
    assert set(m) == {
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "roc_auc_ovr",
        "roc_auc_ovo",
        "log_loss",
        "top_k_accuracy[k=2]",
        "cohen_kappa",
    }


def test_multilabel_report_equals_sklearn(client: TestClient) -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, (200, 3))
    p = np.clip(0.4 * y + 0.6 * rng.random((200, 3)), 0, 1)
    res = client.post(
        "/v1/evaluations",
        json={"task": "multilabel", "y_true": y.tolist(), "y_score": p.tolist()},
    )
    assert res.status_code == 200, res.text
    m = res.json()["metrics"]
    pred = (p >= 0.5).astype(int)
    assert m["f1_samples"] == pytest.approx(
        skm.f1_score(y, pred, average="samples", zero_division=np.nan), rel=1e-9
    )
    assert m["f1_micro"] == pytest.approx(skm.f1_score(y, pred, average="micro"), rel=1e-9)
    assert m["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(y, p), rel=1e-9)
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, pred), rel=1e-9)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), rel=1e-12)


def test_regression_report_equals_sklearn(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=250)
    pred = y + rng.normal(scale=0.3, size=250)
    w = rng.random(250)
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "regression",
            "y_true": y.tolist(),
            "y_pred": pred.tolist(),
            "sample_weight": w.tolist(),
        },
    )
    assert res.status_code == 200, res.text
    body = res.json()
    m = body["metrics"]
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred, sample_weight=w), rel=1e-9)
    assert m["root_mean_squared_error"] == pytest.approx(
        skm.root_mean_squared_error(y, pred, sample_weight=w), rel=1e-9
    )
    assert m["median_absolute_error"] == pytest.approx(
        skm.median_absolute_error(y, pred, sample_weight=w), rel=1e-9
    )
    assert body["losses"]["mse"] == pytest.approx(m["mean_squared_error"], rel=1e-12)
    assert "confusion_matrix" not in body


def test_curves_are_capped_and_keep_the_exact_area(client: TestClient) -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 5000)
    p = np.clip(0.2 * y + 0.8 * rng.random(5000), 0, 1)
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "binary",
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "curves": True,
            "max_curve_points": 50,
        },
    )
    assert res.status_code == 200, res.text
    curves = res.json()["curves"]
    roc, pr = curves["roc"]["1"], curves["pr"]["1"]
    assert 2 <= len(roc["fpr"]) <= 50 and len(roc["fpr"]) == len(roc["tpr"])
    assert len(pr["precision"]) <= 50
    assert roc["auc"] == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)
    assert pr["average_precision"] == pytest.approx(skm.average_precision_score(y, p), rel=1e-12)
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0
    rel = curves["reliability"]
    assert sum(rel["count"]) == 5000
    assert len(rel["edges"]) == len(rel["count"]) + 1


def test_undefined_metrics_are_null_with_a_warning(client: TestClient) -> None:
    res = client.post(
        "/v1/evaluations",
        json={"task": "binary", "y_true": [1, 1, 1], "y_score": [0.2, 0.7, 0.9]},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["metrics"]["roc_auc"] is None
    reasons = {w["metric"]: w["message"] for w in body["warnings"]}
    assert "roc_auc" in reasons and "negative" in reasons["roc_auc"].lower()
    assert body["metrics"]["recall"] == pytest.approx(2 / 3)


def test_arrow_body_gives_the_same_report_as_json(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    n, k = 500, 3
    y = rng.integers(0, k, n)
    p = softmax(rng.normal(size=(n, k)), axis=1)
    w = rng.random(n)
    as_json = client.post(
        "/v1/evaluations",
        json={
            "task": "multiclass",
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "sample_weight": w.tolist(),
            "metrics": ["log_loss", "roc_auc_ovr", "f1_macro"],
        },
    ).json()
    cols: dict[str, Any] = {"y_true": y, "sample_weight": w}
    cols.update({f"y_score_{j}": p[:, j] for j in range(k)})
    as_arrow = client.post(
        "/v1/evaluations?task=multiclass&metrics=log_loss,roc_auc_ovr,f1_macro",
        content=arrow_body(cols),
        headers={"content-type": ARROW},
    )
    assert as_arrow.status_code == 200, as_arrow.text
    assert as_arrow.json()["metrics"] == as_json["metrics"]
    assert as_arrow.json()["confusion_matrix"] == as_json["confusion_matrix"]


def test_losses_and_penalty_in_a_report(client: TestClient) -> None:
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "regression",
            "y_true": [1.0, 2.0, 3.0],
            "y_pred": [1.5, 2.0, 2.0],
            "losses": ["mse", {"name": "huber", "delta": 0.5}],
            "penalty": {"weights": [1.0, -2.0], "l1": 0.1, "l2": 0.01},
        },
    )
    assert res.status_code == 200, res.text
    losses = res.json()["losses"]
    mse = (0.25 + 0 + 1) / 3
    omega = 0.1 * 3 + 0.01 * 5
    assert losses["mse"] == {
        "data_loss": pytest.approx(mse),
        "penalty": pytest.approx(omega),
        "total": pytest.approx(mse + omega),
    }
    assert losses["huber[delta=0.5]"]["data_loss"] == pytest.approx(
        (0.5 * 0.25 + 0 + 0.5 * (1 - 0.25)) / 3
    )
