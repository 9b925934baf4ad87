"""The ``evalserve`` command: ``serve``, ``migrate``, ``worker`` and ``keys``."""

from __future__ import annotations

import argparse
import math
import signal
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
    # uvicorn drains on SIGTERM, then raises the signal again under the handler found at start;
    # with the default one the process would die of it (exit 143) after a clean drain. A no-op
    # underneath makes a requested shutdown that completed exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        workers=args.workers,
        # The app writes one JSON line per request (with its request id) instead.
        access_log=False,
        # SIGTERM: stop accepting, let in-flight requests finish (up to this long), then run
        # the lifespan shutdown (the in-process runner checkpoints its runs).
        timeout_graceful_shutdown=math.ceil(settings.graceful_shutdown_s),
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


def _keys(args: argparse.Namespace) -> int:
    """``evalserve keys create|list|revoke``: manage API keys in the configured database."""
    from app.db.api_keys import create_api_key, list_api_keys, revoke_api_key
    from app.db.session import dispose_engines, session_scope

    settings = get_settings()
    try:
        with session_scope(settings) as session:
            if args.keys_command == "create":
                key, secret = create_api_key(session, name=args.name, read_only=args.read_only)
                print(f"id:     {key.id}")
                print(f"name:   {key.name}")
                print(f"scope:  {key.scope}")
                print(f"secret: {secret}")
                print("Store the secret now: it is not kept and cannot be shown again.")
                return 0
            if args.keys_command == "revoke":
                if not revoke_api_key(session, args.id):
                    print(f"no active API key with id {args.id}", file=sys.stderr)
                    return 1
                print(f"revoked {args.id}")
                return 0
            print("id\tname\tprefix\tscope\tcreated_at\trevoked_at\tlast_used_at")
            for key in list_api_keys(session):
                fields = (key.id, key.name, key.prefix, key.scope, key.created_at.isoformat())
                times = (key.revoked_at, key.last_used_at)
                cells = [str(f) for f in fields] + [t.isoformat() if t else "-" for t in times]
                print("\t".join(cells))
            return 0
    finally:
        dispose_engines(settings.database_url)


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
    keys = sub.add_parser("keys", help="create, list and revoke API keys (EVALSERVE_AUTH=on)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print its secret (once)")
    create.add_argument("--name", required=True, help="what the key is for (shown in lists)")
    create.add_argument(
        "--read-only", action="store_true", help="the key may only read (GET), not write"
    )
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key: it is refused from now on")
    revoke.add_argument("id", help="the key's id (from `evalserve keys list`)")
    keys.set_defaults(func=_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
