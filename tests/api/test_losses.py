"""POST /v1/losses: values equal torch.nn.functional; penalties; reductions; errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from tests.api.test_evaluations import arrow_body


def test_named_losses_equal_torch(client: TestClient) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 64)
    z = rng.normal(size=(64, 3))
    res = client.post(
        "/v1/losses",
        json={
            "y_true": y.tolist(),
            "y_pred": z.tolist(),
            "losses": [
                {"name": "cross_entropy", "from_logits": True, "label_smoothing": 0.1},
                {"name": "cross_entropy", "from_logits": True, "weight": [1.0, 2.0, 0.5]},
            ],
        },
    )
    assert res.status_code == 200, res.text
    got = [item["value"] for item in res.json()["losses"]]
    zt, yt = torch.tensor(z), torch.tensor(y)
    assert got[0] == pytest.approx(F.cross_entropy(zt, yt, label_smoothing=0.1).item(), rel=1e-9)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert got[1] == pytest.approx(F.cross_entropy(zt, yt, weight=w).item(), rel=1e-9)


def test_regression_losses_with_reductions_and_penalty(client: TestClient) -> None:
    y = [1.0, 2.0, 4.0]
    pred = [1.5, 2.0, 1.0]
    res = client.post(
        "/v1/losses",
        json={
            "y_true": y,
            "y_pred": pred,
            "losses": [
                "mse",
                {"name": "huber", "delta": 1.0, "reduction": "none"},
                {"name": "mae", "reduction": "sum"},
            ],
            "penalty": {"weights": [0.5, -1.5], "l2": 0.1},
        },
    )
    assert res.status_code == 200, res.text
    mse, huber, mae = res.json()["losses"]
    t, p = torch.tensor(y), torch.tensor(pred)
    assert mse["value"] == pytest.approx(F.mse_loss(p, t).item())
    assert mse["penalty"] == pytest.approx(0.1 * (0.25 + 2.25))
    assert mse["total"] == pytest.approx(mse["value"] + mse["penalty"])
    assert huber["value"] == pytest.approx(F.huber_loss(p, t, reduction="none").tolist())
    assert huber["total"] is None
    assert mae["value"] == pytest.approx(F.l1_loss(p, t, reduction="sum").item())


def test_string_targets_map_through_labels(client: TestClient) -> None:
    res = client.post(
        "/v1/losses",
        json={
            "y_true": ["b", "a"],
            "y_pred": [[0.2, 0.8], [0.6, 0.4]],
            "labels": ["a", "b"],
            "losses": ["cross_entropy"],
        },
    )
    assert res.status_code == 200, res.text
    assert res.json()["losses"][0]["value"] == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_losses_accept_arrow_bodies(client: TestClient) -> None:
    body = arrow_body({"y_true": [1.0, 0.0, 1.0], "y_pred": [2.0, -1.0, 0.5]})
    res = client.post(
        "/v1/losses?losses=binary_cross_entropy_with_logits,mse",
        content=body,
        headers={"content-type": "application/vnd.apache.arrow.stream"},
    )
    assert res.status_code == 200, res.text
    bce = F.binary_cross_entropy_with_logits(
        torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 1.0])
    ).item()
    assert res.json()["losses"][0]["value"] == pytest.approx(bce, rel=1e-6)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"y_true": [1.0], "y_pred": [1.0], "losses": ["nope"]}, "losses"),
        ({"y_true": [1.0], "y_pred": [1.0], "losses": [{"name": "huber", "delta": -1}]}, "delta"),
        ({"y_true": [1.0], "y_pred": [1.0], "losses": [{"name": "mse", "gamma": 2}]}, "gamma"),
        ({"y_true": [1.0, 2.0], "y_pred": [1.0], "losses": ["mse"]}, "y_pred"),
        ({"y_true": [1.0], "y_pred": [1.5], "losses": ["binary_cross_entropy"]}, "y_pred"),
        ({"y_true": [1.0], "y_pred": [1.0], "losses": []}, "losses"),
        (
            {
                "y_true": [1.0],
                "y_pred": [1.0],
                "losses": ["mse"],
                "penalty": {"weights": [1.0], "l2": -1},
            },
            "penalty.l2",
        ),
    ],
)
def test_bad_loss_requests_get_a_422(client: TestClient, payload: dict, field: str) -> None:
    res = client.post("/v1/losses", json=payload)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field


def test_box_losses_take_boxes_and_name_a_bad_box(client: TestClient) -> None:
    pred = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 2.0, 2.0]]
    target = [[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 3.0, 3.0]]
    res = client.post(
        "/v1/losses",
        json={
            "y_true": target,
            "y_pred": pred,
            "losses": [{"name": "iou", "reduction": "none"}, {"name": "giou"}],
        },
    )
    assert res.status_code == 200, res.text
    iou, giou = res.json()["losses"]
    # Second pair: intersection 1, union 7, enclosing box 9.
    assert iou["value"] == pytest.approx([0.0, 1 - 1 / 7])
    assert giou["value"] == pytest.approx((0 + (1 - 1 / 7 + (9 - 7) / 9)) / 2, rel=1e-6)
    bad = client.post(
        "/v1/losses",
        json={
            "y_true": target,
            "y_pred": [[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 2.0, 2.0]],
            "losses": ["giou"],
        },
    )
    assert bad.status_code == 422 and bad.json()["field"] == "y_pred"
    assert "y_pred[1]" in bad.json()["detail"]


def test_segmentation_losses_take_masks(client: TestClient) -> None:
    target = [[[1, 0], [0, 1]], [[0, 0], [1, 1]]]
    pred = [[[0.9, 0.2], [0.1, 0.8]], [[0.3, 0.1], [0.7, 0.6]]]
    res = client.post(
        "/v1/losses",
        json={
            "y_true": target,
            "y_pred": pred,
            "losses": [{"name": "tversky", "alpha": 0.5, "beta": 0.5, "smooth": 0.0}],
        },
    )
    assert res.status_code == 200, res.text
    p, t = np.asarray(pred), np.asarray(target)
    inter = (p * t).sum(axis=(1, 2))
    dice = 2 * inter / (p.sum(axis=(1, 2)) + t.sum(axis=(1, 2)))
    assert res.json()["losses"][0]["value"] == pytest.approx(float(np.mean(1 - dice)), rel=1e-9)
