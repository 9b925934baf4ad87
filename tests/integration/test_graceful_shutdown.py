"""Graceful shutdown of the real processes: ``evalserve serve`` answers its in-flight requests
after SIGTERM and exits 0; an ``evalserve worker`` (prefork, as in the containers) receiving
SIGTERM mid-run checkpoints the run and leaves it queued, and another worker resumes it from
that epoch, with every epoch's metrics stored once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db import runs as repo
from app.db.session import dispose_engines, session_scope
from app.main import create_app

pytestmark = pytest.mark.integration

TERMINAL = {"succeeded", "failed", "cancelled"}

# `evalserve serve`, with the evaluation engine slowed down: it touches a marker file when a
# request reaches it (so SIGTERM is sent while that request is in flight), then takes 2 s.
SLOW_SERVER = """
import pathlib, sys, time
import app.services.evaluations as service
compute = service.compute_report
def slow(*args, **kwargs):
    pathlib.Path(sys.argv[-1]).touch()
    time.sleep(2.0)
    return compute(*args, **kwargs)
service.compute_report = slow
from app.cli import main
sys.exit(main(sys.argv[1:-1]))
"""

EVALUATION = {
    "task": "binary",
    "y_true": [0, 1, 1, 0, 1],
    "y_score": [0.2, 0.9, 0.6, 0.3, 0.4],
    "metrics": ["roc_auc"],
}


def test_the_api_drains_in_flight_requests_on_sigterm_and_exits_0(
    spawn: Callable[..., Any], port: int, tmp_path: Path
) -> None:
    marker = tmp_path / "request-started"
    env = {"EVALSERVE_DATABASE_URL": f"sqlite:///{tmp_path / 'drain.db'}"}
    server = spawn("serve", "--port", str(port), str(marker), env=env, python=SLOW_SERVER)
    server.wait_for_log("Application startup complete")
    base = f"http://127.0.0.1:{port}"
    results: list[httpx.Response] = []

    def slow_request() -> None:
        results.append(httpx.post(f"{base}/v1/evaluations", json=EVALUATION, timeout=30))

    client = threading.Thread(target=slow_request)
    client.start()
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, server.tail()
        time.sleep(0.02)
    started = time.monotonic()
    code = server.terminate(timeout=30)
    client.join(timeout=30)

    assert code == 0, server.tail()
    assert len(results) == 1, server.tail()
    res = results[0]
    assert res.status_code == 200, res.text
    assert res.json()["metrics"]["roc_auc"] == pytest.approx(1.0)
    assert time.monotonic() - started > 1.0  # it waited for the request, not cut it
    log = server.log()
    assert "Waiting for connections to close" in log and "Traceback" not in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=2)


def _run_body(epochs: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    return {
        "task": "binary",
        "name": "sigterm",
        "data": {"X": X.tolist(), "y": (X[:, 0] - X[:, 2] > 0).astype(int).tolist()},
        "model": {"hidden": [16]},
        "epochs": epochs,
        "batch_size": 16,
        "device": "cpu",
    }


def _wait(client: TestClient, run_id: str, done: Callable[[dict], bool], log: str = "") -> dict:
    deadline = time.monotonic() + 120
    while not done(run := client.get(f"/v1/runs/{run_id}").json()):
        assert time.monotonic() < deadline, f"{run}\n{log}"
        time.sleep(0.05)
    return dict(run)


def test_sigterm_to_a_worker_checkpoints_its_run_and_another_worker_resumes_it(
    spawn: Callable[..., Any],
    make_postgres_database: Callable[..., str],
    redis_url: str,
    fresh_queues: dict[str, str],
) -> None:
    url = make_postgres_database()
    env = {"EVALSERVE_DATABASE_URL": url, "EVALSERVE_BROKER_URL": redis_url, **fresh_queues}
    settings = Settings(
        database_url=url,
        broker_url=redis_url,
        gpu_queue=fresh_queues["EVALSERVE_GPU_QUEUE"],
        cpu_queue=fresh_queues["EVALSERVE_CPU_QUEUE"],
    )
    epochs = 16
    first = spawn("worker", "--hostname", "first@%h", env=env)  # prefork, as in the images
    first.wait_for_log(" ready.")
    try:
        with TestClient(create_app(settings)) as client:
            run_id = client.post("/v1/runs", json=_run_body(epochs)).json()["id"]
            _wait(client, run_id, lambda r: r["progress"]["epoch"] >= 2, first.tail())
            assert first.terminate(timeout=60) == 0, first.tail()

            run = client.get(f"/v1/runs/{run_id}").json()
            assert run["status"] == "queued", f"{run}\n{first.tail()}"
            assert run["attempts"] == 1 and run["worker"] is None and run["error"] is None
            reached = run["progress"]["epoch"]
            assert 2 <= reached < epochs
            with session_scope(settings, write=False) as session:
                blob, checkpoint_epoch = repo.get_checkpoint(session, run_id)
            assert blob and checkpoint_epoch == reached
            kept = client.get(f"/v1/runs/{run_id}/metrics", params={"names": "train_loss"})
            assert [m["step"] for m in kept.json()["items"]] == list(range(reached))

            # The task was sent again before the first worker exited: a new one picks it up.
            second = spawn("worker", "--hostname", "second@%h", env=env)
            run = _wait(client, run_id, lambda r: r["status"] in TERMINAL, second.tail())
            assert run["status"] == "succeeded", f"{run['error']}\n{second.tail()}"
            assert run["attempts"] == 2 and run["worker"].startswith("celery:second@")
            assert run["summary"]["epochs_completed"] == epochs
            history = client.get(f"/v1/runs/{run_id}/metrics", params={"limit": 10_000}).json()
            steps: dict[str, list[int]] = {}
            for m in history["items"]:
                steps.setdefault(m["name"], []).append(m["step"])
            assert steps["train_loss"] == steps["val_loss"] == list(range(epochs))
            assert second.terminate(timeout=60) == 0, second.tail()
    finally:
        dispose_engines(url)
