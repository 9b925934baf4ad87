"""Fixtures of the integration tests that run the real commands as processes.

``redis_url``: the Redis server at 127.0.0.1:6379 (skipped locally, failed with ``CI=true``
when it is missing, like PostgreSQL in tests/conftest.py). ``spawn``: starts ``evalserve ...``
subprocesses (the console script the containers run) with a log file each, and kills any still
running when the test ends, pass or fail. ``fresh_queues``: queue names of the test's own, so
parallel test sessions sharing Redis never take each other's jobs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]


def _evalserve() -> list[str]:
    """The ``evalserve`` console script of this environment (what the images' entrypoint is)."""
    script = Path(sys.executable).parent / "evalserve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def connect_redis() -> redis.Redis:
    """A client of the Redis at :data:`REDIS_URL`; skipped locally, failed with ``CI=true``
    when it is not reachable (like PostgreSQL in tests/conftest.py)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        client.close()
        reason = f"Redis is not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}\nCI must start Redis before the tests.", pytrace=False)
        pytest.skip(reason)
    return client


def forget_queues(client: redis.Redis, queues: set[str]) -> None:
    """Delete these queues and their unacknowledged messages (left by a killed worker)."""
    client.delete(*queues)
    for tag, raw in client.hgetall("unacked").items():
        try:
            routing_key = json.loads(raw)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if routing_key in queues:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


@pytest.fixture(scope="session")
def redis_url() -> str:
    connect_redis().close()
    return REDIS_URL


@pytest.fixture
def fresh_queues(redis_url: str) -> Iterator[dict[str, str]]:
    """``EVALSERVE_GPU_QUEUE`` / ``EVALSERVE_CPU_QUEUE`` of the test's own; deleted after it,
    with any unacknowledged messages of theirs."""
    prefix = f"evalserve-test-{uuid.uuid4().hex[:12]}"
    env = {"EVALSERVE_GPU_QUEUE": f"{prefix}.gpu", "EVALSERVE_CPU_QUEUE": f"{prefix}.cpu"}
    yield env
    client = connect_redis()
    try:
        forget_queues(client, set(env.values()))
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """One ``evalserve`` process with its output in a log file."""

    def __init__(self, command: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def tail(self, n: int = 4000) -> str:
        return f"--- {' '.join(self.command[-3:])} log ---\n{self.log()[-n:]}"

    def wait_for_log(self, text: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            code = self.process.poll()
            assert code is None, f"exited with {code}\n{self.tail()}"
            assert time.monotonic() < deadline, f"no {text!r} in the log\n{self.tail()}"
            time.sleep(0.1)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (what ``docker stop`` sends) and the exit code; fails the test on a hang."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"did not exit within {timeout:g} s of SIGTERM\n{self.tail()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``spawn(*args, env=..., python=None) -> Service``: ``evalserve *args`` in a subprocess
    (``python``: run this code with ``python -c`` instead, for a patched server)."""
    started: list[Service] = []

    def start(*args: str, env: Mapping[str, str], python: str | None = None) -> Service:
        command = [sys.executable, "-c", python, *args] if python else [*_evalserve(), *args]
        name = f"{len(started)}-{args[0] if args else 'python'}.log"
        service = Service(command, env, tmp_path / name)
        started.append(service)
        return service

    yield start
    for service in started:
        service.kill()


def run_command(*args: str, env: Mapping[str, str], timeout: float = 120.0) -> str:
    """``evalserve *args`` to completion; its output. Fails the test on a non-zero exit."""
    done = subprocess.run(
        [*_evalserve(), *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"evalserve {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def evalserve_cli() -> Callable[..., str]:
    return run_command


@pytest.fixture
def port() -> int:
    return free_port()
