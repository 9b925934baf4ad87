"""The numeric core must stay usable as a library: no web, database or worker imports."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "app" / "core"
FORBIDDEN = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "alembic",
    "celery",
    "redis",
    "uvicorn",
    "app.api",
    "app.db",
    "app.services",
    "app.worker",
    "app.config",
    "app.main",
)


def forbidden_imports(source: str) -> list[str]:
    """Module names imported by ``source`` that the core may not depend on."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [
            n
            for n in names
            if n == "app"
            or n.split(".")[0] in FORBIDDEN
            or any(n == f or n.startswith(f + ".") for f in FORBIDDEN)
        ]
    return found


def test_checker_flags_web_and_database_imports() -> None:
    src = "import fastapi\nfrom sqlalchemy.orm import Session\nfrom app.db import models\n"
    assert forbidden_imports(src) == ["fastapi", "sqlalchemy.orm", "app.db"]
    assert forbidden_imports("import numpy as np\nfrom app.errors import InvalidInput\n") == []


def test_core_imports_nothing_from_web_database_or_worker_layers() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert files, "app/core has no modules"
    offenders = {
        str(f.relative_to(CORE)): bad
        for f in files
        if (bad := forbidden_imports(f.read_text(encoding="utf-8")))
    }
    assert offenders == {}
