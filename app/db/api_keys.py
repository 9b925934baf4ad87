"""Queries of API keys. Like :mod:`app.db.repositories`, functions never commit.

A key's secret is shown once, when it is created; only its SHA-256 is stored. Secrets are 256
random bits, so a fast unsalted hash is the right tool: there is nothing to brute-force, and a
slow password hash (bcrypt, argon2) would only add latency to every request. Looking a key up
by its hash (a unique index) also avoids comparing secrets byte by byte, so response times leak
nothing about a secret.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.models import ApiKey

__all__ = [
    "SECRET_PREFIX",
    "create_api_key",
    "find_api_key",
    "generate_secret",
    "hash_secret",
    "list_api_keys",
    "lock_api_key",
    "revoke_api_key",
    "touch_api_key",
]

#: Every secret starts with this, so leaked keys are easy to recognize (and to scan for).
SECRET_PREFIX = "es_"
#: Characters of the secret kept in clear for display.
DISPLAY_PREFIX_LENGTH = 8


def generate_secret() -> str:
    """A new secret: ``es_`` followed by 32 random bytes, URL-safe base64 encoded."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its SHA-256 as 64 hex digits (see the module docstring)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(session: Session, *, name: str, read_only: bool = False) -> tuple[ApiKey, str]:
    """Store a new key and return it with its secret, which is not stored and cannot be
    recovered later."""
    secret = generate_secret()
    key = ApiKey(
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_secret(secret),
        scope="read" if read_only else "write",
    )
    session.add(key)
    session.flush()
    return key, secret


def find_api_key(session: Session, secret: str) -> ApiKey | None:
    """The key whose secret this is, revoked or not; ``None`` for an unknown secret."""
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret))).first()


def lock_api_key(session: Session, key_id: str) -> bool:
    """Lock the key's row until the transaction ends (``SELECT ... FOR UPDATE`` on PostgreSQL),
    so per-key checks (concurrent runs) of concurrent requests run one after the other.
    SQLite has no row locks and needs none: write transactions begin IMMEDIATE, one at a time.
    False if there is no such key."""
    query = select(ApiKey.id).where(ApiKey.id == key_id).with_for_update()
    return session.scalar(query) is not None


def list_api_keys(session: Session) -> Sequence[ApiKey]:
    """Every key, oldest first."""
    return session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)).all()


def revoke_api_key(session: Session, key_id: str, *, now: datetime | None = None) -> bool:
    """Revoke a key (from now on it is refused). False if no such key or it was revoked before."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def touch_api_key(session: Session, key_id: str, *, now: datetime | None = None) -> None:
    """Record that a key was just used."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(last_used_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
