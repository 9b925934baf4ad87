"""GET /v1/runs/{id}/diagnostics, its plot and sanity mode, on SQLite and PostgreSQL: bad input,
plots of logged histories, and runs trained by the in-process runner that really vanish, diverge,
overfit, pass or fail the sanity check."""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
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


# -- the plot (logged histories of external runs, each test rolled back) ---------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LAYERS = ("hidden0", "hidden1", "output")


def logged_run(client: TestClient, *, overfit: bool, epochs: int = 10) -> str:
    """An external run with per-layer series and losses; with ``overfit`` the validation loss
    bottoms out at epoch 3 and climbs while the training loss keeps falling."""
    run_id = client.post("/v1/runs", json={"task": "binary", "external": True}).json()["id"]
    batch: list[dict[str, Any]] = []
    for e in range(epochs):
        val = 0.7 - 0.05 * e if not overfit or e <= 3 else 0.55 + 0.1 * (e - 3)
        batch += [
            {"name": "train_loss", "step": e, "value": 0.7 * 0.7**e},
            {"name": "val_loss", "step": e, "value": val},
        ]
        for i, layer in enumerate(LAYERS):
            batch += [
                {"name": f"grad_norm/{layer}", "step": e, "value": 0.5 / (i + 1)},
                {"name": f"update_ratio/{layer}", "step": e, "value": 1e-2 / (e + 1)},
            ]
            if layer != "output":
                batch.append({"name": f"dead_frac/{layer}", "step": e, "value": 0.1 * i})
    res = client.post(f"/v1/runs/{run_id}/metrics", json={"metrics": batch})
    assert res.status_code == 200, res.text
    return str(run_id)


def svg_text(svg: bytes) -> str:
    """Every piece of text the SVG writes (it parses as XML, or this fails)."""
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t.strip() for t in root.itertext() if t.strip())


