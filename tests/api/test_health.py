"""Probes and the self-documenting OpenAPI."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "sqlite"


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with TestClient(create_app(Settings(database_url=url))) as client:
        res = client.get("/readyz")
    assert res.status_code == 503
    assert res.headers["content-type"].startswith("application/problem+json")
    assert "127.0.0.1" not in res.text


def test_openapi_documents_request_bodies_and_problems(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"EvaluationRequest", "LossesRequest", "PenaltySpec"} <= set(schemas)
    post = spec["paths"]["/v1/evaluations"]["post"]
    content = post["requestBody"]["content"]
    assert set(content) == {
        "application/json",
        "application/vnd.apache.arrow.stream",
        "application/x-npz",
    }
    assert "422" in post["responses"] and "413" in post["responses"]
    assert schemas["EvaluationRequest"]["properties"]["y_true"]["examples"]


def test_cors_headers_only_for_configured_origins(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, cors_origins=["https://dash.example.com"])
    with TestClient(create_app(settings)) as client:
        ok = client.options(
            "/v1/evaluations",
            headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://dash.example.com"
        other = client.get("/healthz", headers={"Origin": "https://evil.example.com"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(Settings(database_url=sqlite_url))) as client:
        res = client.get("/healthz", headers={"Origin": "https://dash.example.com"})
        assert "access-control-allow-origin" not in res.headers
