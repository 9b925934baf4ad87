"""Inspections of trained runs through the API, with the in-process runner, on SQLite and
PostgreSQL: permutation importance, attributions and robustness as jobs (202, then poll), data
checks synchronously, and the errors of bad requests."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import runs as runs_repo
from app.db.base import utcnow
from app.db.models import Inspection, Run
from app.db.runs import stored_data_checks
from app.db.session import session_scope
from tests.api.conftest import assert_not_inspectable, live_app, wait_for

SIGNAL = (2, 7)  # of 10 features, only these two decide the label


def signal_data(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10))
    y = (X[:, SIGNAL[0]] - 1.5 * X[:, SIGNAL[1]] > 0).astype(int)
    return X, y


def run_body(**overrides: Any) -> dict[str, Any]:
    X, y = signal_data()
    body: dict[str, Any] = {
        "task": "binary",
        "data": {"X": X.tolist(), "y": y.tolist()},
        "validation": {"fraction": 0.25},
        "model": {"hidden": [16]},
        "optimizer": {"name": "adam", "lr": 0.01},
        "epochs": 15,
        "batch_size": 64,
        "device": "cpu",
        "seed": 0,
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, str]]:
    """An app with its runner, and one binary run trained on the 2-of-10 signal set."""
    with live_app(request, tmp_path_factory, heartbeat_timeout_s=30.0) as client:
        run_id = client.post("/v1/runs", json=run_body()).json()["id"]
        run = wait_for(client, f"/v1/runs/{run_id}")
        assert run["status"] == "succeeded", run
        assert run["summary"]["final_metrics"]["roc_auc"] > 0.95
        yield client, run_id


def inspect(client: TestClient, run_id: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    res = client.post(f"/v1/runs/{run_id}/{kind}", json=body)
    assert res.status_code == 202, res.text
    queued = res.json()
    assert res.headers["location"] == f"/v1/inspections/{queued['id']}"
    assert queued["status"] in ("queued", "running", "succeeded") and queued["kind"] == kind
    done = wait_for(client, res.headers["location"])
    assert done["status"] == "succeeded", done
    return done


def test_permutation_importance_ranks_the_two_signal_features_first(
    live: tuple[TestClient, str],
) -> None:
    client, run_id = live
    done = inspect(client, run_id, "importance", {"metric": "roc_auc", "n_repeats": 3, "seed": 1})
    result = done["result"]
    assert result["metric"] == "roc_auc" and result["baseline"] > 0.95
    ranked = result["features"]
    assert {f["name"] for f in ranked[:2]} == {f"x{j}" for j in SIGNAL}
    assert ranked[1]["mean"] > 0.05 > max(abs(f["mean"]) for f in ranked[2:])
    assert [f["rank"] for f in ranked] == list(range(1, 11)) and len(ranked[0]["drops"]) == 3

    svg = client.get(done["plot"])
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"x2" in svg.content
    png = client.get(done["plot"], params={"format": "png"})
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_a_group_of_features_is_permuted_together(live: tuple[TestClient, str]) -> None:
    client, run_id = live
    body = {"metric": "log_loss", "n_repeats": 2, "groups": {"signal": ["x2", "x7"]}}
    ranked = inspect(client, run_id, "importance", body)["result"]["features"]
    assert ranked[0]["name"] == "signal" and len(ranked) == 9
    assert ranked[0]["mean"] > 0.3  # scikit-learn's sign: the loss rose


def test_integrated_gradients_rank_the_signal_features_first_and_are_complete(
    live: tuple[TestClient, str],
) -> None:
    client, run_id = live
    X, _ = signal_data(60, seed=5)
    done = inspect(client, run_id, "attributions", {"X": X.tolist()})
    result = done["result"]
    png = client.get(done["plot"], params={"format": "png"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert result["method"] == "integrated_gradients" and result["steps"] == 64
    assert result["baseline_source"] == "training_means"
    assert {f["name"] for f in result["features"][:2]} == {f"x{j}" for j in SIGNAL}
    A = np.array(result["attributions"])
    delta = np.array(result["output"]) - np.array(result["baseline_output"])
    keep = np.abs(delta) > 0.1
    assert keep.sum() > 40
    np.testing.assert_array_less(np.abs(A.sum(axis=1) - delta)[keep], 0.01 * np.abs(delta)[keep])
    gap = np.array(result["completeness_gap"])
    np.testing.assert_allclose(gap, A.sum(axis=1) - delta, rtol=0, atol=1e-12)
    rel = np.abs(gap) / np.maximum(np.abs(delta), 1e-12)
    assert result["max_relative_completeness_gap"] == pytest.approx(rel.max(), rel=1e-12)
    used = result["steps_used"]
    assert len(used) == 60 and set(used) <= {64, 128, 256, 512, 1024}

    gxi = inspect(
        client, run_id, "attributions", {"X": X[:3].tolist(), "method": "gradient_x_input"}
    )
    assert np.array(gxi["result"]["attributions"]).shape == (3, 10)
    assert gxi["result"]["steps"] is None and gxi["result"]["baseline"] is None
    assert gxi["result"]["baseline_source"] is None
    assert "steps_used" not in gxi["result"] and "completeness_gap" not in gxi["result"]


def test_attributions_report_the_requested_steps_and_the_steps_each_row_used(
    live: tuple[TestClient, str],
) -> None:
    client, run_id = live
    X, _ = signal_data(40, seed=6)
    # Two steps are too few for a ReLU network: rows past 0.5% are integrated again.
    result = inspect(client, run_id, "attributions", {"X": X.tolist(), "steps": 2})["result"]
    assert result["steps"] == 2
    used = np.array(result["steps_used"])
    assert used.shape == (40,) and set(used.tolist()) <= {2, 4, 8, 16, 32}
    assert used.max() > 2  # some rows were refined, and the result says so
    delta = np.array(result["output"]) - np.array(result["baseline_output"])
    gap = np.abs(np.array(result["completeness_gap"]))
    # A row stops being refined once it is within the tolerance (or after 16x the steps).
    assert (gap[used < 32] <= 0.005 * np.abs(delta[used < 32])).all()


def test_robustness_is_reproducible_and_finds_the_breaking_point(
    live: tuple[TestClient, str],
) -> None:
    client, run_id = live
    body = {
        "families": ["gaussian_jitter", "missingness", "feature_dropout"],
        "levels": {"gaussian_jitter": [0.1, 0.5, 1.0, 3.0]},
        "metric": "roc_auc",
        "seed": 3,
        "floor": 0.8,
    }
    first = inspect(client, run_id, "robustness", body)["result"]
    again = inspect(client, run_id, "robustness", body)["result"]
    assert first == again
    jitter = first["families"]["gaussian_jitter"]
    assert jitter["values"][0] > jitter["values"][-1]
    assert jitter["breaking_point"]["reason"] == "floor"
    assert jitter["breaking_point"]["value"] < 0.8
    assert first["families"]["missingness"]["levels"] == [0.05, 0.1, 0.2, 0.4, 0.6]
    other = inspect(client, run_id, "robustness", {**body, "seed": 4})["result"]
    assert other["families"]["gaussian_jitter"]["values"] != jitter["values"]

    done = inspect(client, run_id, "robustness", {"families": ["missingness"]})
    plot = client.get(done["plot"])
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/svg+xml"
    assert plot.headers["etag"] == client.get(done["plot"]).headers["etag"]  # deterministic


def test_importance_on_a_posted_dataset_with_the_runs_feature_columns(
    live: tuple[TestClient, str],
) -> None:
    client, run_id = live
    X, y = signal_data(300, seed=9)
    header = ",".join(f"x{j}" for j in range(10)) + ",label"
    lines = [",".join(f"{v:.6f}" for v in row) + f",{t}" for row, t in zip(X, y, strict=True)]
    res = client.post(
        "/v1/datasets",
        params={"target": "label"},
        content=("\n".join([header, *lines]) + "\n").encode(),
        headers={"content-type": "text/csv"},
    )
    assert res.status_code == 201, res.text
    dataset_id = res.json()["id"]
    body = {"metric": "accuracy", "n_repeats": 2, "dataset_id": dataset_id}
    result = inspect(client, run_id, "importance", body)["result"]
    assert result["n_rows"] == 300 and result["data"] == f"dataset:{dataset_id}"
    assert {f["name"] for f in result["features"][:2]} == {f"x{j}" for j in SIGNAL}
    bad = client.post(f"/v1/runs/{run_id}/importance", json={"dataset_id": "nope"})
    assert bad.status_code == 422 and bad.json()["field"] == "dataset_id"


def test_data_checks_of_a_run_compare_its_two_splits(live: tuple[TestClient, str]) -> None:
    client, run_id = live
    res = client.get(f"/v1/runs/{run_id}/data-checks")
    assert res.status_code == 200, res.text
    checks = res.json()
    assert checks["n_train"] == 450 and checks["n_validation"] == 150
    assert [f["name"] for f in checks["features"]] == [f"x{j}" for j in range(10)]
    assert checks["features"][0]["drift"]["test"] == "ks"
    assert checks["duplicates"]["n_val_rows_in_train"] == 0
    assert checks["leakage_suspects"] == []
    assert sum(c["train_count"] for c in checks["classes"]) == 450
    # Computed by the worker when the run started, stored with the run, served from there.
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings, write=False) as session:
        assert stored_data_checks(session, run_id) == checks


SVG_TEXT = "{http://www.w3.org/2000/svg}text"


def svg_lines(svg: bytes) -> list[str]:
    """Every text of an SVG (which must parse as XML), one per line."""
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(SVG_TEXT)]


def assert_plot(res: Any, media: str) -> None:
    """A 200 image of ``media`` whose strong ETag is the hash of its bytes."""
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == media
    assert res.headers["etag"] == '"' + hashlib.sha256(res.content).hexdigest()[:32] + '"'


def test_the_plot_of_a_runs_data_checks_names_every_feature(live: tuple[TestClient, str]) -> None:
    client, run_id = live
    path = f"/v1/runs/{run_id}/data-checks/plot"
    svg = client.get(path)
    assert_plot(svg, "image/svg+xml")
    lines = svg_lines(svg.content)
    assert {f"x{j}" for j in range(10)} <= set(lines)  # one bar (and tick label) per feature
    assert f"Data checks of run {run_id}" in lines
    assert "450 training vs 150 validation rows" in lines
    assert "Leakage suspects: none" in lines
    assert any(line.startswith("Duplicates: 0 validation rows") for line in lines)
    assert client.get(path).headers["etag"] == svg.headers["etag"]  # deterministic
    png = client.get(path, params={"format": "png"})
    assert_plot(png, "image/png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    titled = client.get(path, params={"title": "Split audit"})
    assert "Split audit" in svg_lines(titled.content)
    assert titled.headers["etag"] != svg.headers["etag"]
    bad = client.get(path, params={"format": "gif"})
    assert bad.status_code == 422 and bad.json()["field"] == "format"
    missing = client.get("/v1/runs/nope/data-checks/plot")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("importance", {"groups": {"g": ["x1", "nope"]}}, "groups.g"),
        ("importance", {"metric": "r2"}, "metric"),
        ("importance", {"metric": "no_such_metric"}, "metric"),
        ("importance", {"n_repeats": 0}, "n_repeats"),
        (
            "robustness",
            {"families": ["missingness"], "levels": {"missingness": [1.5]}},
            "levels.missingness",
        ),
        (
            "robustness",
            {"families": ["gaussian_jitter"], "levels": {"gaussian_jitter": [-1]}},
            "levels.gaussian_jitter",
        ),
        ("robustness", {"families": ["blur"]}, "families"),
        ("attributions", {"X": [[0.0] * 9]}, "X"),
        ("attributions", {"X": [[0.0] * 10], "target": 2}, "target"),
        ("attributions", {"X": [[0.0] * 10], "baseline": [0.0]}, "baseline"),
    ],
)
def test_bad_inspection_requests_are_422_problems_naming_the_field(
    live: tuple[TestClient, str], kind: str, body: dict[str, Any], field: str
) -> None:
    client, run_id = live
    res = client.post(f"/v1/runs/{run_id}/{kind}", json=body)
    assert res.status_code == 422, res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["field"] == field


# -- without a runner: nothing trains, each test rolled back ---------------------------------------
def test_inspecting_a_run_that_has_not_succeeded_is_a_409_problem(
    store_client: TestClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    run_id = store_client.post("/v1/runs", json=run_body(epochs=1)).json()["id"]
    for kind, body in (
        ("importance", {}),
        ("attributions", {"X": [[0.0] * 10]}),
        ("robustness", {"families": ["missingness"]}),
    ):
        res = store_client.post(f"/v1/runs/{run_id}/{kind}", json=body)
        assert res.status_code == 409, res.text
        assert res.headers["content-type"] == "application/problem+json"
        problem = res.json()
        assert problem["status"] == 409 and "queued" in problem["detail"]
        assert problem["field"] == "run_id"
    assert store_client.post("/v1/runs/nope/importance", json={}).status_code == 404
    assert store_client.get("/v1/inspections/nope").status_code == 404
    # Data checks need only the stored data, not a trained model: computed now, not stored.
    res = store_client.get(f"/v1/runs/{run_id}/data-checks")
    assert res.status_code == 200 and res.json()["n_train"] == 450
    with db_sessionmaker() as session:
        assert session.get(Run, run_id) is not None
        assert stored_data_checks(session, run_id) is None


INSPECTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("importance", {}),
    ("attributions", {"X": [[0.0] * 10]}),
    ("robustness", {"families": ["missingness"]}),
    ("gradcam", {"X": [[[0.0]]]}),  # a tabular run: the 409 comes before the 422
)


@pytest.mark.parametrize("status", ["cancelled", "failed", "succeeded"])
def test_inspecting_a_cancelled_failed_or_weightless_run_is_a_409_problem(
    store_client: TestClient, db_sessionmaker: sessionmaker[Session], status: str
) -> None:
    run_id = store_client.post("/v1/runs", json=run_body(epochs=1)).json()["id"]
    if status == "cancelled":
        res = store_client.post(f"/v1/runs/{run_id}/cancel")
        assert res.status_code == 200 and res.json()["status"] == "cancelled", res.text
    else:  # a failed run keeps its checkpointed weights; a succeeded one here has none
        with db_sessionmaker() as session:
            assert runs_repo.set_status(
                session,
                run_id,
                expected="queued",
                status=status,
                finished_at=utcnow(),
                error="non-finite loss at epoch 1" if status == "failed" else None,
                summary={"has_weights": status == "failed"},
            )
            session.commit()
    assert store_client.get(f"/v1/runs/{run_id}").json()["status"] == status
    for kind, body in INSPECTIONS:
        assert_not_inspectable(store_client.post(f"/v1/runs/{run_id}/{kind}", json=body), status)
    with db_sessionmaker() as session:  # nothing was queued
        assert session.scalars(select(Inspection).where(Inspection.run_id == run_id)).all() == []


def _upload(client: TestClient, rows: list[str], name: str) -> str:
    csv = "a,b,color,label\n" + "\n".join(rows) + "\n"
    res = client.post(
        "/v1/datasets",
        params={"target": "label", "name": name},
        content=csv.encode(),
        headers={"content-type": "text/csv"},
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def _two_datasets(client: TestClient) -> tuple[str, str]:
    """A training and a validation upload: ``a`` shifted, ``color`` reweighted, ``b`` giving
    the label away, and 5 validation rows copied from training."""
    rng = np.random.default_rng(0)
    colors = np.array(["red", "green", "blue"])

    def rows(n: int, shift: float, p: list[float]) -> list[str]:
        out = []
        for _ in range(n):
            label = int(rng.integers(0, 2))
            leak = label * 10 + rng.normal()  # b gives the label away
            color = rng.choice(colors, p=p)
            out.append(f"{rng.normal() + shift:.6f},{leak:.6f},{color},{label}")
        return out

    train = rows(300, 0.0, [0.6, 0.3, 0.1])
    val = rows(200, 0.8, [0.2, 0.3, 0.5]) + train[:5]  # 5 rows copied from training
    return _upload(client, train, "train"), _upload(client, val, "val")


def test_data_checks_of_two_datasets_find_drift_duplicates_and_a_leaky_column(
    store_client: TestClient,
) -> None:
    a, b = _two_datasets(store_client)
    res = store_client.post(
        "/v1/data-checks", json={"train_dataset_id": a, "validation_dataset_id": b}
    )
    assert res.status_code == 200, res.text
    checks = res.json()
    by_name = {f["name"]: f for f in checks["features"]}
    assert by_name["a"]["drift"]["test"] == "ks" and by_name["a"]["drift"]["p_value"] < 1e-6
    assert by_name["color"]["drift"]["test"] == "chi_square"
    assert by_name["color"]["drift"]["dof"] == 2 and by_name["color"]["drift"]["psi"] > 0.25
    assert set(checks["drifted"]) >= {"a", "color"}
    assert checks["duplicates"]["n_val_rows_in_train"] == 5
    assert [s["feature"] for s in checks["leakage_suspects"]] == ["b"]
    assert len(checks["classes"]) == 2

    bad = store_client.post(
        "/v1/data-checks",
        json={"train_dataset_id": a, "validation_dataset_id": b, "features": ["zz"]},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "features"
    missing = store_client.post(
        "/v1/data-checks", json={"train_dataset_id": "nope", "validation_dataset_id": b}
    )
    assert missing.status_code == 422 and missing.json()["field"] == "train_dataset_id"


def test_the_plot_of_two_datasets_takes_the_body_of_their_data_checks(
    store_client: TestClient,
) -> None:
    a, b = _two_datasets(store_client)
    body = {"train_dataset_id": a, "validation_dataset_id": b}
    checks = store_client.post("/v1/data-checks", json=body).json()
    svg = store_client.post("/v1/data-checks/plot", json=body)
    assert_plot(svg, "image/svg+xml")
    lines = svg_lines(svg.content)
    assert {"a", "b", "color"} <= set(lines)
    text = "\n".join(lines)
    assert f"Drifted: {len(checks['drifted'])} of 3 features" in text
    assert "Duplicates: 5 validation rows (2.4%) equal a training row" in text
    assert "Leakage suspects (alone ROC-AUC ≥ 0.99): b (class 1" in text
    assert f"dataset {a} (training) vs {b} (validation)" in text
    assert store_client.post("/v1/data-checks/plot", json=body).content == svg.content
    # The body's options apply as in the JSON checks: one feature, one bar.
    only_a = store_client.post("/v1/data-checks/plot", json={**body, "features": ["a"]})
    assert_plot(only_a, "image/svg+xml")
    assert "Drifted: 1 of 1 features (p < 0.01 or PSI ≥ 0.25)" in svg_lines(only_a.content)
    png = store_client.post("/v1/data-checks/plot", json=body, params={"format": "png"})
    assert_plot(png, "image/png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

    for params, payload, field in (
        ({}, {**body, "features": ["zz"]}, "features"),
        ({}, {**body, "train_dataset_id": "nope"}, "train_dataset_id"),
        ({"format": "gif"}, body, "format"),
        ({"title": "t" * 201}, body, "title"),
    ):
        bad = store_client.post("/v1/data-checks/plot", json=payload, params=params)
        assert bad.status_code == 422, (field, bad.text)
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["field"] == field


def test_data_checks_and_their_plot_of_an_external_run_are_422_problems(
    store_client: TestClient,
) -> None:
    run_id = store_client.post("/v1/runs", json={"task": "binary", "external": True}).json()["id"]
    for path in (f"/v1/runs/{run_id}/data-checks", f"/v1/runs/{run_id}/data-checks/plot"):
        res = store_client.get(path)
        assert res.status_code == 422, res.text
        assert res.headers["content-type"] == "application/problem+json"
        assert res.json()["field"] == "run_id" and "external" in res.json()["detail"]
