"""The ``evalserve`` command: ``serve``, ``migrate`` and ``worker``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.config import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.db.migrate import upgrade_to_head

    settings = get_settings()
    if not args.no_migrate and settings.database_url.startswith("sqlite"):
        # The embedded default must work with one command: create the SQLite schema on start.
        upgrade_to_head(settings.database_url)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        workers=args.workers,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade_to_head

    upgrade_to_head(get_settings().database_url)
    print("database schema is at head")
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.broker_url:
        print(
            "evalserve worker needs a broker: set EVALSERVE_BROKER_URL (redis://host:6379/0). "
            "Without one, `evalserve serve` trains runs in-process.",
            file=sys.stderr,
        )
        return 2
    from app.worker.celery_app import celery_app

    queues = args.queues or f"{settings.gpu_queue},{settings.cpu_queue}"
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={args.concurrency or settings.worker_concurrency}",
        f"--pool={args.pool}",
        "--prefetch-multiplier=1",  # one job at a time per process (one per GPU)
        f"--loglevel={args.loglevel or settings.log_level}",
        "--without-gossip",
        "--without-mingle",
    ]
    if args.hostname:
        argv.append(f"--hostname={args.hostname}")
    celery_app.worker_main(argv)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evalserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", default=None, help="bind address (EVALSERVE_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (EVALSERVE_PORT)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not create/upgrade the SQLite schema on start",
    )
    serve.set_defaults(func=_serve)
    migrate = sub.add_parser("migrate", help="upgrade the database schema (alembic upgrade head)")
    migrate.set_defaults(func=_migrate)
    worker = sub.add_parser(
        "worker",
        help="run a Celery worker that trains runs (prefetch 1, acks late; EVALSERVE_BROKER_URL)",
    )
    worker.add_argument(
        "--queues",
        default=None,
        help="comma-separated queues (default: EVALSERVE_GPU_QUEUE,EVALSERVE_CPU_QUEUE)",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="jobs at once (EVALSERVE_WORKER_CONCURRENCY; 1 per GPU)",
    )
    worker.add_argument(
        "--pool",
        default="prefork",
        choices=["prefork", "solo", "threads"],
        help="prefork: each job in a child process, so a hard time limit can kill it",
    )
    worker.add_argument("--loglevel", default=None, help="log level (EVALSERVE_LOG_LEVEL)")
    worker.add_argument("--hostname", default=None, help="worker name (name@host)")
    worker.set_defaults(func=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
