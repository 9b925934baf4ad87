"""Image runs on SQLite and PostgreSQL: .npy / .npz / Arrow image uploads, cnn runs on inline
images and on image datasets, predictions, Grad-CAM and image robustness jobs, and the 422s of
mixing images and tabular methods."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits
from sqlalchemy.orm import Session

from app.db import runs as repo
from app.services.run_data import load_split
from app.training.images import make_patch_images
from tests.api.conftest import assert_not_inspectable, live_app, wait_for

CNN = {"type": "cnn", "blocks": [{"channels": 4}, {"channels": 8, "pool": "none"}], "head": []}


def npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def upload(client: TestClient, body: bytes, query: str, media: str = "application/x-npz") -> Any:
    return client.post(f"/v1/datasets?{query}", content=body, headers={"content-type": media})


def arrow_stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


# -- uploads (rolled back, both backends) ----------------------------------------------------------
def test_npz_npy_and_arrow_images_are_stored_as_one_tensor_column_with_their_shape(
    store_client: TestClient,
) -> None:
    X = np.random.default_rng(0).integers(0, 255, size=(6, 5, 4), dtype=np.uint8)
    y = np.array([0, 1, 0, 1, 0, 1])
    res = upload(store_client, npz(X=X, y=y, site=np.array(list("aabbcc"))), "target=y")
    assert res.status_code == 201, res.json()
    doc = res.json()
    assert doc["format"] == "arrow" and doc["n_rows"] == 6
    image = doc["schema"][0]
    assert image["name"] == "X" and image["image_shape"] == [1, 5, 4]
    assert image["pixel_type"] == "uint8"
    assert [c["name"] for c in doc["schema"]] == ["X", "y", "site"]

    structured = np.zeros(6, dtype=[("img", "f4", (2, 3, 3)), ("label", "i8")])
    structured["img"] = np.arange(6 * 18, dtype=np.float32).reshape(6, 2, 3, 3)
    structured["label"] = y
    buf = io.BytesIO()
    np.save(buf, structured)
    res = upload(store_client, buf.getvalue(), "target=label", "application/x-npy")
    assert res.status_code == 201, res.json()
    assert res.json()["schema"][0]["image_shape"] == [2, 3, 3]

    flat = pa.array(list(X.reshape(6, -1).astype(np.float32)), pa.list_(pa.float32(), 20))
    body = arrow_stream(pa.table({"pixels": flat, "y": y}))
    res = upload(store_client, body, "target=y&shape=1,5,4", "application/vnd.apache.arrow.stream")
    assert res.status_code == 201, res.json()
    assert res.json()["schema"][0]["image_shape"] == [1, 5, 4]
    res = upload(store_client, body, "target=y", "application/vnd.apache.arrow.stream")
    assert res.status_code == 422 and res.json()["field"] == "shape"
    res = upload(store_client, body, "target=y&shape=1,4,4", "application/vnd.apache.arrow.stream")
    assert res.status_code == 422 and res.json()["field"] == "shape"


def test_image_uploads_that_cannot_be_read_safely_are_422(store_client: TestClient) -> None:
    objects = npz(X=np.zeros((2, 3, 3)), y=np.array([0, 1], dtype=object))
    res = upload(store_client, objects, "target=y")
    assert res.status_code == 422 and "pickle" in res.json()["detail"]
    res = upload(store_client, npz(X=np.zeros((2, 3, 3)), y=[0, 1]), "target=label")
    assert res.status_code == 422 and res.json()["field"] == "target"
    res = upload(store_client, npz(X=np.zeros((2, 3)), y=[0, 1]), "target=y")
    assert res.status_code == 422
    nan = np.zeros((2, 3, 3))
    nan[1, 2, 2] = np.nan
    res = upload(store_client, npz(X=nan, y=[0, 1]), "target=y")
    assert res.status_code == 422 and "finite" in res.json()["detail"]
    res = upload(store_client, npz(X=np.zeros((3, 3, 3)), y=[0, 1]), "target=y")
    assert res.status_code == 422 and res.json()["field"] == "y"
    plain = io.BytesIO()
    np.save(plain, np.zeros((2, 3, 3)))
    res = upload(store_client, plain.getvalue(), "target=y", "application/x-npy")
    assert res.status_code == 422 and "structured" in res.json()["detail"]


def test_cnn_options_are_checked_before_anything_is_queued(store_client: TestClient) -> None:
    X, y, _ = make_patch_images(20, size=8, patch=2)
    data = {"X": X.tolist(), "y": y.tolist()}

    def post(model: dict[str, Any], **extra: Any) -> Any:
        return store_client.post(
            "/v1/runs", json={"task": "binary", "data": data, "model": model, **extra}
        )

    cases = [
        ({**CNN, "blocks": [{"channels": 0}]}, "model.blocks[0].channels"),
        ({**CNN, "blocks": [{"channels": 4, "kernel": 4}]}, "model.blocks[0].kernel"),
        ({**CNN, "blocks": [{"channels": 4, "pool_size": 8}] * 2}, "model.blocks[1].pool_size"),
        ({**CNN, "dropout": 1.5}, "model.dropout"),
        ({**CNN, "input_shape": [1, 9, 9]}, "data.X"),
        ({"type": "cnn", "hidden": [3]}, "model.hidden"),
        ({"type": "cnn", "blocks": [{"channels": "x"}]}, "model.blocks[0].channels"),
        ({"blocks": [{"channels": 4}]}, "model.blocks"),
    ]
    for model, field in cases:
        res = post(model)
        assert res.status_code == 422, (model, res.json())
        assert res.json()["field"] == field, (model, res.json())
    res = post(CNN, data={"X": X.reshape(20, -1).tolist(), "y": y.tolist()})
    assert res.status_code == 422 and res.json()["field"] == "data.X"
    val = {"X": X[:4, :, :7].tolist(), "y": y[:4].tolist()}
    res = post(CNN, validation=val)
    assert res.status_code == 422 and res.json()["field"] == "validation.X"
    res = post({"hidden": [4]})  # an mlp on images
    assert res.status_code == 422 and res.json()["field"] == "model.type"
    res = store_client.post(
        "/v1/runs",
        json={"task": "binary", "data": {"X": [[0.0, 1.0]] * 4, "y": [0, 1, 0, 1]}, "model": CNN},
    )
    assert res.status_code == 422 and res.json()["field"] == "data.X"
    assert store_client.get("/v1/runs").json()["page"]["total"] == 0


def test_gradcam_of_a_cnn_run_that_has_not_succeeded_is_a_409_problem(
    store_client: TestClient, db_session: Session
) -> None:
    X, y, _ = make_patch_images(20, size=8, patch=2)
    body = {"task": "binary", "data": {"X": X.tolist(), "y": y.tolist()}, "model": CNN}
    images = {"X": X[:2].tolist(), "target": 1}  # fits the run: only its status is wrong

    def gradcam_409(run_id: str, status: str) -> None:
        assert_not_inspectable(store_client.post(f"/v1/runs/{run_id}/gradcam", json=images), status)

    queued = store_client.post("/v1/runs", json=body)
    assert queued.status_code == 202, queued.json()
    run_id = queued.json()["id"]
    gradcam_409(run_id, "queued")
    res = store_client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 200 and res.json()["status"] == "cancelled"
    gradcam_409(run_id, "cancelled")

    failed = store_client.post("/v1/runs", json=body).json()["id"]
    assert repo.set_status(
        db_session,
        failed,
        expected="queued",
        status="failed",
        error="non-finite loss at epoch 1",
        summary={"has_weights": True},  # a checkpoint does not make a failed run inspectable
    )
    db_session.commit()
    gradcam_409(failed, "failed")
    assert store_client.get(f"/v1/runs/{failed}").json()["status"] == "failed"


def test_a_cnn_run_on_an_image_dataset_splits_by_group_and_loads_flat_pixels(
    store_client: TestClient, db_session: Session
) -> None:
    X, y, _ = make_patch_images(90, size=6, patch=2, seed=2)
    site = np.array([f"site-{i % 9}" for i in range(90)])
    first = np.tile(np.arange(90, dtype=np.float32)[:, None, None, None], (1, 1, 6, 6))
    X = X + 1000 * first  # every pixel of image i is about 1000 i: rows can be traced back
    ds = upload(store_client, npz(X=X, y=y, site=site), "target=y").json()["id"]
    body = {
        "task": "binary",
        "data": {"dataset_id": ds},
        "model": CNN,
        "validation": {"group_column": "site", "fraction": 0.3},
    }
    res = store_client.post("/v1/runs", json=body)
    assert res.status_code == 202, res.json()
    doc = res.json()
    assert doc["data"]["input_shape"] == [1, 6, 6] and doc["data"]["features"] == ["X"]
    assert doc["spec"]["model"]["input_shape"] == [1, 6, 6]
    run = repo.get_run(db_session, doc["id"], with_data=True)
    assert run is not None and run.n_features == 36
    split = load_split(db_session, run)
    assert split.X_train.shape[1] == 36 and split.X_val.shape[1] == 36
    rows_val = np.round(split.X_val[:, 0] / 1000).astype(int)
    rows_train = np.round(split.X_train[:, 0] / 1000).astype(int)
    assert not {r % 9 for r in rows_val} & {r % 9 for r in rows_train}
    np.testing.assert_allclose(split.X_val, X[rows_val].reshape(len(rows_val), -1))

    other = upload(store_client, npz(X=X[:, :, :5], y=y), "target=y").json()["id"]
    for data, validation, field in (
        ({"dataset_id": ds}, {"dataset_id": other}, "validation.dataset_id"),
        ({"dataset_id": ds, "features": ["site"]}, {}, "data.features"),
        ({"dataset_id": ds}, {}, "data.dataset_id"),  # with input_shape [1, 5, 5] below
    ):
        model = {**CNN, "input_shape": [1, 5, 5]} if field == "data.dataset_id" else CNN
        res = store_client.post(
            "/v1/runs",
            json={"task": "binary", "data": data, "validation": validation, "model": model},
        )
        assert res.status_code == 422, res.json()
        assert res.json()["field"] == field


# -- trained runs (in-process runner, committed databases) ---------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    torch.set_num_threads(1)
    with live_app(request, tmp_path_factory) as client:
        yield client


@pytest.fixture(scope="module")
def patch_run(live: TestClient) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """A cnn trained on inline bright-patch images (binary); held-out images and boxes."""
    X, y, boxes = make_patch_images(300, size=12, patch=3, seed=3)
    res = live.post(
        "/v1/runs",
        json={
            "task": "binary",
            "data": {"X": X[:240, 0].tolist(), "y": y[:240].tolist()},  # N×H×W: one channel
            "model": {**CNN, "head_pool": "avg"},
            "optimizer": {"lr": 0.01},
            "epochs": 8,
            "batch_size": 32,
            "device": "cpu",
        },
    )
    assert res.status_code == 202, res.json()
    run = wait_for(live, f"/v1/runs/{res.json()['id']}")
    assert run["status"] == "succeeded", run
    assert run["spec"]["model"]["input_shape"] == [1, 12, 12]
    assert run["data"]["input_shape"] == [1, 12, 12]
    return run["id"], X[240:], y[240:], boxes[240:]


def test_an_image_run_predicts_images_of_its_shape_and_refuses_others(live, patch_run) -> None:
    run_id, X, y, _ = patch_run
    res = live.post(f"/v1/runs/{run_id}/predict", json={"X": X.tolist()})
    assert res.status_code == 200, res.json()
    assert np.mean(np.asarray(res.json()["labels"]) == y) >= 0.9
    flat = live.post(f"/v1/runs/{run_id}/predict", json={"X": X.reshape(len(X), -1).tolist()})
    np.testing.assert_allclose(flat.json()["logits"], res.json()["logits"], rtol=1e-6)
    bad = live.post(f"/v1/runs/{run_id}/predict", json={"X": X[:, :, :10].tolist()})
    assert bad.status_code == 422 and bad.json()["field"] == "X"
    assert "1×10×12" in bad.json()["detail"] and "1×12×12" in bad.json()["detail"]


def test_gradcam_is_a_job_whose_maps_point_at_the_patch_with_overlays_and_a_plot(
    live, patch_run
) -> None:
    run_id, X, y, boxes = patch_run
    pos = np.flatnonzero(y == 1)[:20]
    res = live.post(f"/v1/runs/{run_id}/gradcam", json={"X": X[pos].tolist(), "target": 1})
    assert res.status_code == 202, res.json()
    assert res.headers["location"] == f"/v1/inspections/{res.json()['id']}"
    done = wait_for(live, res.headers["location"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["layer"] == "conv1" and result["layers"] == ["conv0", "conv1"]
    maps = np.asarray(result["maps"])
    assert maps.shape == (len(pos), 12, 12) and maps.min() >= 0 and maps.max() <= 1
    peaks = np.asarray([p if p is not None else [-1, -1] for p in result["peaks"]])
    inside = ((peaks >= boxes[pos]) & (peaks < boxes[pos] + 3)).all(axis=1)
    assert inside.mean() >= 0.9, result["peaks"]
    assert len(result["overlays"]) == len(pos)
    assert base64.b64decode(result["overlays"][0])[:8] == b"\x89PNG\r\n\x1a\n"
    png = live.get(f"{res.headers['location']}/plot", params={"format": "png"})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    svg = live.get(f"{res.headers['location']}/plot")
    assert svg.status_code == 200 and svg.content.startswith(b"<?xml")


def test_gradcam_requests_that_do_not_fit_the_run_are_422(live, patch_run) -> None:
    run_id, X, _, _ = patch_run
    url = f"/v1/runs/{run_id}/gradcam"
    for body, field in (
        ({"X": X[:2, :, :11].tolist()}, "X"),
        ({"X": X[:2].tolist(), "layer": "conv2"}, "layer"),
        ({"X": X[:2].tolist(), "target": 2}, "target"),
        ({"X": X[:2].tolist(), "target": [0, 1, 1]}, "target"),
    ):
        res = live.post(url, json=body)
        assert res.status_code == 422, (body, res.json())
        assert res.json()["field"] == field


def test_image_robustness_families_degrade_the_metric_reproducibly(live, patch_run) -> None:
    run_id, _, _, _ = patch_run
    body = {
        "families": ["gaussian_noise", "blur", "occlusion", "brightness", "contrast"],
        "levels": {"gaussian_noise": [0.0, 4.0], "occlusion": [0.0, 1.0]},
        "metric": "accuracy",
        "seed": 7,
    }
    first, second = (live.post(f"/v1/runs/{run_id}/robustness", json=body) for _ in range(2))
    assert first.status_code == 202, first.json()
    a = wait_for(live, first.headers["location"])["result"]
    b = wait_for(live, second.headers["location"])["result"]
    assert a["families"] == b["families"]
    noise = a["families"]["gaussian_noise"]["values"]
    assert noise[0] == a["clean"] and noise[1] < a["clean"] - 0.2
    occluded = a["families"]["occlusion"]["values"]  # level 1: every image the same gray
    assert occluded[0] == a["clean"] and occluded[1] <= 0.7
    assert all(v <= a["clean"] for v in a["families"]["contrast"]["values"])
    res = live.post(
        f"/v1/runs/{run_id}/robustness", json={"families": ["blur"], "levels": {"blur": [20]}}
    )
    assert res.status_code == 422 and res.json()["field"] == "levels.blur"


def test_image_methods_on_tabular_runs_and_tabular_methods_on_image_runs_are_422(
    live, patch_run
) -> None:
    run_id, X, _, _ = patch_run
    rng = np.random.default_rng(0)
    T = rng.normal(size=(60, 3))
    res = live.post(
        "/v1/runs",
        json={
            "task": "binary",
            "data": {"X": T.tolist(), "y": (T[:, 0] > 0).astype(int).tolist()},
            "epochs": 2,
            "device": "cpu",
        },
    )
    tabular = wait_for(live, f"/v1/runs/{res.json()['id']}")["id"]
    cases = [
        (tabular, "gradcam", {"X": X[:2].tolist()}, "run_id"),
        (tabular, "robustness", {"families": ["blur"]}, "families"),
        (run_id, "robustness", {"families": ["gaussian_jitter"]}, "families"),
        (run_id, "importance", {}, "run_id"),
        (run_id, "attributions", {"X": [[0.0] * 144]}, "run_id"),
    ]
    for rid, kind, body, field in cases:
        res = live.post(f"/v1/runs/{rid}/{kind}", json=body)
        assert res.status_code == 422, (kind, res.json())
        assert res.json()["field"] == field, (kind, res.json())


def test_a_cnn_learns_the_digits_uploaded_as_npz(live) -> None:
    """scikit-learn's bundled 8×8 digits (no download): upload, train briefly, predict."""
    digits = load_digits()
    body = npz(X=digits.images.astype(np.uint8), y=digits.target)
    ds = upload(live, body, "target=y&name=digits")
    assert ds.status_code == 201, ds.json()
    res = live.post(
        "/v1/runs",
        json={
            "task": "multiclass",
            "data": {"dataset_id": ds.json()["id"]},
            "model": {"type": "cnn", "blocks": [{"channels": 8}, {"channels": 16}], "head": [32]},
            "optimizer": {"lr": 0.003},
            "epochs": 6,
            "batch_size": 64,
            "device": "cpu",
        },
    )
    assert res.status_code == 202, res.json()
    run = wait_for(live, f"/v1/runs/{res.json()['id']}")
    assert run["status"] == "succeeded", run
    assert run["summary"]["final_metrics"]["accuracy"] >= 0.9
    pred = live.post(f"/v1/runs/{run['id']}/predict", json={"X": digits.images[:50].tolist()})
    assert np.mean(np.asarray(pred.json()["labels"]) == digits.target[:50]) >= 0.9


