"""Real components end to end: the API (TestClient, with its lifespan: Celery dispatcher and
reaper) + PostgreSQL + Redis + a Celery worker process started here with ``evalserve worker``.

Each test stack uses its own queue names, so parallel test sessions sharing the Redis server do
not steal each other's jobs. Redis and PostgreSQL missing: skipped locally, failed when
``CI=true`` (as tests/conftest.py does for PostgreSQL).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.integration.conftest import REDIS_URL, Service, connect_redis, forget_queues

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "cancelled"}


Stack = tuple[Settings, dict[str, str]]


@pytest.fixture(scope="module")
def database_url(make_postgres_database: Callable[..., str]) -> str:
    return make_postgres_database()


@pytest.fixture(scope="module")
def make_stack(database_url: str) -> Iterator[Callable[[], Stack]]:
    """``make_stack() -> (settings, worker environment)`` with fresh queue names."""
    client = connect_redis()
    queues: set[str] = set()

    def make() -> Stack:
        prefix = f"evalserve-test-{uuid.uuid4().hex[:12]}"
        fast = {
            "heartbeat_interval_s": "0.2",
            "heartbeat_timeout_s": "2",
            "reaper_interval_s": "0.3",
        }
        env = {
            "EVALSERVE_DATABASE_URL": database_url,
            "EVALSERVE_BROKER_URL": REDIS_URL,
            "EVALSERVE_GPU_QUEUE": f"{prefix}.gpu",
            "EVALSERVE_CPU_QUEUE": f"{prefix}.cpu",
            **{f"EVALSERVE_{k.upper()}": v for k, v in fast.items()},
        }
        queues.update({env["EVALSERVE_GPU_QUEUE"], env["EVALSERVE_CPU_QUEUE"]})
        settings = Settings(
            database_url=database_url,
            broker_url=REDIS_URL,
            gpu_queue=env["EVALSERVE_GPU_QUEUE"],
            cpu_queue=env["EVALSERVE_CPU_QUEUE"],
            **fast,  # type: ignore[arg-type]
        )
        return settings, env

    yield make
    forget_queues(client, queues)
    client.close()


class Worker(Service):
    """``python -m app.cli worker --pool solo`` (= ``evalserve worker``) in a subprocess, ready
    to take jobs."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        command = [sys.executable, "-m", "app.cli", "worker", "--pool", "solo"]
        command += ["--loglevel", "info", "--hostname", self.name]
        super().__init__(command, env, log_path)
        self.wait_for_log(" ready.")

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it has not exited 30 s later (tests that kill it on purpose
        call this too, so no exit code is asserted)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        self.kill()


