"""/v1/runs on SQLite and PostgreSQL: validation before queueing, listing, cancelling, metric
history with cursor and ETag, external log-batch, and runs trained by the in-process runner
(followed by polling, by Server-Sent Events, and used for predictions)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import live_app, wait_for


def separable(n: int = 120, d: int = 3, seed: int = 0) -> tuple[list[list[float]], list[int]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X.tolist(), (X[:, 0] + X[:, 1] > 0).astype(int).tolist()


def run_body(**overrides: Any) -> dict[str, Any]:
    X, y = separable()
    body: dict[str, Any] = {
        "task": "binary",
        "name": "api-run",
        "tags": ["api"],
        "data": {"X": X, "y": y},
        "model": {"hidden": [8]},
        "epochs": 3,
        "batch_size": 32,
        "device": "cpu",
    }
    body.update(overrides)
    return body


def n_runs(client: TestClient) -> int:
    return int(client.get("/v1/runs").json()["page"]["total"])


# -- submission and validation (no worker: runs stay queued, each test rolled back) ----------------
def test_a_submitted_run_is_202_queued_with_its_location(store_client: TestClient) -> None:
    res = store_client.post("/v1/runs", json=run_body())
    assert res.status_code == 202, res.text
    run = res.json()
    assert res.headers["location"] == f"/v1/runs/{run['id']}"
    assert run["status"] == "queued" and run["progress"] == {"epoch": 0, "total_epochs": 3}
    assert (
        run["spec"]["model"]["hidden"] == [8] and run["spec"]["loss"]["name"] == "bce_with_logits"
    )
    assert run["data"]["source"] == "inline" and run["data"]["validation"]["n_rows"] == 24
    assert run["queue"] == "evalserve.cpu"
    assert store_client.get(f"/v1/runs/{run['id']}").json() == run


X_OK, Y_OK = separable(20)
BAD_RUNS: list[tuple[dict[str, Any], str]] = [
    ({"data": None}, "data"),
    ({"foo": 1}, "foo"),
    ({"model": {"width": 3}}, "model.width"),
    ({"model": {"hidden": [0]}}, "model.hidden[0]"),
    ({"optimizer": {"lr": -1}}, "optimizer.lr"),
    ({"optimizer": {"name": "adam", "momentum": 0.9}}, "optimizer.momentum"),
    ({"batch_size": 0}, "batch_size"),
    ({"epochs": 10**9}, "epochs"),
    ({"device": "tpu"}, "device"),
    ({"n_classes": 3}, "n_classes"),
    ({"data": {"X": [[1.0, 2.0], [3.0]], "y": [0, 1]}}, "data.X"),
    ({"data": {"X": [[1e39, 0.0]] * 4, "y": [0, 1, 0, 1]}}, "data.X"),
    ({"data": {"X": X_OK, "y": Y_OK[:-1]}}, "data.y"),
    ({"data": {"X": X_OK, "y": [2, *Y_OK[1:]]}}, "data.y"),
    ({"data": {"X": X_OK, "y": [0] * 20}}, "data.y"),
    ({"task": "multiclass", "data": {"X": X_OK, "y": [1.5, *Y_OK[1:]]}}, "data.y"),
    ({"task": "multiclass", "data": {"X": X_OK, "y": Y_OK}, "n_classes": 1}, "n_classes"),
    ({"task": "regression", "loss": {"name": "bce_with_logits"}}, "loss.name"),
    ({"loss": {"name": "focal", "pos_weight": 2.0}}, "loss.pos_weight"),
    ({"early_stopping": {"monitor": "auc"}}, "early_stopping.monitor"),
    ({"task": "multiclass", "early_stopping": {"monitor": "roc_auc"}}, "early_stopping.monitor"),
    ({"validation": {"fraction": 1.5}}, "validation.fraction"),
    ({"validation": {"fraction": 0.2, "X": X_OK, "y": Y_OK}}, "validation"),
    ({"validation": {"group_column": "site"}}, "validation.group_column"),
    ({"validation": {"groups": ["a"] * 3}}, "validation.groups"),
    ({"validation": {"groups": ["a"] * 120}}, "validation.groups"),
    ({"validation": {"X": [[1.0, 2.0]], "y": [1]}}, "validation.X"),
    ({"data": {"dataset_id": "nope"}}, "data.dataset_id"),
    ({"external": True}, "model"),
    ({"tags": ["a\x00b"]}, "tags[0]"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_RUNS)
def test_invalid_runs_are_422_problems_naming_the_field_and_nothing_is_queued(
    store_client: TestClient, overrides: dict[str, Any], field: str
) -> None:
    before = n_runs(store_client)
    res = store_client.post("/v1/runs", json=run_body(**overrides))
    assert res.status_code == 422, res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["field"] == field
    assert n_runs(store_client) == before


def test_non_finite_options_are_422(store_client: TestClient) -> None:
    body = orjson.dumps(run_body()).replace(b'"epochs":3', b'"epochs":3,"grad_clip_norm":NaN')
    res = store_client.post("/v1/runs", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 422


def test_runs_are_listed_newest_first_and_filtered_by_status_name_and_tag(
    store_client: TestClient,
) -> None:
    ids = [
        store_client.post("/v1/runs", json=run_body(name=f"n{i % 2}", tags=[f"t{i}"])).json()["id"]
        for i in range(3)
    ]
    page = store_client.get("/v1/runs", params={"limit": 2}).json()
    assert page["page"] == {"total": 3, "limit": 2, "offset": 0}
    assert [r["id"] for r in page["items"]] == ids[::-1][:2]
    assert store_client.get("/v1/runs", params={"name": "n0"}).json()["page"]["total"] == 2
    tagged = store_client.get("/v1/runs", params={"tag": "t1"}).json()["items"]
    assert [r["id"] for r in tagged] == [ids[1]]
    store_client.post(f"/v1/runs/{ids[0]}/cancel")
    cancelled = store_client.get("/v1/runs", params={"status": "cancelled"}).json()["items"]
    assert [r["id"] for r in cancelled] == [ids[0]]
    assert store_client.get("/v1/runs", params={"status": "bogus"}).status_code == 422


def test_cancelling_a_queued_run_is_immediate_and_idempotent(store_client: TestClient) -> None:
    run_id = store_client.post("/v1/runs", json=run_body()).json()["id"]
    res = store_client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 200
    assert res.json()["status"] == "cancelled" and res.json()["finished_at"]
    again = store_client.post(f"/v1/runs/{run_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_unknown_runs_are_404_problems(store_client: TestClient) -> None:
    for method, path in [
        ("GET", "/v1/runs/nope"),
        ("POST", "/v1/runs/nope/cancel"),
        ("GET", "/v1/runs/nope/metrics"),
        ("GET", "/v1/runs/nope/events"),
    ]:
        res = store_client.request(method, path)
        assert res.status_code == 404, (path, res.text)
        assert res.json()["field"] == "run_id"


def test_predicting_with_an_untrained_run_is_a_409(store_client: TestClient) -> None:
    run_id = store_client.post("/v1/runs", json=run_body()).json()["id"]
    res = store_client.post(f"/v1/runs/{run_id}/predict", json={"X": [[0.0, 0.0, 0.0]]})
    assert res.status_code == 409 and "no trained weights" in res.json()["detail"]


# -- external runs and the metric history ----------------------------------------------------------
def external_run(client: TestClient) -> str:
    res = client.post("/v1/runs", json={"task": "binary", "external": True, "name": "ext"})
    assert res.status_code == 202 and res.json()["status"] == "running"
    return str(res.json()["id"])


def log(client: TestClient, run_id: str, metrics: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(f"/v1/runs/{run_id}/metrics", json={"metrics": metrics, **extra})


def test_external_runs_log_batches_idempotently_and_end_with_a_status(
    store_client: TestClient,
) -> None:
    run_id = external_run(store_client)
    batch = [{"name": "loss", "step": s, "value": 1.0 / (s + 1)} for s in range(5)]
    batch.append({"name": "acc", "step": 0, "value": None, "timestamp": "2026-01-01T00:00:00"})
    assert log(store_client, run_id, batch).status_code == 200
    assert log(store_client, run_id, batch).status_code == 200  # a retry changes nothing
    items = store_client.get(f"/v1/runs/{run_id}/metrics").json()["items"]
    assert len(items) == 6
    assert items[0] == {
        "name": "acc",
        "step": 0,
        "value": None,
        "timestamp": "2026-01-01T00:00:00+00:00",
    }
    ended = log(
        store_client, run_id, [{"name": "loss", "step": 5, "value": 0.1}], status="succeeded"
    )
    assert ended.json()["status"] == "succeeded"
    late = log(store_client, run_id, [{"name": "loss", "step": 6, "value": 0.1}])
    assert late.status_code == 409
    assert store_client.post(f"/v1/runs/{run_id}/cancel").status_code == 409


def test_a_log_batch_over_the_limit_is_a_413_problem(store_client: TestClient) -> None:
    run_id = external_run(store_client)
    batch = [{"name": "m", "step": s, "value": 0.0} for s in range(1001)]
    res = log(store_client, run_id, batch)
    assert res.status_code == 413
    problem = res.json()
    assert problem["field"] == "metrics" and "limit is 1000" in problem["detail"]
    assert store_client.get(f"/v1/runs/{run_id}/metrics").json()["items"] == []


def test_runs_trained_here_refuse_logged_metrics(store_client: TestClient) -> None:
    run_id = store_client.post("/v1/runs", json=run_body()).json()["id"]
    res = log(store_client, run_id, [{"name": "m", "step": 0, "value": 1.0}])
    assert res.status_code == 409 and "external" in res.json()["detail"]


def test_bad_metrics_are_422(store_client: TestClient) -> None:
    run_id = external_run(store_client)
    assert log(store_client, run_id, [{"name": "m", "step": -1, "value": 1}]).status_code == 422
    assert log(store_client, run_id, [{"name": "", "step": 0, "value": 1}]).status_code == 422
    assert log(store_client, run_id, [{"name": "m", "value": 1, "x": 2}]).status_code == 422


def test_metric_history_pages_with_a_cursor_filters_names_and_answers_304_when_unchanged(
    store_client: TestClient,
) -> None:
    run_id = external_run(store_client)
    log(store_client, run_id, [{"name": n, "step": s, "value": s} for s in range(4) for n in "ab"])
    url = f"/v1/runs/{run_id}/metrics"
    first = store_client.get(url, params={"limit": 3})
    page = first.json()
    assert [(m["step"], m["name"]) for m in page["items"]] == [(0, "a"), (0, "b"), (1, "a")]
    assert page["has_more"] and page["status"] == "running"
    rest = store_client.get(url, params={"cursor": page["next_cursor"]}).json()
    assert (rest["items"][0]["step"], rest["items"][0]["name"]) == (1, "b")
    assert len(rest["items"]) == 5 and not rest["has_more"]

    only_b = store_client.get(url, params={"names": "b", "after_step": 1}).json()
    assert [(m["step"], m["name"]) for m in only_b["items"]] == [(2, "b"), (3, "b")]
    both = store_client.get(url, params=[("names", "a"), ("names", "b"), ("after_step", 2)])
    assert len(both.json()["items"]) == 2

    # A dashboard polling with the same cursor and ETag gets 304 until something changes.
    poll = {"cursor": rest["next_cursor"]}
    fresh = store_client.get(url, params=poll)
    assert fresh.json()["items"] == [] and fresh.json()["next_cursor"] == rest["next_cursor"]
    etag = fresh.headers["etag"]
    unchanged = store_client.get(url, params=poll, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == etag
    assert unchanged.content == b""
    log(store_client, run_id, [{"name": "a", "step": 4, "value": 4}])
    changed = store_client.get(url, params=poll, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [(m["step"], m["name"]) for m in changed.json()["items"]] == [(4, "a")]

    assert store_client.get(url, params={"cursor": "garbage!"}).status_code == 422


# -- runs trained by the in-process runner (committed databases, app with its lifespan) ------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with live_app(request, tmp_path_factory, events_poll_interval_s=0.05) as client:
        yield client


def wait_done(client: TestClient, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return wait_for(client, f"/v1/runs/{run_id}", timeout)


def read_events(client: TestClient, path: str, **headers: str) -> list[tuple[str, Any, str]]:
    """``(event, data, id)`` of a whole stream."""
    events: list[tuple[str, Any, str]] = []
    with client.stream("GET", path, headers=headers) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        block: dict[str, str] = {}
        for line in res.iter_lines():
            if line == "":
                if "event" in block:
                    events.append(
                        (block["event"], orjson.loads(block["data"]), block.get("id", ""))
                    )
                block = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                block[key] = value
    return events


def test_a_run_trains_in_process_and_dashboards_follow_it_to_a_prediction(
    live_client: TestClient,
) -> None:
    res = live_client.post("/v1/runs", json=run_body(epochs=4))
    assert res.status_code == 202
    run_id = res.json()["id"]
    events = read_events(live_client, f"/v1/runs/{run_id}/events")  # live, until the end

    run = wait_done(live_client, run_id)
    assert run["status"] == "succeeded", run["error"]
    assert run["progress"] == {"epoch": 4, "total_epochs": 4} and run["device"] == "cpu"
    assert run["duration_s"] > 0 and run["worker"].startswith("local:")

    steps = [data["step"] for kind, data, _ in events if kind == "metrics"]
    assert steps == [0, 1, 2, 3]
    metrics_event = next(data for kind, data, _ in events if kind == "metrics")
    assert {"train_loss", "val_loss", "roc_auc", "grad_norm/hidden0"} <= set(
        metrics_event["metrics"]
    )
    statuses = [data["status"] for kind, data, _ in events if kind == "status"]
    assert statuses[-1] == "succeeded" and events[-1][:2] == ("end", {"status": "succeeded"})

    # Reconnecting with Last-Event-ID resumes after the event it names.
    second_id = [i for kind, _, i in events if kind == "metrics"][1]
    resumed = read_events(live_client, f"/v1/runs/{run_id}/events", **{"Last-Event-ID": second_id})
    assert [d["step"] for kind, d, _ in resumed if kind == "metrics"] == [2, 3]

    history = live_client.get(f"/v1/runs/{run_id}/metrics", params={"names": "val_loss"}).json()
    assert [m["step"] for m in history["items"]] == [0, 1, 2, 3]
    assert history["status"] == "succeeded"

    evaluation = live_client.get(f"/v1/evaluations/{run['evaluation_id']}").json()
    assert evaluation["n_samples"] == run["summary"]["n_val"]
    threshold = run["summary"]["recommended_threshold"]["threshold"]

    X, _ = separable(5, seed=3)
    pred = live_client.post(f"/v1/runs/{run_id}/predict", json={"X": X})
    assert pred.status_code == 200, pred.text
    out = pred.json()
    assert len(out["probabilities"]) == 5 and out["threshold"] == threshold
    assert out["labels"] == [int(p >= threshold) for p in out["probabilities"]]
    assert len(out["calibrated_probabilities"]) == 5
    wrong = live_client.post(f"/v1/runs/{run_id}/predict", json={"X": [[0.0, 1.0]]})
    assert wrong.status_code == 422 and wrong.json()["field"] == "X"


def test_cancelling_a_running_run_stops_it_at_the_next_batch(live_client: TestClient) -> None:
    run_id = live_client.post("/v1/runs", json=run_body(epochs=100_000, batch_size=4)).json()["id"]
    deadline = time.monotonic() + 30
    while live_client.get(f"/v1/runs/{run_id}").json()["progress"]["epoch"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    res = live_client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 202 and res.json()["cancel_requested"]
    run = wait_done(live_client, run_id)
    assert run["status"] == "cancelled" and run["progress"]["epoch"] < 100_000
    again = live_client.post(f"/v1/runs/{run_id}/cancel")
    assert again.status_code == 200


def test_a_run_that_fails_in_the_worker_reports_why(live_client: TestClient) -> None:
    X = (np.random.default_rng(4).normal(size=(64, 2)) * 1e3).tolist()
    body = run_body(
        task="regression",
        data={"X": X, "y": [x[0] * 1e3 for x in X]},
        optimizer={"name": "sgd", "lr": 1e3},
        epochs=20,
    )
    run = wait_done(live_client, live_client.post("/v1/runs", json=body).json()["id"])
    assert run["status"] == "failed" and "non-finite loss" in run["error"]
