"""/v1/evaluations inspection: group slices, confusion analysis, error analysis, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.special import softmax
from sklearn import metrics as skm

from tests.api.test_evaluations import ARROW, arrow_body


def batch(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    region = np.where(rng.random(n) < 0.4, "eu", "us")
    # The model is worse in the EU.
    signal = np.where(region == "eu", 0.1, 0.5)
    p = np.clip(signal * y + (1 - signal) * rng.random(n), 0, 1)
    return y, p, region


def test_group_slices_equal_sklearn_per_group_and_name_the_worst(client: TestClient) -> None:
    y, p, region = batch()
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "binary",
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "metrics": ["roc_auc", "f1", "log_loss"],
            "groups": {"region": region.tolist()},
        },
    )
    assert res.status_code == 200, res.text
    g = res.json()["groups"]["region"]
    values = {v["value"]: v for v in g["values"]}
    for name in ("eu", "us"):
        m = region == name
        assert values[name]["n"] == int(m.sum())
        assert values[name]["metrics"]["roc_auc"] == pytest.approx(
            skm.roc_auc_score(y[m], p[m]), rel=1e-12
        )
    assert g["worst"]["roc_auc"]["value"] == "eu"
    assert g["worst"]["log_loss"]["value"] == "eu"
    n_eu, n_us = (region == "eu").sum(), (region == "us").sum()
    expected = (n_eu * values["eu"]["metrics"]["f1"] + n_us * values["us"]["metrics"]["f1"]) / (
        n_eu + n_us
    )
    assert g["weighted_mean"]["f1"] == pytest.approx(expected, rel=1e-12)


def test_multiclass_reports_carry_confusion_analysis(client: TestClient) -> None:
    y = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 1, 1, 1, 1, 0, 2, 2, 1]
    p = np.eye(3)[pred] * 0.7 + 0.1
    res = client.post(
        "/v1/evaluations", json={"task": "multiclass", "y_true": y, "y_score": p.tolist()}
    ).json()
    ca = res["confusion_analysis"]
    assert ca["hard_classes"][0]["label"] == 0  # recall 1/3
    assert ca["confused_pairs"][0] == {
        "true": 0,
        "predicted": 1,
        "count": 2,
        "fraction": pytest.approx(2 / 3),
    }
    assert ca["attracting_classes"][0]["label"] == 1  # precision 2/5


def test_most_confident_errors_come_with_their_ids(client: TestClient) -> None:
    y = [1, 0, 1, 0, 1]
    p = [0.05, 0.97, 0.9, 0.6, 0.3]
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "binary",
            "y_true": y,
            "y_score": p,
            "ids": ["a", "b", "c", "d", "e"],
            "top_errors": 3,
        },
    ).json()
    errors = res["most_confident_errors"]
    assert [e["id"] for e in errors] == ["b", "a", "e"]
    assert errors[0]["confidence"] == pytest.approx(0.97)
    assert errors[1]["confidence"] == pytest.approx(0.95)


def test_bootstrap_intervals_are_reproducible_and_contain_the_point(client: TestClient) -> None:
    y, p, _ = batch(400, seed=1)
    payload = {
        "task": "binary",
        "y_true": y.tolist(),
        "y_score": p.tolist(),
        "metrics": ["roc_auc", "f1", "accuracy"],
        "bootstrap": {"n": 200, "seed": 7},
    }
    first = client.post("/v1/evaluations", json=payload).json()
    again = client.post("/v1/evaluations", json=payload).json()
    assert first["intervals"] == again["intervals"]
    for name, iv in first["intervals"]["metrics"].items():
        assert iv["low"] <= first["metrics"][name] <= iv["high"], name
        assert iv["n_valid"] == 200
    other = client.post(
        "/v1/evaluations", json={**payload, "bootstrap": {"n": 200, "seed": 8}}
    ).json()
    assert other["intervals"] != first["intervals"]


def test_arrow_bodies_carry_ids_and_group_columns(client: TestClient) -> None:
    rng = np.random.default_rng(2)
    n, k = 300, 3
    y = rng.integers(0, k, n)
    p = softmax(rng.normal(size=(n, k)) + np.eye(k)[y], axis=1)
    cols = {"y_true": y, "id": np.arange(n) + 1000, "group_device": rng.choice(["ios", "web"], n)}
    cols.update({f"y_score_{j}": p[:, j] for j in range(k)})
    res = client.post(
        "/v1/evaluations?task=multiclass&metrics=accuracy&top_errors=2",
        content=arrow_body(cols),
        headers={"content-type": ARROW},
    )
    assert res.status_code == 200, res.text
    body = res.json()
    assert {v["value"] for v in body["groups"]["device"]["values"]} == {"ios", "web"}
    assert all(e["id"] >= 1000 for e in body["most_confident_errors"])


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"groups": {"region": ["eu"]}}, "groups.region"),
        ({"ids": [1, 2], "top_errors": 1}, "ids"),
        ({"bootstrap": {"n": 5}}, "bootstrap.n"),
        ({"bootstrap": {"confidence": 1.5}}, "bootstrap.confidence"),
        ({"bootstrap": {"metrics": ["auroc"]}}, "metrics"),
        ({"top_errors": 0}, "top_errors"),
    ],
)
def test_bad_inspection_options_get_a_422(client: TestClient, extra: dict, field: str) -> None:
    res = client.post(
        "/v1/evaluations",
        json={"task": "binary", "y_true": [0, 1, 1, 0], "y_score": [0.1, 0.8, 0.6, 0.3], **extra},
    )
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field
