"""Operational limits: concurrent training runs per API key (429, race-safe on both backends)
and request timeouts (503 at the deadline, the work abandoned and nothing stored)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import get_db
from app.api.timeouts import TimeoutMiddleware
from app.config import Settings
from app.db.api_keys import create_api_key
from app.db.migrate import upgrade_to_head
from app.db.models import Run
from app.db.session import dispose_engines, get_session, session_scope
from app.main import create_app
from app.services import evaluations as evaluation_service

PROBLEM = "application/problem+json"


def run_body(**overrides: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    body: dict[str, Any] = {
        "task": "binary",
        "data": {"X": X.tolist(), "y": (X[:, 0] > 0).astype(int).tolist()},
        "model": {"hidden": [4]},
        "epochs": 2,
        "device": "cpu",
    }
    body.update(overrides)
    return body


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# -- concurrent runs per key (in the test's rolled-back transaction) -------------------------------
@pytest.fixture
def limited(db_url: str, db_sessionmaker: sessionmaker[Session]) -> TestClient:
    """Auth on, at most 2 runs per key; no lifespan, so no runner: runs stay queued."""
    settings = Settings(database_url=db_url, auth="on", max_concurrent_runs_per_key=2)
    app = create_app(settings)

    def joined_session() -> Iterator[Session]:
        yield from get_session(factory=db_sessionmaker)

    app.dependency_overrides[get_db] = joined_session
    return TestClient(app)


@pytest.fixture
def new_key(db_sessionmaker: sessionmaker[Session]) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        with db_sessionmaker.begin() as session:
            key, secret = create_api_key(session, name="limits")
            return key.id, secret

    return make


def test_a_key_over_its_concurrent_run_limit_gets_a_429_problem(
    limited: TestClient,
    new_key: Callable[[], tuple[str, str]],
    db_sessionmaker: sessionmaker[Session],
) -> None:
    key_id, secret = new_key()
    first, second = (
        limited.post("/v1/runs", json=run_body(), headers=_bearer(secret)) for _ in range(2)
    )
    assert first.status_code == second.status_code == 202, first.text
    with db_sessionmaker() as session:
        owners = session.scalars(select(Run.api_key_id).where(Run.id == first.json()["id"]))
        assert list(owners) == [key_id]  # the run records the key that made it

    res = limited.post("/v1/runs", json=run_body(), headers=_bearer(secret))
    assert res.status_code == 429 and res.headers["content-type"] == PROBLEM
    assert int(res.headers["retry-after"]) > 0
    problem = res.json()
    assert problem["title"] == "Too many requests" and problem["status"] == 429
    assert "2 training runs queued or running" in problem["detail"]

    # Another key has its own budget; external runs (no worker) are not counted.
    _, other = new_key()
    assert limited.post("/v1/runs", json=run_body(), headers=_bearer(other)).status_code == 202
    external = {"task": "binary", "external": True}
    assert limited.post("/v1/runs", json=external, headers=_bearer(secret)).status_code == 202

    # A cancelled run frees its slot; so does a finished one.
    assert limited.post(f"/v1/runs/{first.json()['id']}/cancel", headers=_bearer(secret)).is_success
    assert limited.post("/v1/runs", json=run_body(), headers=_bearer(secret)).status_code == 202
    assert limited.post("/v1/runs", json=run_body(), headers=_bearer(secret)).status_code == 429
    with db_sessionmaker.begin() as session:
        session.execute(update(Run).where(Run.id == second.json()["id"]).values(status="succeeded"))
    assert limited.post("/v1/runs", json=run_body(), headers=_bearer(secret)).status_code == 202


def test_a_domain_validation_parent_is_not_counted_its_children_are(
    db_url: str, db_sessionmaker: sessionmaker[Session], new_key: Callable[[], tuple[str, str]]
) -> None:
    settings = Settings(database_url=db_url, auth="on", max_concurrent_runs_per_key=4)
    app = create_app(settings)

    def joined_session() -> Iterator[Session]:
        yield from get_session(factory=db_sessionmaker)

    app.dependency_overrides[get_db] = joined_session
    client = TestClient(app)
    _, secret = new_key()
    lodo = run_body(validation={"leave_one_domain_out": True, "groups": ["a", "b"] * 20})
    res = client.post("/v1/runs", json=lodo, headers=_bearer(secret))
    assert res.status_code == 202, res.text  # a parent and 3 children: one per domain, one random
    assert client.post("/v1/runs", json=run_body(), headers=_bearer(secret)).status_code == 202
    assert client.post("/v1/runs", json=run_body(), headers=_bearer(secret)).status_code == 429


def test_without_auth_runs_are_not_limited(
    db_url: str, db_sessionmaker: sessionmaker[Session]
) -> None:
    app = create_app(Settings(database_url=db_url, max_concurrent_runs_per_key=1))

    def joined_session() -> Iterator[Session]:
        yield from get_session(factory=db_sessionmaker)

    app.dependency_overrides[get_db] = joined_session
    client = TestClient(app)
    assert all(client.post("/v1/runs", json=run_body()).status_code == 202 for _ in range(3))


# -- the same, raced by concurrent requests on committed databases ---------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def committed_url(
    request: pytest.FixtureRequest, tmp_path: Path, make_postgres_database: Callable[..., str]
) -> Iterator[str]:
    """A database of the test's own: concurrent requests need separate transactions."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'limits.db'}"
        upgrade_to_head(url)
    else:
        url = make_postgres_database()
    yield url
    dispose_engines(url)


