"""The ``evalserve`` command: ``serve`` and ``migrate``."""

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
