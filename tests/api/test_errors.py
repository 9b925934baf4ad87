"""Bad input gets a 4xx problem body naming the field and the problem — never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import LIMITS

BINARY = {"task": "binary", "y_true": [0, 1, 1, 0], "y_score": [0.1, 0.8, 0.6, 0.4]}


def problem(res: Any, status: int) -> dict[str, Any]:
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    body = res.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"].startswith("https://")
    return body


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"y_score": [0.1, 0.8, 0.6]}, "y_score", "lengths must match"),
        ({"sample_weight": [1, 1]}, "sample_weight", "lengths must match"),
        ({"y_score": [0.1, 1.8, 0.6, 0.4]}, "y_score", "[0, 1]"),
        ({"y_score": [0.1, -0.2, 0.6, 0.4]}, "y_score", "y_score[1]"),
        ({"sample_weight": [1, -1, 1, 1]}, "sample_weight", ">= 0"),
        ({"sample_weight": [0, 0, 0, 0]}, "sample_weight", "all weights are zero"),
        ({"metrics": ["roc_auc", "auroc"]}, "metrics", "unknown metric 'auroc'"),
        ({"metrics": ["r2"]}, "metrics", "does not apply"),
        ({"metrics": [{"name": "fbeta", "gamma": 2}]}, "metrics", "no parameter 'gamma'"),
        ({"losses": ["hinge_loss"]}, "losses", "unknown"),
        ({"y_true": ["a", "b", "b", "a"]}, "pos_label", "pos_label"),
        ({"y_true": [0, 1, 2, 0]}, "y_true", "2 classes"),
        ({"labels": [0, 1], "y_true": [0, 1, 5, 0]}, "y_true", "not one of labels"),
        ({"y_true": [], "y_score": []}, "y_true", "at least 1"),
        ({"y_score": [[0.1, 0.2, 0.7]] * 4}, "y_score", "two columns, got 3"),
        ({"name": "bad\u0000name", "persist": True}, "name", "NUL"),
        ({"tags": ["ok", "x" * 201]}, "tags[1]", "at most 200"),
        ({"task": "ranking"}, "task", "binary"),
        ({"threshold": "high"}, "threshold", "number"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_bad_binary_batches_get_a_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: str, words: str
) -> None:
    body = problem(client.post("/v1/evaluations", json={**BINARY, **change}), 422)
    assert body["field"] == field, body
    assert words.lower() in body["detail"].lower(), body


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (
            {"task": "multiclass", "y_true": [0, 1], "y_score": [[0.5, 0.4, 0.1], [0.2, 0.2, 0.2]]},
            "y_score",
            "sums to 0.6",
        ),
        ({"task": "multiclass", "y_true": [0, 1], "y_score": [0.5, 0.4]}, "y_score", "2-D"),
        (
            {"task": "multiclass", "y_true": ["a", "b"], "y_score": [[0.5, 0.5, 0.0]] * 2},
            "labels",
            "columns",
        ),
        ({"task": "multilabel", "y_true": [[0, 2]], "y_score": [[0.1, 0.2]]}, "y_true", "0 or 1"),
        ({"task": "regression", "y_true": [1.0, 2.0], "y_pred": [1.0]}, "y_pred", "lengths"),
        ({"task": "regression", "y_true": [1.0, 2.0]}, "body", "y_pred is required"),
    ],
)
def test_bad_batches_of_other_tasks_get_a_422(
    client: TestClient, payload: dict[str, Any], field: str, words: str
) -> None:
    body = problem(client.post("/v1/evaluations", json=payload), 422)
    assert body["field"] == field, body
    assert words.lower() in body["detail"].lower(), body


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_scores_are_refused_with_their_index(client: TestClient, literal: str) -> None:
    raw = (f'{{"task": "binary", "y_true": [0, 1, 1], "y_score": [0.2, {literal}, 0.9]}}').encode()
    res = client.post("/v1/evaluations", content=raw, headers={"content-type": "application/json"})
    body = problem(res, 422)
    assert body["field"].startswith("y_score")
    assert "finite" in body["detail"] or "y_score[1]" in body["detail"]


def test_malformed_json_is_a_422(client: TestClient) -> None:
    res = client.post(
        "/v1/evaluations",
        content=b'{"task": "binary", "y_true": [0,',
        headers={"content-type": "application/json"},
    )
    problem(res, 422)


def test_body_over_the_limit_is_a_413(client: TestClient) -> None:
    n = LIMITS["max_body_bytes"] // 5
    payload = {"task": "binary", "y_true": [0, 1] * (n // 2), "y_score": [0.5] * n}
    body = problem(client.post("/v1/evaluations", json=payload), 413)
    assert "EVALSERVE_MAX_BODY_BYTES" in body["detail"]


def test_too_many_rows_is_a_413(client: TestClient) -> None:
    n = LIMITS["max_rows"] + 1
    payload = {"task": "regression", "y_true": [0] * n, "y_pred": [0] * n}
    body = problem(client.post("/v1/evaluations", json=payload), 413)
    assert "EVALSERVE_MAX_ROWS" in body["detail"]


def test_unsupported_content_type_is_a_415(client: TestClient) -> None:
    res = client.post(
        "/v1/evaluations", content=b"y_true,y_score\n0,0.1\n", headers={"content-type": "text/csv"}
    )
    problem(res, 415)


def test_bad_arrow_streams_are_refused(client: TestClient) -> None:
    arrow = {"content-type": "application/vnd.apache.arrow.stream"}
    problem(client.post("/v1/evaluations?task=binary", content=b"not arrow", headers=arrow), 422)
    from tests.api.test_evaluations import arrow_body

    body = arrow_body({"y_true": [0, 1], "y_score": [0.1, 0.9], "extra": [1, 2]})
    res = client.post("/v1/evaluations?task=binary", content=body, headers=arrow)
    assert problem(res, 422)["field"] == "extra"
    body = arrow_body({"y_true": [0, 1], "y_score": [0.1, None]})
    res = client.post("/v1/evaluations?task=binary", content=body, headers=arrow)
    assert "null" in problem(res, 422)["detail"]
    body = arrow_body({"y_true": [0, 1], "y_score": [0.1, 0.9]})
    res = client.post("/v1/evaluations?task=binary&metrics=nope", content=body, headers=arrow)
    assert problem(res, 422)["field"] == "metrics"


@pytest.mark.parametrize(("task", "field"), [("binary", "y_score"), ("regression", "y_pred")])
def test_an_arrow_stream_without_the_score_column_names_it(
    client: TestClient, task: str, field: str
) -> None:
    from tests.api.test_evaluations import arrow_body

    arrow = {"content-type": "application/vnd.apache.arrow.stream"}
    body = arrow_body({"y_true": [0, 1]})
    res = client.post(f"/v1/evaluations?task={task}", content=body, headers=arrow)
    detail = problem(res, 422)
    assert detail["field"] == field
    assert f"is required for task {task!r}" in detail["detail"]


def test_unknown_evaluation_id_is_a_404(client: TestClient) -> None:
    body = problem(client.get("/v1/evaluations/does-not-exist"), 404)
    assert "does-not-exist" in body["detail"]


def test_unknown_route_is_a_problem_404(client: TestClient) -> None:
    problem(client.get("/v1/nothing-here"), 404)
