"""PostgreSQL restarts under a running API: the requests after it succeed at once (the pool
pre-pings and replaces the dead connections) and nothing that was stored is lost.

Restarting the server needs ``pg_ctlcluster`` (Debian's postgresql-common) and the rights to
use it (root or postgres). Missing: skipped locally, failed with ``CI=true``. The server is
started again in ``finally`` if it is not running, whatever the test did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.session import dispose_engines
from app.main import create_app

pytestmark = pytest.mark.integration

CLUSTERS = Path("/etc/postgresql")


def _cluster() -> list[str]:
    """``pg_ctlcluster --skip-systemctl-redirect <version> main``, or skip / fail."""
    versions = sorted(p.name for p in CLUSTERS.iterdir()) if CLUSTERS.is_dir() else []
    problem = None
    if shutil.which("pg_ctlcluster") is None or not versions:
        problem = "pg_ctlcluster and a cluster under /etc/postgresql are needed"
    elif os.geteuid() != 0:
        problem = "restarting PostgreSQL needs root"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI must provide them", pytrace=False)
        pytest.skip(problem)
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _ctl(cluster: list[str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cluster, action], capture_output=True, text=True, timeout=120, check=False
    )


def _accepts_connections() -> bool:
    try:
        psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture
def cluster(make_postgres_database: Callable[..., str]) -> Iterator[list[str]]:
    """The cluster's control command; PostgreSQL is running again when the test ends."""
    command = _cluster()
    try:
        yield command
    finally:
        if _ctl(command, "status").returncode != 0:
            _ctl(command, "start")
        deadline = time.monotonic() + 60
        while not _accepts_connections():
            assert time.monotonic() < deadline, "PostgreSQL did not come back"
            time.sleep(0.2)


def test_requests_succeed_after_a_postgres_restart_and_nothing_stored_is_lost(
    cluster: list[str], make_postgres_database: Callable[..., str]
) -> None:
    url = make_postgres_database()
    settings = Settings(database_url=url)  # in-process runner: the API trains the run itself
    rng = np.random.default_rng(0)
    try:
        with TestClient(create_app(settings)) as client:
            ids = []
            for i in range(5):
                y = rng.integers(0, 2, size=50)
                body = {
                    "task": "binary",
                    "y_true": y.tolist(),
                    "y_score": rng.random(50).tolist(),
                    "persist": True,
                    "name": f"before-restart-{i}",
                }
                res = client.post("/v1/evaluations", json=body)
                assert res.status_code == 201, res.text
                ids.append(res.json()["id"])
            X = rng.normal(size=(100, 3))
            run = {
                "task": "binary",
                "data": {"X": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()},
                "model": {"hidden": [4]},
                "epochs": 3,
                "device": "cpu",
            }
            run_id = client.post("/v1/runs", json=run).json()["id"]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/runs/{run_id}").json()["status"] != "succeeded":
                assert time.monotonic() < deadline, client.get(f"/v1/runs/{run_id}").json()
                time.sleep(0.1)
            # The five posted reports and the run's final one.
            evaluations = client.get("/v1/evaluations", params={"limit": 100}).json()
            assert evaluations["page"]["total"] == 6
            assert set(ids) < {item["id"] for item in evaluations["items"]}
            metrics_before = client.get(f"/v1/runs/{run_id}/metrics", params={"limit": 10_000})
            stored_metrics = metrics_before.json()["items"]
            assert len(stored_metrics) > 3

            restarted = _ctl(cluster, "restart")
            assert restarted.returncode == 0, restarted.stderr
            assert _accepts_connections()

            # No retry loop: the first request after the restart must succeed.
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert client.get("/v1/evaluations", params={"limit": 100}).json() == evaluations
            assert all(client.get(f"/v1/evaluations/{i}").status_code == 200 for i in ids)
            metrics_after = client.get(f"/v1/runs/{run_id}/metrics", params={"limit": 10_000})
            assert metrics_after.json()["items"] == stored_metrics
            assert client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
            again = client.post(
                "/v1/evaluations",
                json={"task": "binary", "y_true": [0, 1], "y_score": [0.2, 0.7], "persist": True},
            )
            assert again.status_code == 201, again.text
            assert client.get("/v1/evaluations").json()["page"]["total"] == 7
    finally:
        dispose_engines(url)
