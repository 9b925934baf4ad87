"""API keys: EVALSERVE_AUTH=off and on, 401/403 problem bodies, hashing at rest, the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import get_db
from app.cli import main as cli_main
from app.config import Settings, get_settings
from app.db.api_keys import create_api_key, hash_secret, revoke_api_key
from app.db.migrate import upgrade_to_head
from app.db.models import ApiKey
from app.db.session import dispose_engines, get_session
from app.main import create_app

LOSSES = {"y_true": [1.0, 2.0, 4.0], "y_pred": [1.5, 2.0, 1.0], "losses": ["mse"]}
PROBLEM = "application/problem+json"


def _client(db_url: str, factory: sessionmaker[Session], auth: str) -> TestClient:
    app = create_app(Settings(database_url=db_url, auth=auth))

    def joined_session() -> Iterator[Session]:
        yield from get_session(factory=factory)

    app.dependency_overrides[get_db] = joined_session
    # No lifespan: its shutdown would dispose the engine that holds the test's connection.
    return TestClient(app)


@pytest.fixture
def auth_client(db_url: str, db_sessionmaker: sessionmaker[Session]) -> TestClient:
    """The app with EVALSERVE_AUTH=on, inside the test's rolled-back transaction."""
    return _client(db_url, db_sessionmaker, "on")


@pytest.fixture
def make_key(db_sessionmaker: sessionmaker[Session]) -> Callable[..., tuple[str, str]]:
    """``make_key(read_only=False, revoked=False) -> (id, secret)``, committed to a savepoint."""

    def make(*, read_only: bool = False, revoked: bool = False) -> tuple[str, str]:
        with db_sessionmaker.begin() as session:
            key, secret = create_api_key(session, name="test", read_only=read_only)
            if revoked:
                assert revoke_api_key(session, key.id)
            return key.id, secret

    return make


def _assert_problem(res: object, status: int) -> dict[str, object]:
    assert res.status_code == status, res.text  # type: ignore[attr-defined]
    assert res.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    body: dict[str, object] = res.json()  # type: ignore[attr-defined]
    assert body["status"] == status
    return body


def test_auth_off_allows_writes_without_a_key(
    db_url: str, db_sessionmaker: sessionmaker[Session]
) -> None:
    client = _client(db_url, db_sessionmaker, "off")
    assert client.post("/v1/losses", json=LOSSES).status_code == 200
    assert client.get("/v1/calibrations").status_code == 200


def test_auth_is_off_by_default() -> None:
    assert Settings.model_fields["auth"].default == "off"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_key_is_401_with_a_challenge(auth_client: TestClient, method: str) -> None:
    path = "/v1/losses" if method == "POST" else "/v1/calibrations"
    res = auth_client.request(method, path, json=LOSSES if method == "POST" else None)
    body = _assert_problem(res, 401)
    assert res.headers["www-authenticate"] == "Bearer"
    assert body["title"] == "Unauthorized"
    assert body["type"] == "https://evalserve.dev/problems/unauthorized"
    assert body["instance"] == path


def test_unknown_and_malformed_keys_are_401(auth_client: TestClient) -> None:
    for headers in (
        {"Authorization": "Bearer es_not-a-key"},
        {"X-API-Key": "es_not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ):
        res = auth_client.post("/v1/losses", json=LOSSES, headers=headers)
        _assert_problem(res, 401)
        assert res.headers["www-authenticate"] == "Bearer"


def test_revoked_key_is_401(
    auth_client: TestClient, make_key: Callable[..., tuple[str, str]]
) -> None:
    _, secret = make_key(revoked=True)
    res = auth_client.get("/v1/calibrations", headers={"Authorization": f"Bearer {secret}"})
    body = _assert_problem(res, 401)
    assert "revoked" in str(body["detail"])


def test_read_only_key_reads_but_cannot_write(
    auth_client: TestClient, make_key: Callable[..., tuple[str, str]]
) -> None:
    _, secret = make_key(read_only=True)
    headers = {"Authorization": f"Bearer {secret}"}
    assert auth_client.get("/v1/calibrations", headers=headers).status_code == 200
    res = auth_client.post("/v1/losses", json=LOSSES, headers=headers)
    body = _assert_problem(res, 403)
    assert body["title"] == "Forbidden"
    assert "www-authenticate" not in res.headers


def test_write_key_writes_with_either_header(
    auth_client: TestClient,
    make_key: Callable[..., tuple[str, str]],
    db_sessionmaker: sessionmaker[Session],
) -> None:
    key_id, secret = make_key()
    for headers in ({"Authorization": f"Bearer {secret}"}, {"X-API-Key": secret}):
        assert auth_client.post("/v1/losses", json=LOSSES, headers=headers).status_code == 200
        assert auth_client.get("/v1/calibrations", headers=headers).status_code == 200
    with db_sessionmaker() as session:
        key = session.get(ApiKey, key_id)
        assert key is not None and key.last_used_at is not None


def test_open_paths_need_no_key(auth_client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
        assert auth_client.get(path).status_code == 200, path


def test_only_the_hash_of_the_secret_is_stored(
    make_key: Callable[..., tuple[str, str]], db_sessionmaker: sessionmaker[Session]
) -> None:
    key_id, secret = make_key()
    with db_sessionmaker() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).one()
        assert key.key_hash == hash_secret(secret) != secret
        assert secret.startswith("es_") and key.prefix == secret[:8]
        assert key.scope == "write" and key.revoked_at is None
        stored = [str(getattr(key, c.key)) for c in ApiKey.__table__.columns]
    assert all(secret not in value for value in stored)


def test_cli_creates_lists_and_revokes_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade_to_head(url)
    monkeypatch.setenv("EVALSERVE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert cli_main(["keys", "create", "--name", "ci", "--read-only"]) == 0
        out = capsys.readouterr().out
        secret = next(line.split()[1] for line in out.splitlines() if line.startswith("secret:"))
        key_id = next(line.split()[1] for line in out.splitlines() if line.startswith("id:"))
        assert secret.startswith("es_")

        assert cli_main(["keys", "list"]) == 0
        listed = capsys.readouterr().out
        assert key_id in listed and "ci" in listed and "read" in listed
        assert secret not in listed and secret[:8] in listed

        assert cli_main(["keys", "revoke", key_id]) == 0
        assert cli_main(["keys", "revoke", key_id]) == 1  # already revoked
        assert cli_main(["keys", "revoke", "no-such-id"]) == 1
        capsys.readouterr()

        # The revoked key is refused by an app on the same database.
        with TestClient(create_app(Settings(database_url=url, auth="on"))) as client:
            res = client.get("/v1/calibrations", headers={"X-API-Key": secret})
            assert res.status_code == 401
    finally:
        get_settings.cache_clear()
        dispose_engines(url)
