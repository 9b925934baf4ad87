"""Stored evaluations on SQLite and PostgreSQL: persist, fetch, list, filter, paginate."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient


def post_stored(client: TestClient, **extra: object) -> dict:
    rng = np.random.default_rng(abs(hash(str(extra))) % 2**32)
    y = rng.integers(0, 2, 100)
    p = np.clip(0.3 * y + 0.7 * rng.random(100), 0, 1)
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "binary",
            "y_true": y.tolist(),
            "y_score": p.tolist(),
            "persist": True,
            **extra,
        },
    )
    assert res.status_code == 201, res.text
    return res.json()


def test_a_stored_evaluation_reads_back_identically(store_client: TestClient) -> None:
    created = post_stored(
        store_client, name="nightly", model="ranker-v3", tags=["prod", "eu"], curves=["roc"]
    )
    assert created["id"] and created["created_at"]
    fetched = store_client.get(f"/v1/evaluations/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert created["metrics"]["roc_auc"] is not None


def test_list_filters_by_model_name_and_tag_and_paginates(store_client: TestClient) -> None:
    for i in range(5):
        post_stored(store_client, name=f"run-{i % 2}", model="m-list", tags=[f"t{i}", "all"])
    post_stored(store_client, model="other")
    page = store_client.get("/v1/evaluations", params={"model": "m-list", "limit": 2}).json()
    assert page["page"] == {"total": 5, "limit": 2, "offset": 0}
    assert len(page["items"]) == 2
    rest = store_client.get(
        "/v1/evaluations", params={"model": "m-list", "limit": 2, "offset": 4}
    ).json()
    assert len(rest["items"]) == 1
    ids = {i["id"] for i in page["items"]} | {i["id"] for i in rest["items"]}
    assert len(ids) == 3
    named = store_client.get("/v1/evaluations", params={"model": "m-list", "name": "run-0"})
    assert named.json()["page"]["total"] == 3
    tagged = store_client.get("/v1/evaluations", params={"tag": "t3"}).json()
    assert [i["tags"] for i in tagged["items"]] == [["t3", "all"]]
    item = tagged["items"][0]
    assert item["headline"]["roc_auc"] == pytest.approx(
        store_client.get(f"/v1/evaluations/{item['id']}").json()["metrics"]["roc_auc"]
    )


def test_list_is_newest_first(store_client: TestClient) -> None:
    first = post_stored(store_client, model="m-order")
    second = post_stored(store_client, model="m-order")
    items = store_client.get("/v1/evaluations", params={"model": "m-order"}).json()["items"]
    assert [i["id"] for i in items] == [second["id"], first["id"]]


def test_unpersisted_evaluations_are_not_stored(store_client: TestClient) -> None:
    res = store_client.post(
        "/v1/evaluations",
        json={"task": "binary", "y_true": [0, 1], "y_score": [0.2, 0.8], "model": "m-none"},
    )
    assert res.status_code == 200 and res.json()["id"] is None
    assert store_client.get("/v1/evaluations", params={"model": "m-none"}).json()["items"] == []


def test_unicode_names_round_trip(store_client: TestClient) -> None:
    created = post_stored(store_client, name="évaluation nocturne ✓", model="模型")
    fetched = store_client.get(f"/v1/evaluations/{created['id']}").json()
    assert (fetched["name"], fetched["model"]) == ("évaluation nocturne ✓", "模型")


@pytest.mark.parametrize("kind", ["roc", "pr", "reliability", "confusion"])
def test_stored_evaluations_are_plotted_as_svg_and_png(store_client: TestClient, kind: str) -> None:
    import io
    import xml.etree.ElementTree as ET

    from matplotlib.image import imread

    created = post_stored(store_client, curves=True, model="m-plot")
    svg = store_client.get(f"/v1/evaluations/{created['id']}/plots/{kind}")
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"] == "image/svg+xml"
    assert ET.fromstring(svg.content).tag.endswith("svg")
    assert svg.headers["etag"]
    png = store_client.get(f"/v1/evaluations/{created['id']}/plots/{kind}?format=png")
    assert png.headers["content-type"] == "image/png"
    image = imread(io.BytesIO(png.content), format="png")
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_a_plot_of_a_missing_curve_is_a_422(store_client: TestClient) -> None:
    created = post_stored(store_client, model="m-plot")
    res = store_client.get(f"/v1/evaluations/{created['id']}/plots/roc")
    assert res.status_code == 422 and res.json()["field"] == "kind"
    assert store_client.get(f"/v1/evaluations/{created['id']}/plots/violin").status_code == 422
    assert store_client.get("/v1/evaluations/nope/plots/roc").status_code == 404
