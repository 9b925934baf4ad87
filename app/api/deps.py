"""Dependencies as ``Annotated`` aliases, so routes stay a few lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import get_session


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

#: Methods that do not change state: read-only sessions, and what read-only API keys may use.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request, settings: SettingsDep) -> Iterator[Session]:
    """A session per request: committed when the route returns, rolled back if it raises.

    Requests with unsafe methods get a write session (on SQLite it waits for the write lock
    instead of failing when another writer got in between). A database outage surfaces as a
    503 problem, never as the driver's text.
    """
    yield from get_session(settings, write=request.method not in SAFE_METHODS)


# scope="function": the commit happens before the response is sent, so a failed commit can
# never follow a 2xx answer.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
