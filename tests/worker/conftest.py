"""Fixtures for the worker tests: committed databases (workers open their own connections, so
the rolled-back ``db_session`` of tests/conftest.py cannot be used) and a run factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from app.api.schemas.runs import RunCreate
from app.config import Settings
from app.db.migrate import upgrade_to_head
from app.db.session import dispose_engines, session_scope
from app.services import runs as service

FAST = {
    "heartbeat_interval_s": 0.1,
    "heartbeat_timeout_s": 1.0,
    "reaper_interval_s": 0.1,
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def worker_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database per test module and backend, written by real commits."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('worker') / 'runs.db'}"
        upgrade_to_head(url)
        yield url
        dispose_engines(url)
    else:
        yield str(request.getfixturevalue("make_postgres_database")())


@pytest.fixture
def settings(worker_db_url: str) -> Settings:
    return Settings(database_url=worker_db_url, **FAST)


def separable(n: int = 200, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A binary problem a linear model separates."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] - X[:, 1] > 0).astype(int)


@pytest.fixture
def make_run(settings: Settings) -> Callable[..., str]:
    """``make_run(**request_fields) -> run id``: a queued binary run, committed."""

    def make(**fields: Any) -> str:
        X, y = separable()
        body: dict[str, Any] = {
            "task": "binary",
            "data": {"X": X.tolist(), "y": y.tolist()},
            "model": {"hidden": [8]},
            "epochs": 3,
            "batch_size": 64,
            "device": "cpu",
        }
        body.update(fields)
        with session_scope(settings) as session:
            return service.create_run(session, RunCreate.model_validate(body), settings).id

    return make
