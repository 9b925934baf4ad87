"""/v1/thresholds: recommendations equal an exhaustive search; constraints; groups; errors."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics as skm


def noisy(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.25 * y + 0.75 * rng.random(n), 0, 1), 2)
    return y, p


def exhaustive_best_f1(y: np.ndarray, p: np.ndarray) -> float:
    return max(skm.f1_score(y, (p >= t).astype(int), zero_division=0) for t in np.unique(p))


def test_max_f1_threshold_equals_the_exhaustive_search(client: TestClient) -> None:
    y, p = noisy()
    res = client.post("/v1/thresholds", json={"y_true": y.tolist(), "y_score": p.tolist()})
    assert res.status_code == 200, res.text
    rec = res.json()["recommendation"]
    t = rec["threshold"]
    pred = (p >= t).astype(int)
    assert rec["f1"] == pytest.approx(skm.f1_score(y, pred), rel=1e-12)
    assert rec["f1"] == pytest.approx(exhaustive_best_f1(y, p), rel=1e-12)
    assert (rec["tp"], rec["fp"]) == (int((pred & y).sum()), int((pred & (1 - y)).sum()))
    assert rec["feasible"] is True and len(rec["table"]) >= 2


def test_an_infeasible_precision_target_answers_with_the_closest_point(
    client: TestClient,
) -> None:
    y, p = noisy(seed=1)
    p[y == 0] = np.maximum(p[y == 0], p.max())  # the top score is always a negative
    res = client.post(
        "/v1/thresholds",
        json={
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "objective": "recall_at_precision",
            "min_precision": 1.0,
        },
    )
    assert res.status_code == 200, res.text
    rec = res.json()["recommendation"]
    assert rec["feasible"] is False and "precision" in rec["reason"]
    assert rec["precision"] is None or rec["precision"] < 1.0


def test_cost_objective_minimizes_the_average_cost(client: TestClient) -> None:
    y, p = noisy(seed=2)
    res = client.post(
        "/v1/thresholds",
        json={
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "objective": "cost",
            "cost_fp": 1.0,
            "cost_fn": 5.0,
        },
    )
    rec = res.json()["recommendation"]
    costs = [((p >= t) & (y == 0)).sum() + 5 * ((p < t) & (y == 1)).sum() for t in np.unique(p)]
    costs.append(5 * (y == 1).sum())  # predict none
    assert rec["value"] == pytest.approx(min(costs) / len(y), rel=1e-12)


def test_group_thresholds_equal_each_group_alone(client: TestClient) -> None:
    y, p = noisy(seed=3)
    groups = np.where(np.arange(len(y)) % 3 == 0, "eu", "us")
    res = client.post(
        "/v1/thresholds",
        json={"y_true": y.tolist(), "y_score": p.tolist(), "groups": groups.tolist()},
    ).json()
    for item in res["groups"]:
        mask = groups == item["group"]
        alone = client.post(
            "/v1/thresholds", json={"y_true": y[mask].tolist(), "y_score": p[mask].tolist()}
        ).json()["recommendation"]
        assert item["threshold"] == alone["threshold"] and item["f1"] == alone["f1"]
    assert [g["group"] for g in res["groups"]] == ["eu", "us"]


def test_multiclass_gets_one_threshold_per_class(client: TestClient) -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet(np.ones(3), 300) * 0.5 + 0.5 * np.eye(3)[y]
    res = client.post(
        "/v1/thresholds",
        json={
            "task": "multiclass",
            "y_true": ["abc"[i] for i in y],
            "y_score": p.tolist(),
            "labels": ["a", "b", "c"],
        },
    )
    assert res.status_code == 200, res.text
    per_class = res.json()["per_class"]
    assert [c["label"] for c in per_class] == ["a", "b", "c"]
    for k, item in enumerate(per_class):
        pred = (p[:, k] >= item["threshold"]).astype(int)
        assert item["f1"] == pytest.approx(skm.f1_score((y == k).astype(int), pred), rel=1e-12)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"objective": "cost", "cost_fp": -1.0, "cost_fn": 1.0}, "cost_fp"),
        ({"objective": "precision_at_recall", "min_recall": 0.0}, "min_recall"),
        ({"objective": "precision_at_recall", "min_recall": 1.5}, "min_recall"),
        ({"objective": "precision_at_recall"}, "min_recall"),
        ({"objective": "fbeta", "beta": -2.0}, "beta"),
        ({"objective": "f1", "beta": 2.0}, "beta"),
        ({"objective": "lift"}, "objective"),
        ({"groups": ["a", "b"]}, "groups"),
    ],
)
def test_bad_threshold_requests_get_a_422(client: TestClient, extra: dict, field: str) -> None:
    res = client.post(
        "/v1/thresholds",
        json={"y_true": [0, 1, 1, 0], "y_score": [0.1, 0.8, 0.6, 0.3], **extra},
    )
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field
