"""A real ``evalserve serve`` process for the HTTP figures of the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx2 as httpx


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, workdir: str) -> subprocess.Popen[bytes]:
    """``evalserve serve`` (uvicorn) on loopback, on a SQLite file in ``workdir``; waits for it."""
    env = dict(os.environ)
    env.update(
        EVALSERVE_DATABASE_URL=f"sqlite:///{workdir}/bench.db",
        EVALSERVE_PORT=str(port),
        EVALSERVE_LOG_LEVEL="warning",
    )
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")