@pytest.fixture(scope="module")
def celery_client(
    make_stack: Callable[[], Stack], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The API and one worker, sharing a PostgreSQL database and a pair of queues."""
    settings, env = make_stack()
    worker = Worker(env, tmp_path_factory.mktemp("celery") / "worker.log")
    try:
        with TestClient(create_app(settings)) as client:
            client.worker = worker  # type: ignore[attr-defined]
            yield client
    finally:
        worker.stop()


def run_body(**overrides: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    body: dict[str, Any] = {
        "task": "binary",
        "name": "celery-run",
        "data": {"X": X.tolist(), "y": (X[:, 0] - X[:, 2] > 0).astype(int).tolist()},
        "model": {"hidden": [16]},
        "epochs": 5,
        "batch_size": 32,
        "device": "cpu",
    }
    body.update(overrides)
    return body


def wait_for(client: TestClient, run_id: str, done: Callable[[dict], bool], worker: Worker) -> dict:
    deadline = time.monotonic() + 90
    while not done(run := client.get(f"/v1/runs/{run_id}").json()):
        assert time.monotonic() < deadline, f"{run}\n--- worker log ---\n{worker.tail()}"
        time.sleep(0.1)
    return dict(run)


def test_a_run_trains_on_the_celery_worker_and_a_dashboard_polls_its_history(
    celery_client: TestClient,
) -> None:
    worker: Worker = celery_client.worker  # type: ignore[attr-defined]
    res = celery_client.post("/v1/runs", json=run_body())
    assert res.status_code == 202 and res.json()["status"] == "queued"
    run_id = res.json()["id"]

    # Poll like a dashboard: only what is new (cursor), 304 while nothing changed (ETag).
    seen: list[dict[str, Any]] = []
    cursor, etag, not_modified = None, None, 0
    deadline = time.monotonic() + 90
    while True:
        params = {"names": "train_loss,val_loss,roc_auc"} | ({"cursor": cursor} if cursor else {})
        headers = {"If-None-Match": etag} if etag else {}
        page = celery_client.get(f"/v1/runs/{run_id}/metrics", params=params, headers=headers)
        if page.status_code == 304:
            not_modified += 1
        else:
            assert page.status_code == 200, page.text
            body = page.json()
            seen += body["items"]
            cursor, etag = body["next_cursor"] or cursor, page.headers["etag"]
            if body["status"] in TERMINAL and not body["has_more"]:
                break
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.05)

    run = celery_client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded", f"{run['error']}\n{worker.tail()}"
    assert run["worker"].startswith("celery:test-") and run["attempts"] == 1
    assert run["progress"] == {"epoch": 5, "total_epochs": 5} and run["device"] == "cpu"
    steps: dict[str, list[int]] = {}
    for m in seen:
        steps.setdefault(m["name"], []).append(m["step"])
        assert m["value"] is None or np.isfinite(m["value"])
    assert steps == {name: [0, 1, 2, 3, 4] for name in ("roc_auc", "train_loss", "val_loss")}
    assert not_modified > 0  # polls between epochs cost one narrow query and no body

    full = celery_client.get(f"/v1/runs/{run_id}/metrics", params={"limit": 10_000}).json()
    names = {m["name"] for m in full["items"]}
    assert {"lr", "epoch_time_s", "samples_per_s", "grad_norm/hidden0", "brier", "ece"} <= names
    assert celery_client.get(f"/v1/evaluations/{run['evaluation_id']}").status_code == 200
    pred = celery_client.post(f"/v1/runs/{run_id}/predict", json={"X": [[1.0, 0.0, -1.0, 0.0]]})
    assert pred.status_code == 200 and pred.json()["labels"] == [1]


def test_cancelling_a_run_on_the_celery_worker_stops_it_at_a_batch_boundary(
    celery_client: TestClient,
) -> None:
    worker: Worker = celery_client.worker  # type: ignore[attr-defined]
    body = run_body(epochs=100_000, batch_size=8)
    run_id = celery_client.post("/v1/runs", json=body).json()["id"]
    wait_for(celery_client, run_id, lambda r: r["progress"]["epoch"] >= 2, worker)
    res = celery_client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 202 and res.json()["cancel_requested"]
    run = wait_for(celery_client, run_id, lambda r: r["status"] in TERMINAL, worker)
    assert run["status"] == "cancelled" and 2 <= run["progress"]["epoch"] < 100_000
    assert run["summary"]["stopped"] == "cancelled"


def test_a_worker_killed_mid_run_leaves_the_run_failed_by_the_reaper(
    make_stack: Callable[[], Stack], tmp_path: Path
) -> None:
    settings, env = make_stack()  # queues of its own: only the worker killed here serves them
    worker = Worker(env, tmp_path / "doomed.log")
    try:
        with TestClient(create_app(settings)) as client:
            run_id = client.post("/v1/runs", json=run_body(epochs=100_000, batch_size=8)).json()[
                "id"
            ]
            wait_for(client, run_id, lambda r: r["progress"]["epoch"] >= 1, worker)
            worker.process.send_signal(signal.SIGKILL)
            worker.process.wait(timeout=10)
            run = wait_for(client, run_id, lambda r: r["status"] in TERMINAL, worker)
    finally:
        worker.stop()
    assert run["status"] == "failed"
    assert "stopped sending heartbeats" in run["error"] and run["finished_at"]


def test_a_leave_one_domain_out_run_fans_out_over_the_celery_worker(
    celery_client: TestClient,
) -> None:
    worker: Worker = celery_client.worker  # type: ignore[attr-defined]
    body = run_body(name="celery-domains", epochs=3)
    body["validation"] = {"leave_one_domain_out": True, "groups": ["north", "south"] * 100}
    res = celery_client.post("/v1/runs", json=body)
    assert res.status_code == 202, res.text
    parent = wait_for(celery_client, res.json()["id"], lambda r: r["status"] in TERMINAL, worker)
    assert parent["status"] == "succeeded", f"{parent['error']}\n{worker.tail()}"
    children = celery_client.get("/v1/runs", params={"parent_id": parent["id"]}).json()["items"]
    assert len(children) == 3
    assert all(c["worker"].startswith("celery:test-") for c in children)
    dv = parent["summary"]["domain_validation"]
    assert [d["domain"] for d in dv["domains"]] == ["north", "south"]
    assert {d["n_val"] for d in dv["domains"]} == {100}
    roc_aucs = [d["metrics"]["roc_auc"] for d in dv["domains"]]
    assert dv["weighted_mean"]["roc_auc"] == pytest.approx(np.mean(roc_aucs), rel=1e-12)