def test_data_checks_of_an_image_run_compare_channel_brightness_and_contrast(
    live: TestClient, patch_run: tuple[str, np.ndarray, np.ndarray, np.ndarray]
) -> None:
    res = live.get(f"/v1/runs/{patch_run[0]}/data-checks")
    assert res.status_code == 200, res.json()
    doc = res.json()
    assert doc["image_shape"] == [1, 12, 12]
    assert [f["name"] for f in doc["features"]] == ["channel0_mean", "channel0_std"]
    assert doc["n_train"] + doc["n_validation"] == 240
    assert doc["duplicates"]["n_val_rows_in_train"] == 0


def test_data_checks_of_two_image_datasets_find_shifted_brightness_and_copied_images(
    store_client: TestClient,
) -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(200, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 2, 200)
    Xv = X[:100].copy()
    Xv[:, 1] += 0.5  # the second channel of the validation images is brighter ...
    Xv[:5] = X[150:155]  # ... except five images copied from training
    a = upload(store_client, npz(X=X, y=y), "target=y").json()["id"]
    b = upload(store_client, npz(X=Xv, y=y[:100]), "target=y").json()["id"]
    res = store_client.post(
        "/v1/data-checks", json={"train_dataset_id": a, "validation_dataset_id": b}
    )
    assert res.status_code == 200, res.json()
    doc = res.json()
    assert "channel1_mean" in doc["drifted"] and "channel0_mean" not in doc["drifted"]
    assert doc["duplicates"]["n_val_rows_in_train"] == 5
    assert doc["duplicates"]["val_indices"] == [0, 1, 2, 3, 4]

    other = upload(store_client, npz(X=X[:, :1], y=y), "target=y").json()["id"]
    res = store_client.post(
        "/v1/data-checks", json={"train_dataset_id": a, "validation_dataset_id": other}
    )
    assert res.status_code == 422 and res.json()["field"] == "validation_dataset_id"
