"""Operations: GET /metrics in Prometheus format, request ids and JSON access logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from app.logs import JsonFormatter
from tests.api.test_runs import run_body

SECRET_SCORE = 0.123456789
EVALUATION = {
    "task": "binary",
    "name": "payload-name-must-not-be-logged",
    "y_true": [0, 1, 1, 0, 1],
    "y_score": [0.1, 0.8, SECRET_SCORE, 0.4, 0.9],
}


def sample(client: TestClient, name: str, **labels: str) -> float:
    """The value of one sample of the app's /metrics (0 if absent)."""
    res = client.get("/metrics")
    assert res.status_code == 200, res.text
    for family in text_string_to_metric_families(res.text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What the access logger writes, formatted by the service's JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("evalserve.access")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


# -- /metrics --------------------------------------------------------------------------------------
def test_metrics_are_prometheus_text(client: TestClient) -> None:
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert res.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE evalserve_http_requests_total counter" in res.text
    assert "# TYPE evalserve_evaluation_batch_rows histogram" in res.text


def test_metrics_negotiate_openmetrics(client: TestClient) -> None:
    res = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert res.headers["content-type"].startswith("application/openmetrics-text")
    assert res.text.rstrip().endswith("# EOF")


def test_requests_are_counted_by_route_template_not_raw_path(client: TestClient) -> None:
    missing = "/v1/evaluations/00000000-0000-0000-0000-000000000000"
    labels = {"method": "GET", "route": "/v1/evaluations/{evaluation_id}", "status": "404"}
    before = sample(client, "evalserve_http_requests_total", **labels)
    assert client.get(missing).status_code == 404
    assert client.get(missing).status_code == 404
    text = client.get("/metrics").text
    assert sample(client, "evalserve_http_requests_total", **labels) == before + 2
    assert "00000000-0000" not in text
    count = "evalserve_http_request_duration_seconds_count"
    assert sample(client, count, **labels) == before + 2
    assert sample(client, "evalserve_http_requests_total", route="/healthz") == 0
    client.get("/healthz")
    assert sample(client, "evalserve_http_requests_total", route="/healthz", status="200") == 1


def test_evaluation_batch_size_and_compute_time_are_observed(client: TestClient) -> None:
    rows_before = sample(client, "evalserve_evaluation_batch_rows_count")
    sum_before = sample(client, "evalserve_evaluation_batch_rows_sum")
    res = client.post("/v1/evaluations", json=EVALUATION)
    assert res.status_code == 200, res.text
    assert sample(client, "evalserve_evaluation_batch_rows_count") == rows_before + 1
    assert sample(client, "evalserve_evaluation_batch_rows_sum") == sum_before + 5
    assert sample(client, "evalserve_evaluation_compute_seconds_count") == 1
    assert sample(client, "evalserve_evaluation_batch_rows_bucket", le="10.0") >= 1


def test_runs_by_status_and_queue_depth_come_from_the_database(store_client: TestClient) -> None:
    queued = sample(store_client, "evalserve_runs", status="queued")
    depth = sample(store_client, "evalserve_queue_depth")
    res = store_client.post("/v1/runs", json=run_body())
    assert res.status_code == 202, res.text
    assert sample(store_client, "evalserve_runs", status="queued") == queued + 1
    assert sample(store_client, "evalserve_queue_depth") == depth + 1
    assert sample(store_client, "evalserve_metrics_database_up") == 1
    text = store_client.get("/metrics").text
    assert "evalserve_worker_heartbeats_fresh" in text
    assert "evalserve_worker_heartbeat_age_seconds" in text


def test_each_app_has_its_own_registry(client: TestClient, store_client: TestClient) -> None:
    client.get("/healthz")
    assert sample(client, "evalserve_http_requests_total", route="/healthz") == 1
    assert sample(store_client, "evalserve_http_requests_total", route="/healthz") == 0


# -- request ids -----------------------------------------------------------------------------------
def test_a_valid_request_id_is_echoed(client: TestClient) -> None:
    res = client.get("/healthz", headers={"X-Request-ID": "req-1.A_b"})
    assert res.headers["x-request-id"] == "req-1.A_b"


def test_a_request_id_is_generated_when_absent(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon", "ünïcode"])
def test_an_invalid_request_id_is_replaced(client: TestClient, bad: str) -> None:
    res = client.get("/healthz", headers={"X-Request-ID": bad.encode()})  # type: ignore[dict-item]
    rid = res.headers["x-request-id"]
    assert rid != bad and len(rid) == 32


def test_problem_responses_carry_the_request_id(client: TestClient) -> None:
    res = client.get("/no/such/path", headers={"X-Request-ID": "r404"})
    assert res.status_code == 404 and res.headers["x-request-id"] == "r404"
    assert res.headers["content-type"] == "application/problem+json"
    res = client.post("/v1/evaluations", json={"task": "binary"}, headers={"X-Request-ID": "r422"})
    assert res.status_code == 422 and res.headers["x-request-id"] == "r422"
    assert client.get("/v1/evaluations?limit=0").headers["x-request-id"]


# -- logs ------------------------------------------------------------------------------------------
def test_one_json_line_per_request_without_payloads(
    client: TestClient, access_lines: io.StringIO
) -> None:
    res = client.post("/v1/evaluations", json=EVALUATION, headers={"X-Request-ID": "log-me"})
    assert res.status_code == 200, res.text
    lines = [orjson.loads(line) for line in access_lines.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "log-me"]
    assert len(mine) == 1
    line = mine[0]
    assert line["method"] == "POST" and line["route"] == "/v1/evaluations"
    assert line["status"] == 200 and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["logger"] == "evalserve.access"
    raw = access_lines.getvalue()
    assert str(SECRET_SCORE) not in raw and "payload-name" not in raw and "y_score" not in raw


def test_log_records_carry_the_fields(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="evalserve.access"):
        client.get("/no/such/path", headers={"X-Request-ID": "cap-1"})
    records = [r for r in caplog.records if r.name == "evalserve.access"]
    assert records, "no access log record"
    doc = orjson.loads(JsonFormatter().format(records[-1]))
    assert doc["request_id"] == "cap-1" and doc["status"] == 404 and doc["route"] == "<unmatched>"


def test_an_unexpected_error_is_a_500_problem_with_the_request_id(
    client: TestClient, access_lines: io.StringIO
) -> None:
    def boom() -> None:
        raise RuntimeError("kaboom")

    client.app.router.add_api_route("/boom-for-test", boom)  # type: ignore[attr-defined]
    res = client.get("/boom-for-test", headers={"X-Request-ID": "r500"})
    assert res.status_code == 500 and res.headers["x-request-id"] == "r500"
    assert res.headers["content-type"] == "application/problem+json"
    assert res.json()["request_id"] == "r500" and "kaboom" not in res.text
    line = orjson.loads(access_lines.getvalue().splitlines()[-1])
    assert line["status"] == 500 and line["level"] == "error" and "kaboom" in line["exception"]
