"""Inspections on a real Celery worker (Redis broker, PostgreSQL): the API queues the job after
its commit, the worker's ``evalserve.inspect`` task claims and runs it, the API reads the result."""

from __future__ import annotations

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
from tests.integration.conftest import REDIS_URL, connect_redis, forget_queues
from tests.integration.test_celery_runs import Worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def celery_stack(
    make_postgres_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    redis_client = connect_redis()
    url = make_postgres_database()
    prefix = f"evalserve-test-{uuid.uuid4().hex[:12]}"
    env = {
        "EVALSERVE_DATABASE_URL": url,
        "EVALSERVE_BROKER_URL": REDIS_URL,
        "EVALSERVE_GPU_QUEUE": f"{prefix}.gpu",
        "EVALSERVE_CPU_QUEUE": f"{prefix}.cpu",
    }
    worker = Worker(env, tmp_path_factory.mktemp("celery-inspect") / "worker.log")
    try:
        settings = Settings(
            database_url=url,
            broker_url=REDIS_URL,
            gpu_queue=env["EVALSERVE_GPU_QUEUE"],
            cpu_queue=env["EVALSERVE_CPU_QUEUE"],
        )
        with TestClient(create_app(settings)) as client:
            yield client, worker.log_path
    finally:
        worker.stop()
        forget_queues(redis_client, {env["EVALSERVE_GPU_QUEUE"], env["EVALSERVE_CPU_QUEUE"]})
        redis_client.close()


def _wait(client: TestClient, path: str, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while (doc := client.get(path).json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"{doc}\n{log_path.read_text(errors='replace')[-4000:]}"
        time.sleep(0.1)
    return dict(doc)


def test_an_inspection_runs_on_the_celery_worker(celery_stack: tuple[TestClient, Path]) -> None:
    client, log_path = celery_stack
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    body = {
        "task": "binary",
        "data": {"X": X.tolist(), "y": (X[:, 1] > 0).astype(int).tolist()},
        "model": {"hidden": [8]},
        "optimizer": {"name": "adam", "lr": 0.02},
        "epochs": 10,
        "device": "cpu",
    }
    run_id = client.post("/v1/runs", json=body).json()["id"]
    assert _wait(client, f"/v1/runs/{run_id}", log_path)["status"] == "succeeded"
    res = client.post(f"/v1/runs/{run_id}/importance", json={"n_repeats": 2})
    assert res.status_code == 202, res.text
    done = _wait(client, res.headers["location"], log_path)
    assert done["status"] == "succeeded", done
    assert done["result"]["features"][0]["name"] == "x1"
    assert b"evalserve.inspect" in log_path.read_bytes()
