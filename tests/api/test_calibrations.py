"""/v1/calibrations: fit, judge, store, apply — against scikit-learn where it has the method."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.special import expit, softmax
from sklearn.isotonic import IsotonicRegression


def overconfident_binary(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=n)
    y = (rng.random(n) < expit(z)).astype(int)
    return y, 3.0 * z  # logits three times too sharp


def test_temperature_scaling_lowers_ece_and_keeps_accuracy(store_client: TestClient) -> None:
    y, z = overconfident_binary()
    res = store_client.post(
        "/v1/calibrations",
        json={
            "method": "temperature",
            "task": "binary",
            "y_true": y.tolist(),
            "y_score": z.tolist(),
            "score_type": "logit",
            "persist": True,
            "model": "m-cal",
            "return_probabilities": False,
        },
    )
    assert res.status_code == 201, res.text
    body = res.json()
    before, after = body["fit"]["before"], body["fit"]["after"]
    assert after["ece"] < before["ece"] / 3
    assert after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]
    assert body["calibrator"]["temperature"] == pytest.approx(3.0, rel=0.1)
    assert "probabilities" not in body
    rel = body["fit"]["reliability"]
    assert sum(rel["before"]["count"]) == sum(rel["after"]["count"]) == len(y)

    stored = store_client.get(f"/v1/calibrations/{body['id']}")
    assert stored.status_code == 200 and stored.json()["calibrator"] == body["calibrator"]
    listed = store_client.get("/v1/calibrations", params={"model": "m-cal"}).json()
    assert [i["id"] for i in listed["items"]] == [body["id"]]

    y2, z2 = overconfident_binary(500, seed=1)
    applied = store_client.post(
        f"/v1/calibrations/{body['id']}/apply", json={"y_score": z2.tolist(), "y_true": y2.tolist()}
    )
    assert applied.status_code == 200, applied.text
    out = applied.json()
    t = body["calibrator"]["temperature"]
    assert out["probabilities"] == pytest.approx(expit(z2 / t).tolist(), rel=1e-9)
    assert out["evaluation"]["after"]["ece"] < out["evaluation"]["before"]["ece"]


def test_isotonic_probabilities_equal_sklearn(client: TestClient) -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1), 2)
    new = rng.random(50)
    res = client.post(
        "/v1/calibrations",
        json={
            "method": "isotonic",
            "task": "binary",
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "apply": {"y_score": new.tolist()},
        },
    )
    assert res.status_code == 200, res.text
    body = res.json()
    ref = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    assert body["probabilities_for"] == "apply"
    np.testing.assert_allclose(body["probabilities"], ref.predict(new), rtol=0, atol=1e-9)


def test_multiclass_temperature_is_judged_on_the_validation_batch(client: TestClient) -> None:
    rng = np.random.default_rng(3)

    def batch(n: int) -> tuple[list, list]:
        z = rng.normal(size=(n, 4)) * 2
        y = np.array([rng.choice(4, p=row) for row in softmax(z, axis=1)])
        return ["abcd"[i] for i in y], (2.5 * z).tolist()

    y, z = batch(2000)
    vy, vz = batch(800)
    res = client.post(
        "/v1/calibrations",
        json={
            "method": "temperature",
            "task": "multiclass",
            "y_true": y,
            "y_score": z,
            "score_type": "logit",
            "labels": list("abcd"),
            "validation": {"y_true": vy, "y_score": vz},
        },
    )
    assert res.status_code == 200, res.text
    body = res.json()
    val = body["validation"]
    assert val["n_samples"] == 800
    assert val["after"]["nll"] < val["before"]["nll"]
    assert val["after"]["accuracy"] == val["before"]["accuracy"]
    assert body["labels"] == list("abcd")
    probs = np.asarray(body["probabilities"])
    assert probs.shape == (2000, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {
                "method": "temperature",
                "task": "binary",
                "y_true": [1, 1, 1],
                "y_score": [0.2, 0.3, 0.9],
            },
            "y_true",
        ),
        (
            {
                "method": "isotonic",
                "task": "binary",
                "y_true": [0, 1, 0],
                "y_score": [0.4, 0.4, 0.4],
            },
            "y_score",
        ),
        (
            {"method": "sigmoid", "task": "binary", "y_true": [0, 1], "y_score": [0.1, 0.9]},
            "method",
        ),
        (
            {
                "method": "platt",
                "task": "binary",
                "y_true": [0, 1, 0, 1],
                "y_score": [0.1, 0.6, 0.4, 0.8],
                "params": {"n_bins": 3},
            },
            "n_bins",
        ),
        (
            {"method": "temperature", "task": "binary", "y_true": [0, 1], "y_score": [0.1, 1.9]},
            "y_score",
        ),
    ],
)
def test_bad_calibration_requests_get_a_422(client: TestClient, payload: dict, field: str) -> None:
    res = client.post("/v1/calibrations", json=payload)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field


def test_applying_a_multiclass_calibrator_to_binary_scores_is_a_422(
    store_client: TestClient,
) -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(300, 3))
    y = rng.integers(0, 3, 300)
    created = store_client.post(
        "/v1/calibrations",
        json={
            "method": "temperature",
            "task": "multiclass",
            "y_true": y.tolist(),
            "y_score": z.tolist(),
            "score_type": "logit",
            "persist": True,
        },
    ).json()
    res = store_client.post(f"/v1/calibrations/{created['id']}/apply", json={"y_score": [0.2, 0.7]})
    assert res.status_code == 422 and res.json()["field"] == "y_score"
    res = store_client.post(
        f"/v1/calibrations/{created['id']}/apply", json={"y_score": [[0.2, 0.7], [0.1, 0.1]]}
    )
    assert res.status_code == 422 and res.json()["field"] == "y_score"


def test_unknown_calibrator_is_a_404(client: TestClient) -> None:
    assert client.get("/v1/calibrations/nope").status_code == 404
    res = client.post("/v1/calibrations/nope/apply", json={"y_score": [0.5]})
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("application/problem+json")


def test_a_stored_calibrator_has_a_reliability_plot(store_client: TestClient) -> None:
    y, z = overconfident_binary(600)
    created = store_client.post(
        "/v1/calibrations",
        json={
            "method": "platt",
            "task": "binary",
            "y_true": y.tolist(),
            "y_score": z.tolist(),
            "score_type": "logit",
            "persist": True,
        },
    ).json()
    svg = store_client.get(f"/v1/calibrations/{created['id']}/plots/reliability")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"before" in svg.content and b"after" in svg.content
    png = store_client.get(f"/v1/calibrations/{created['id']}/plots/reliability?format=png")
    assert png.content.startswith(b"\x89PNG")