def test_concurrent_submissions_of_one_key_cannot_pass_the_limit_together(
    committed_url: str,
) -> None:
    settings = Settings(database_url=committed_url, auth="on", max_concurrent_runs_per_key=2)
    with session_scope(settings) as session:
        _, secret = create_api_key(session, name="racer")
    client = TestClient(create_app(settings))  # no lifespan: the runs stay queued
    barrier = threading.Barrier(8)

    def submit(_: int) -> int:
        barrier.wait()
        return client.post("/v1/runs", json=run_body(), headers=_bearer(secret)).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(submit, range(8)))
    assert codes == [202, 202, *[429] * 6]
    with session_scope(settings, write=False) as session:
        assert len(list(session.scalars(select(Run.id)))) == 2


# -- request timeouts ------------------------------------------------------------------------------
EVALUATION = {
    "task": "binary",
    "y_true": [0, 1, 1, 0],
    "y_score": [0.1, 0.8, 0.6, 0.3],
    "metrics": ["roc_auc"],
    "persist": True,
}


def test_a_request_past_its_timeout_gets_a_503_and_its_work_is_abandoned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'timeouts.db'}"
    upgrade_to_head(url)
    release, finished = threading.Event(), threading.Event()
    compute = evaluation_service.compute_report

    def slow_compute(*args: Any, **kwargs: Any) -> Any:
        # Blocks (the compute thread cannot be interrupted) until the test lets it go.
        try:
            assert release.wait(30), "the test never released the compute thread"
            return compute(*args, **kwargs)
        finally:
            finished.set()

    monkeypatch.setattr(evaluation_service, "compute_report", slow_compute)
    app = create_app(Settings(database_url=url, request_timeout_s=0.3))
    try:
        with TestClient(app) as client:
            res = client.post("/v1/evaluations", json=EVALUATION)
            assert res.status_code == 503 and res.headers["content-type"] == PROBLEM
            assert res.headers["retry-after"] and res.headers["x-request-id"]
            problem = res.json()
            assert problem["title"] == "Request timed out"
            assert "within 0.3 s" in problem["detail"]
            assert not finished.is_set()  # answered at the deadline, not when the thread ended

            middleware = _timeout_middleware(app)
            assert middleware.abandoned == 1
            release.set()
            assert finished.wait(10)
            _wait(lambda: middleware.abandoned == 0)
            # The abandoned request stored nothing; the next requests are served normally.
            assert client.get("/v1/evaluations").json()["page"]["total"] == 0
            res = client.post("/v1/evaluations", json=EVALUATION)
            assert res.status_code == 201, res.text
            assert client.get("/v1/evaluations").json()["page"]["total"] == 1
    finally:
        release.set()
        dispose_engines(url)


def test_a_started_stream_is_not_cut_by_the_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stream.db'}"
    upgrade_to_head(url)
    settings = Settings(database_url=url, request_timeout_s=0.2, events_poll_interval_s=0.05)
    try:
        with TestClient(create_app(settings)) as client:
            run = client.post("/v1/runs", json={"task": "binary", "external": True}).json()

            def finish_later() -> None:
                threading.Event().wait(0.5)  # past the timeout, while the stream is open
                metrics = {"metrics": [], "status": "succeeded"}
                client.post(f"/v1/runs/{run['id']}/metrics", json=metrics)

            threading.Thread(target=finish_later).start()
            with client.stream("GET", f"/v1/runs/{run['id']}/events") as stream:
                assert stream.status_code == 200
                body = b"".join(stream.iter_bytes())
    finally:
        dispose_engines(url)
    assert b"event: end" in body and b'"succeeded"' in body


def _timeout_middleware(app: Any) -> TimeoutMiddleware:
    stack = app.middleware_stack
    while stack is not None and not isinstance(stack, TimeoutMiddleware):
        stack = getattr(stack, "app", None)
    assert isinstance(stack, TimeoutMiddleware)
    return stack


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        done.wait(0.02)
    raise AssertionError("condition not met in time")