def test_the_diagnostics_plot_is_svg_by_default_and_png_on_request_with_a_content_etag(
    store_client: TestClient,
) -> None:
    run_id = logged_run(store_client, overfit=False)
    svg = store_client.get(f"/v1/runs/{run_id}/diagnostics/plot")
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"] == "image/svg+xml"
    text = svg_text(svg.content)
    assert all(layer in text for layer in LAYERS)
    assert "gradient L2 norm" in text and "dead-unit fraction" in text and "epoch" in text
    assert svg.headers["etag"] == '"' + hashlib.sha256(svg.content).hexdigest()[:32] + '"'
    again = store_client.get(f"/v1/runs/{run_id}/diagnostics/plot")
    assert again.content == svg.content and again.headers["etag"] == svg.headers["etag"]

    png = store_client.get(f"/v1/runs/{run_id}/diagnostics/plot", params={"format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG_SIGNATURE)
    assert png.headers["etag"] == '"' + hashlib.sha256(png.content).hexdigest()[:32] + '"'


def test_the_plot_names_the_verdicts_that_fired_under_the_rules_asked_for(
    store_client: TestClient,
) -> None:
    run_id = logged_run(store_client, overfit=True)
    url = f"/v1/runs/{run_id}/diagnostics"
    diag = store_client.get(url).json()
    assert diag["triggered"] == ["overfitting"]
    evidence = next(v for v in diag["verdicts"] if v["name"] == "overfitting")["evidence"][0]
    assert (evidence["best_val_epoch"], evidence["last_epoch"]) == (3, 9)
    text = svg_text(store_client.get(f"{url}/plot", params={"title": "My run"}).content)
    assert "My run" in text and "fired: overfitting" in text
    assert f"val − train gap {evidence['gap_last']:.3g}" in text  # the evidence, annotated
    # a patience longer than the climb: the same rule as the JSON endpoint, nothing fires
    assert store_client.get(url, params={"patience": 7}).json()["triggered"] == []
    calm = svg_text(store_client.get(f"{url}/plot", params={"patience": 7}).content)
    assert "no verdict fired" in calm and "overfitting" not in calm
    # a run with no verdict says so
    quiet = logged_run(store_client, overfit=False)
    assert "no verdict fired" in svg_text(
        store_client.get(f"/v1/runs/{quiet}/diagnostics/plot").content
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [({"patience": 0}, "patience"), ({"format": "gif"}, "format"), ({"threshold": 1}, "threshold")],
)
def test_a_bad_plot_query_is_a_422_naming_the_parameter(
    store_client: TestClient, query: dict[str, Any], field: str
) -> None:
    run_id = logged_run(store_client, overfit=False)
    res = store_client.get(f"/v1/runs/{run_id}/diagnostics/plot", params=query)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field


def test_the_plot_of_an_unknown_run_is_404_and_of_a_queued_run_409(
    store_client: TestClient,
) -> None:
    res = store_client.get("/v1/runs/nope/diagnostics/plot")
    assert res.status_code == 404 and res.json()["field"] == "run_id"
    assert res.headers["content-type"] == "application/problem+json"
    queued = store_client.post("/v1/runs", json=run_body()).json()["id"]
    assert store_client.get(f"/v1/runs/{queued}/diagnostics/plot").status_code == 409


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


def test_a_wide_mlp_that_memorizes_noise_labels_is_flagged_overfitting_with_its_evidence(
    live: TestClient,
) -> None:
    # labels independent of the features: whatever the network learns is memorization
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(60, 4)).tolist(), rng.integers(0, 2, 60).tolist()
    epochs = 40
    body = run_body(
        data={"X": X, "y": y},
        validation={"fraction": 0.5},
        model={"hidden": [128, 128], "dropout": 0.0},
        optimizer={"name": "adam", "lr": 0.01},
        regularization={"l1": 0.0, "l2": 0.0, "weight_decay": 0.0},
        epochs=epochs,
        seed=0,
    )
    run = train(live, body)
    assert run["status"] == "succeeded", run["error"]
    diag = diagnostics(live, run["id"])
    assert diag["epochs"] == epochs and "overfitting" in diag["triggered"]
    verdict = next(v for v in diag["verdicts"] if v["name"] == "overfitting")
    assert verdict["triggered"] and verdict["applicable"]
    (ev,) = verdict["evidence"]

    # the evidence is the stored history's: the validation minimum, the last epoch, the gaps
    items = live.get(
        f"/v1/runs/{run['id']}/metrics", params={"names": "train_loss,val_loss", "limit": 1000}
    ).json()["items"]
    hist = {n: [m["value"] for m in items if m["name"] == n] for n in ("train_loss", "val_loss")}
    train_loss, val_loss = np.array(hist["train_loss"]), np.array(hist["val_loss"])
    assert len(train_loss) == len(val_loss) == epochs
    best = int(np.argmin(val_loss))
    assert ev["best_val_epoch"] == best and ev["last_epoch"] == epochs - 1
    assert ev["epochs_since_best"] == epochs - 1 - best >= 3
    assert ev["val_loss_best"] == pytest.approx(val_loss[best])
    assert ev["val_loss_last"] == pytest.approx(val_loss[-1])
    assert ev["train_loss_at_best"] == pytest.approx(train_loss[best])
    assert ev["train_loss_last"] == pytest.approx(train_loss[-1])
    assert ev["gap_last"] == pytest.approx(val_loss[-1] - train_loss[-1])
    # and it is real overfitting: the training set memorized, the validation loss well up
    assert ev["train_loss_last"] < 0.05 < ev["train_loss_at_best"]
    assert ev["val_loss_last"] > 2 * ev["val_loss_best"]
    assert ev["gap_last"] > ev["gap_at_best"] + 1.0

    # the verdict follows the rules asked for: a patience past the climb does not fire
    longer = diagnostics(live, run["id"], patience=ev["epochs_since_best"] + 1)
    assert "overfitting" not in longer["triggered"]
    # the plot of the run names the verdict and the network's layers
    plot = live.get(f"/v1/runs/{run['id']}/diagnostics/plot")
    assert plot.status_code == 200, plot.text
    text = svg_text(plot.content)
    assert "overfitting" in text and all(layer in text for layer in LAYERS)
