"""The containers' exact commands, run here as processes: ``evalserve migrate`` on a fresh
PostgreSQL database, ``evalserve keys create``, then ``evalserve serve`` and ``evalserve worker``
against that database and Redis with the compose file's environment (auth on). One evaluation
and one short training run go through real HTTP; SIGTERM then stops both with exit code 0.

The commands and the environment are read from docker-compose.yml, so the test follows the file.
What differs, and why: the API binds 127.0.0.1 on a free port instead of 0.0.0.0:8000 (tests
run side by side), the URLs point at the servers here, and the queue names are the test's own
(parallel test sessions share Redis).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.integration

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
TERMINAL = {"succeeded", "failed", "cancelled"}


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def _default(value: str) -> str:
    """A compose value with its ``${VAR:-default}`` interpolations resolved to the defaults."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _api_command(command: list[str], port: int) -> list[str]:
    args = list(command)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    return args


def test_the_containers_commands_serve_an_evaluation_and_train_a_run_end_to_end(
    make_postgres_database: Callable[..., str],
    redis_url: str,
    fresh_queues: dict[str, str],
    spawn: Callable[..., Any],
    evalserve_cli: Callable[..., str],
    port: int,
) -> None:
    compose = _compose()
    services = compose["services"]
    environment = {k: _default(str(v)) for k, v in compose["x-evalserve-environment"].items()}
    assert set(environment) == {
        "EVALSERVE_DATABASE_URL",
        "EVALSERVE_BROKER_URL",
        "EVALSERVE_LOG_LEVEL",
        "EVALSERVE_AUTH",
    }, "docker-compose.yml's environment changed: update this test"
    assert environment["EVALSERVE_AUTH"] == "on"
    env = {
        **environment,
        "EVALSERVE_DATABASE_URL": make_postgres_database(migrate=False),
        "EVALSERVE_BROKER_URL": redis_url,
        **fresh_queues,
    }

    # migrate (one-shot), then a key, as the README tells operators to
    assert "database schema is at head" in evalserve_cli(*services["migrate"]["command"], env=env)
    created = evalserve_cli("keys", "create", "--name", "deploy-test", env=env)
    secret = re.search(r"^secret:\s+(\S+)$", created, re.M)
    assert secret is not None, created
    auth = {"Authorization": f"Bearer {secret.group(1)}"}

    api = spawn(*_api_command(services["api"]["command"], port), env=env)
    worker = spawn(*services["worker"]["command"], env=env)
    api.wait_for_log("Application startup complete")
    worker.wait_for_log(" ready.")

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["database"] == "postgresql"

        evaluation = {
            "task": "binary",
            "y_true": [0, 1, 1, 0, 1, 0],
            "y_score": [0.1, 0.9, 0.7, 0.4, 0.6, 0.2],
            "metrics": ["roc_auc", "f1"],
            "persist": True,
            "model": "deploy-test",
        }
        assert http.post("/v1/evaluations", json=evaluation).status_code == 401
        stored = http.post("/v1/evaluations", json=evaluation, headers=auth)
        assert stored.status_code == 201, stored.text
        fetched = http.get(stored.headers["location"], headers=auth)
        assert fetched.status_code == 200
        assert fetched.json()["metrics"] == stored.json()["metrics"]
        assert fetched.json()["metrics"]["roc_auc"] == pytest.approx(1.0)

        rng = np.random.default_rng(0)
        X = rng.normal(size=(120, 3))
        run_body = {
            "task": "binary",
            "data": {"X": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()},
            "model": {"hidden": [8]},
            "epochs": 3,
            "device": "cpu",
        }
        created_run = http.post("/v1/runs", json=run_body, headers=auth)
        assert created_run.status_code == 202, created_run.text
        run_id = created_run.json()["id"]
        deadline = time.monotonic() + 120
        while (run := http.get(f"/v1/runs/{run_id}", headers=auth).json())[
            "status"
        ] not in TERMINAL:
            assert time.monotonic() < deadline, f"{run}\n{worker.tail()}"
            time.sleep(0.1)
        assert run["status"] == "succeeded", f"{run['error']}\n{worker.tail()}"
        assert run["worker"].startswith("celery:") and run["progress"]["epoch"] == 3
        history = http.get(f"/v1/runs/{run_id}/metrics", params={"names": "val_loss"}, headers=auth)
        assert [m["step"] for m in history.json()["items"]] == [0, 1, 2]
        predicted = http.post(f"/v1/runs/{run_id}/predict", json={"X": [[2.0, 0, 0]]}, headers=auth)
        assert predicted.status_code == 200 and predicted.json()["labels"] == [1]
        assert "evalserve_http_requests_total" in http.get("/metrics").text

    assert worker.terminate() == 0, worker.tail()
    assert api.terminate() == 0, api.tail()
    for service in (api, worker):
        assert "Traceback" not in service.log(), service.tail()
