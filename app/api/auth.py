"""API-key authentication, enforced when ``EVALSERVE_AUTH=on``.

Every route under ``/v1`` needs a key: reads (GET, HEAD, OPTIONS) any valid key, everything
else a ``write`` key. The probes, the docs, the OpenAPI schema and ``/metrics`` stay open. A
key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Failures raise the
domain errors, so the problem body comes from the one error handler: 401 (no, unknown or
revoked key, with ``WWW-Authenticate: Bearer``) and 403 (a read-only key on a write).
"""

from __future__ import annotations

from fastapi import Request

from app.api.deps import SAFE_METHODS, SessionDep, SettingsDep
from app.db.api_keys import find_api_key, touch_api_key
from app.errors import Forbidden, Unauthorized

__all__ = ["PROTECTED_PREFIX", "SAFE_METHODS", "key_from_headers", "require_api_key"]

#: Paths that need a key when auth is on.
PROTECTED_PREFIX = "/v1"


def key_from_headers(request: Request) -> str | None:
    """The key the client sent (``Authorization: Bearer`` first, then ``X-API-Key``), if any."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def _is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def require_api_key(request: Request, settings: SettingsDep, session: SessionDep) -> None:
    """App-wide dependency: check the request's API key when auth is on.

    It shares the route's session (FastAPI caches the dependency per request), so the lookup
    runs in the request's own transaction; the session connects only if it is used, so open
    paths and ``auth=off`` cost no database round trip. ``last_used_at`` is written on writes
    only: those sessions already hold the write lock, while reads stay read-only.
    """
    if settings.auth != "on" or not _is_protected(request.url.path):
        return
    secret = key_from_headers(request)
    if secret is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    key = find_api_key(session, secret)
    if key is None:
        raise Unauthorized("the API key is not valid")
    if key.revoked_at is not None:
        raise Unauthorized("the API key has been revoked")
    request.state.api_key_id = key.id
    if request.method in SAFE_METHODS:
        return
    if key.scope != "write":
        raise Forbidden(f"the API key {key.prefix}... is read-only; {request.method} needs write")
    touch_api_key(session, key.id)
