"""/v1/datasets: CSV, Parquet and Arrow uploads stored in the database, described, checked,
and used by training runs (features, a separate validation set, a group split)."""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import get_db
from app.config import Settings
from app.db import runs as repo
from app.db.session import get_session
from app.main import create_app
from app.services.run_data import load_split
from tests.api.conftest import live_app


def table(n: int = 90, seed: int = 0) -> pa.Table:
    """Numeric features, a site (group) column of strings, a binary target."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    site_code = np.arange(n) % 9
    return pa.table(
        {
            "x1": x1,
            "x2": x2,
            "site_code": site_code.astype(np.int64),
            "site": [f"site-{c}" for c in site_code],
            "label": (x1 + x2 > 0).astype(np.int64),
        }
    )


def as_bytes(t: pa.Table, fmt: str) -> bytes:
    sink = io.BytesIO()
    if fmt == "csv":
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(t, sink)
    elif fmt == "parquet":
        pq.write_table(t, sink)
    elif fmt == "arrow-file":
        with pa.ipc.new_file(sink, t.schema) as writer:
            writer.write_table(t)
    else:
        with pa.ipc.new_stream(sink, t.schema) as writer:
            writer.write_table(t)
    return sink.getvalue()


CONTENT_TYPES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow-file": "application/vnd.apache.arrow.file",
    "arrow-stream": "application/vnd.apache.arrow.stream",
}


def upload(
    client: TestClient, content: bytes, content_type: str = "text/csv", **params: Any
) -> Any:
    params.setdefault("target", "label")
    return client.post(
        "/v1/datasets", content=content, params=params, headers={"content-type": content_type}
    )


def test_a_csv_upload_is_described_and_reads_back(store_client: TestClient) -> None:
    res = upload(store_client, as_bytes(table(), "csv"), name="sites")
    assert res.status_code == 201, res.text
    ds = res.json()
    assert res.headers["location"] == f"/v1/datasets/{ds['id']}"
    assert (ds["format"], ds["target"], ds["n_rows"], ds["n_columns"]) == ("csv", "label", 90, 5)
    schema = {c["name"]: c for c in ds["schema"]}
    assert schema["x1"]["numeric"] and schema["x1"]["type"] == "double"
    assert not schema["site"]["numeric"] and schema["site"]["n_distinct"] == 9
    assert ds["target_summary"]["values"] == [0, 1] and ds["target_summary"]["integral"]
    assert store_client.get(f"/v1/datasets/{ds['id']}").json() == ds
    listed = store_client.get("/v1/datasets").json()
    assert listed["page"]["total"] == 1 and listed["items"][0]["id"] == ds["id"]


@pytest.mark.parametrize("fmt", ["parquet", "arrow-file", "arrow-stream"])
def test_parquet_and_arrow_uploads_are_read(store_client: TestClient, fmt: str) -> None:
    res = upload(store_client, as_bytes(table(), fmt), CONTENT_TYPES[fmt])
    assert res.status_code == 201, res.text
    assert res.json()["format"] == fmt.split("-")[0] and res.json()["n_rows"] == 90


def test_a_generic_content_type_takes_the_format_parameter(store_client: TestClient) -> None:
    content = as_bytes(table(), "parquet")
    res = upload(store_client, content, "application/octet-stream", format="parquet")
    assert res.status_code == 201
    assert upload(store_client, content, "application/octet-stream").status_code == 415
    assert upload(store_client, content, "application/json").status_code == 415


@pytest.mark.parametrize(
    ("content", "params", "field"),
    [
        (b"x1,label\n1,0\n2,1\n", {"target": "y"}, "target"),
        (b"x1,label\n1,a\n2,b\n", {}, "target"),
        (b"x1,label\n1,\n2,1\n", {}, "target"),
        (b"x1,label\n1,nan\n2,1\n", {}, "target"),
        (b"x1,label\n", {}, "body"),
        (b"x1,x1,label\n1,2,0\n", {}, "body"),
        (b"\x00\x01garbage", {"format": "parquet"}, "body"),
        (b"x1,label\n1,0\n", {"format": "xlsx"}, "format"),
    ],
)
def test_bad_uploads_are_422_problems(
    store_client: TestClient, content: bytes, params: dict[str, str], field: str
) -> None:
    res = upload(store_client, content, **params)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field
    assert store_client.get("/v1/datasets").json()["page"]["total"] == 0


def test_an_unknown_dataset_is_a_404(store_client: TestClient) -> None:
    assert store_client.get("/v1/datasets/nope").status_code == 404


@pytest.fixture
def small_limit_client(db_url: str, db_sessionmaker: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=db_url, max_dataset_bytes=1000))

    def joined_session() -> Iterator[Session]:
        yield from get_session(factory=db_sessionmaker)

    app.dependency_overrides[get_db] = joined_session
    yield TestClient(app)


def test_an_upload_over_the_size_limit_is_a_413(small_limit_client: TestClient) -> None:
    res = upload(small_limit_client, as_bytes(table(), "csv"))
    assert res.status_code == 413
    assert "EVALSERVE_MAX_DATASET_BYTES" in res.json()["detail"]


# -- runs on datasets ------------------------------------------------------------------------------
def dataset_run(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "binary",
        "data": {"dataset_id": dataset_id, "features": ["x1", "x2", "site_code"]},
        "model": {"hidden": [8]},
        "epochs": 3,
        "batch_size": 16,
        "device": "cpu",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"data": {"dataset_id": "DS"}}, "data.features"),  # "site" is text
        ({"data": {"dataset_id": "DS", "features": ["x9"]}}, "data.features"),
        ({"data": {"dataset_id": "DS", "features": ["label"]}}, "data.features"),
        ({"task": "multiclass", "n_classes": 1}, "n_classes"),
        ({"validation": {"group_column": "nope"}}, "validation.group_column"),
        ({"validation": {"groups": ["a", "b"]}}, "validation.groups"),
        ({"data": {"dataset_id": "DS", "X": [[1.0]], "y": [1]}}, "data"),
        ({"validation": {"dataset_id": "nope"}}, "validation.dataset_id"),
    ],
)
def test_a_run_on_a_dataset_is_checked_against_its_schema(
    store_client: TestClient, overrides: dict[str, Any], field: str
) -> None:
    ds_id = upload(store_client, as_bytes(table(), "csv")).json()["id"]
    body = dataset_run(ds_id, **copy.deepcopy(overrides))
    if body["data"].get("dataset_id") == "DS":
        body["data"]["dataset_id"] = ds_id
    res = store_client.post("/v1/runs", json=body)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field


def test_a_regression_target_is_refused_for_a_binary_run(store_client: TestClient) -> None:
    t = table().set_column(4, "label", pa.array(np.linspace(0, 3, 90)))
    ds_id = upload(store_client, as_bytes(t, "parquet"), CONTENT_TYPES["parquet"]).json()["id"]
    res = store_client.post("/v1/runs", json=dataset_run(ds_id))
    assert res.status_code == 422 and "0 or 1" in res.json()["detail"]
    ok = store_client.post("/v1/runs", json=dataset_run(ds_id, task="regression"))
    assert ok.status_code == 202


def test_a_group_split_keeps_every_group_on_one_side(
    store_client: TestClient, db_session: Session
) -> None:
    ds_id = upload(store_client, as_bytes(table(), "csv")).json()["id"]
    body = dataset_run(ds_id, validation={"group_column": "site", "fraction": 0.3})
    res = store_client.post("/v1/runs", json=body)
    assert res.status_code == 202, res.text
    assert res.json()["data"]["validation"]["kind"] == "groups"
    run = repo.get_run(db_session, res.json()["id"], with_data=True)
    assert run is not None
    split = load_split(db_session, run)
    train_sites = set(split.X_train[:, 2].tolist())  # the site_code feature
    val_sites = set(split.X_val[:, 2].tolist())
    assert train_sites and val_sites and not train_sites & val_sites
    assert len(val_sites) == 3  # 30 % of 9 equal-size sites


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with live_app(request, tmp_path_factory) as client:
        yield client


def test_runs_train_on_an_uploaded_dataset_with_a_separate_validation_dataset(
    live_client: TestClient,
) -> None:
    train = upload(live_client, as_bytes(table(seed=1), "parquet"), CONTENT_TYPES["parquet"])
    val = upload(live_client, as_bytes(table(40, seed=2), "csv"))
    body = dataset_run(train.json()["id"], validation={"dataset_id": val.json()["id"]})
    run_id = live_client.post("/v1/runs", json=body).json()["id"]
    deadline = time.monotonic() + 60
    while (run := live_client.get(f"/v1/runs/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run["status"] == "succeeded", run["error"]
    assert (run["summary"]["n_train"], run["summary"]["n_val"]) == (90, 40)
    assert run["data"]["features"] == ["x1", "x2", "site_code"]
    pred = live_client.post(f"/v1/runs/{run_id}/predict", json={"X": [[0.5, 0.5, 1.0]]})
    assert pred.status_code == 200 and pred.json()["labels"] in ([0], [1])
