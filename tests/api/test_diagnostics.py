"""GET /v1/runs/{id}/diagnostics and sanity mode, on SQLite and PostgreSQL: bad input, and runs
trained by the in-process runner that really vanish, diverge, pass or fail the sanity check."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import live_app, wait_for
from tests.api.test_runs import run_body


# -- bad input (no worker: runs stay queued, each test rolled back) --------------------------------
@pytest.mark.parametrize("sanity", [{"rows": 31}, {"rows": 257}, {"rows": 64, "epochs": 0}, {}])
def test_sanity_check_outside_its_range_is_a_422_naming_the_field(
    store_client: TestClient, sanity: dict[str, Any]
) -> None:
    res = store_client.post("/v1/runs", json=run_body(sanity_check=sanity))
    assert res.status_code == 422, res.text
    field = "sanity_check.epochs" if "epochs" in sanity else "sanity_check.rows"
    assert res.json()["field"] == field


@pytest.mark.parametrize("clip", [0, -1.0, "big"])
def test_a_gradient_clip_norm_that_is_not_positive_is_a_422(
    store_client: TestClient, clip: object
) -> None:
    res = store_client.post("/v1/runs", json=run_body(grad_clip_norm=clip))
    assert res.status_code == 422 and res.json()["field"] == "grad_clip_norm"
    ok = store_client.post("/v1/runs", json=run_body(grad_clip_norm=0.5))
    assert ok.status_code == 202 and ok.json()["spec"]["grad_clip_norm"] == 0.5


def test_a_sanity_run_stores_the_spec_it_will_train(store_client: TestClient) -> None:
    body = run_body(
        model={"hidden": [8], "dropout": 0.3},
        regularization={"l2": 0.1, "weight_decay": 0.1},
        sanity_check={"rows": 32},
    )
    run = store_client.post("/v1/runs", json=body).json()
    spec = run["spec"]
    assert spec["sanity_check"] == {"rows": 32, "epochs": 300}
    assert spec["model"]["dropout"] == 0.0 and spec["epochs"] == 300
    assert spec["regularization"] == {"l1": 0.0, "l2": 0.0, "weight_decay": 0.0}
    assert run["progress"] == {"epoch": 0, "total_epochs": 300}


def test_diagnostics_of_a_queued_run_is_409_and_of_an_unknown_run_404(
    store_client: TestClient,
) -> None:
    run_id = store_client.post("/v1/runs", json=run_body()).json()["id"]
    res = store_client.get(f"/v1/runs/{run_id}/diagnostics")
    assert res.status_code == 409 and res.json()["field"] == "run_id"
    assert res.headers["content-type"] == "application/problem+json"
    assert store_client.get("/v1/runs/nope/diagnostics").status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"patience": 0}, "patience"),
        ({"vanishing_ratio": 2}, "vanishing_ratio"),
        ({"dead_fraction": "lots"}, "dead_fraction"),
        ({"threshold": 1}, "threshold"),
    ],
)
def test_bad_diagnostic_rules_are_422_naming_the_parameter(
    store_client: TestClient, query: dict[str, Any], field: str
) -> None:
    run_id = store_client.post("/v1/runs", json={"task": "binary", "external": True}).json()["id"]
    res = store_client.get(f"/v1/runs/{run_id}/diagnostics", params=query)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field


# -- runs trained by the in-process runner ---------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with live_app(request, tmp_path_factory) as client:
        yield client


def train(client: TestClient, body: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    res = client.post("/v1/runs", json=body)
    assert res.status_code == 202, res.text
    return wait_for(client, f"/v1/runs/{res.json()['id']}", timeout)


def diagnostics(client: TestClient, run_id: str, **query: Any) -> dict[str, Any]:
    res = client.get(f"/v1/runs/{run_id}/diagnostics", params=query)
    assert res.status_code == 200, res.text
    return dict(res.json())


def test_a_deep_tanh_network_whose_gradients_vanish_is_flagged(live: TestClient) -> None:
    run = train(live, run_body(model={"hidden": [16] * 24, "activation": "tanh"}))
    assert run["status"] == "succeeded", run["error"]
    diag = diagnostics(live, run["id"])
    assert diag["epochs"] == 3 and diag["layers"][0] == "hidden0" and diag["layers"][-1] == "output"
    assert "vanishing_gradients" in diag["triggered"]
    verdict = next(v for v in diag["verdicts"] if v["name"] == "vanishing_gradients")
    flagged = [e["layer"] for e in verdict["evidence"]]
    assert flagged[0] == "hidden0" and "output" not in flagged
    assert all(e["ratio_to_largest"] < 1e-3 for e in verdict["evidence"])
    # tanh: dead ReLUs do not apply; the series summary covers the new per-layer metrics
    dead = next(v for v in diag["verdicts"] if v["name"] == "dead_units")
    assert not dead["applicable"]
    assert {"grad_mean/hidden0", "grad_zero_frac/hidden0", "update_ratio/output"} <= set(
        diag["series"]
    )
    # a looser rule moves the verdict: only the layers below 1e-6 of the largest remain
    stricter = diagnostics(live, run["id"], vanishing_ratio=1e-6, vanishing_grad_norm=1e-12)
    assert stricter["rules"]["vanishing_ratio"] == 1e-6
    v2 = next(v for v in stricter["verdicts"] if v["name"] == "vanishing_gradients")
    assert len(v2["evidence"]) < len(flagged)


def test_a_diverging_run_fails_with_where_it_diverged_and_is_flagged_exploding(
    live: TestClient,
) -> None:
    X = (np.random.default_rng(4).normal(size=(64, 2)) * 1e3).tolist()
    body = run_body(
        task="regression",
        data={"X": X, "y": [x[0] * 1e3 for x in X]},
        optimizer={"name": "sgd", "lr": 1e3},
        epochs=20,
    )
    run = train(live, body)
    assert run["status"] == "failed" and "non-finite" in run["error"]
    failure = run["summary"]["failure"]
    assert failure["kind"] == "non_finite" and failure["epoch"] == 0
    assert isinstance(failure["batch"], int) and failure["layer"] in {"hidden0", "output"}
    assert f"batch {failure['batch']}" in run["error"]
    assert run["summary"]["has_weights"] is False and "sanity_check" not in run["summary"]

    diag = diagnostics(live, run["id"])
    assert "exploding_gradients" in diag["triggered"] and diag["failure"] == failure
    verdict = next(v for v in diag["verdicts"] if v["name"] == "exploding_gradients")
    assert verdict["evidence"][0] == {"diverged": failure}
    history = live.get(f"/v1/runs/{run['id']}/metrics").json()["items"]
    assert all(m["value"] is None or math.isfinite(m["value"]) for m in history)


def test_a_learnable_subset_passes_the_sanity_check(live: TestClient) -> None:
    body = run_body(
        model={"hidden": [16]}, optimizer={"lr": 0.05}, sanity_check={"rows": 64, "epochs": 30}
    )
    run = train(live, body)
    assert run["status"] == "succeeded", run["error"]
    sanity = run["summary"]["sanity_check"]
    assert sanity["passed"] is True and sanity["causes"] == []
    assert sanity["rows"] == 64 and sanity["epochs"] == 30 and run["summary"]["n_train"] == 64
    assert sanity["final_train_loss"] <= sanity["threshold"] == 0.05
    assert sanity["criterion"] == "final training loss <= 0.05"
    assert diagnostics(live, run["id"])["sanity_check"] == sanity
    names = {m["name"] for m in live.get(f"/v1/runs/{run['id']}/metrics?limit=100").json()["items"]}
    assert {"dead_frac/hidden0", "grad_mean/output", "grad_zero_frac/hidden0"} <= names


def test_a_learning_rate_of_1e_7_fails_the_sanity_check_blaming_the_learning_rate(
    live: TestClient,
) -> None:
    body = run_body(optimizer={"lr": 1e-7}, sanity_check={"rows": 32, "epochs": 30})
    run = train(live, body)
    assert run["status"] == "succeeded", run["error"]
    sanity = run["summary"]["sanity_check"]
    assert sanity["passed"] is False and sanity["rows"] == 32
    assert sanity["final_train_loss"] > 0.05
    assert sanity["causes"][0]["cause"] == "lr_too_low"


def test_a_diverging_sanity_run_fails_and_blames_a_too_high_learning_rate(
    live: TestClient,
) -> None:
    X = (np.random.default_rng(5).normal(size=(80, 2)) * 1e3).tolist()
    body = run_body(
        task="regression",
        data={"X": X, "y": [x[0] * 1e3 for x in X]},
        optimizer={"name": "sgd", "lr": 1e3},
        sanity_check={"rows": 32, "epochs": 5},
    )
    run = train(live, body)
    assert run["status"] == "failed"
    sanity = run["summary"]["sanity_check"]
    assert sanity["passed"] is False and sanity["rows"] == 32
    assert sanity["causes"][0]["cause"] == "lr_too_high"
    assert diagnostics(live, run["id"])["sanity_check"] == sanity
