"""Segmentation over HTTP: masks as JSON, Arrow tensor columns and .npz bodies give the same
report (equal to scikit-learn on the flattened pixels); stored reports read back on SQLite and
PostgreSQL; bad masks and bad bodies get a 422 (413 past the limits) naming the field."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sklearn import metrics as skm

from tests.api.conftest import LIMITS

NPZ = "application/x-npz"
ARROW = "application/vnd.apache.arrow.stream"
QUERY = "task=segmentation&num_classes=4&ignore_index=255"


def batch(seed: int = 0, n: int = 3, h: int = 6, w: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, (n, h, w)).astype(np.uint8)
    p = np.where(rng.random(t.shape) < 0.6, t, rng.integers(0, 4, t.shape)).astype(np.uint8)
    t[rng.random(t.shape) < 0.1] = 255
    return t, p


def npz_body(compressed: bool = False, **arrays: Any) -> bytes:
    sink = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(sink, **arrays)
    return sink.getvalue()


def tensor_arrow_body(**arrays: np.ndarray) -> bytes:
    table = pa.table({k: pa.FixedShapeTensorArray.from_numpy_ndarray(v) for k, v in arrays.items()})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def post_npz(client: TestClient, body: bytes, query: str = QUERY, path: str = "/v1/evaluations"):
    return client.post(f"{path}?{query}", content=body, headers={"content-type": NPZ})


def test_json_masks_give_sklearn_confusion_and_iou(client: TestClient) -> None:
    t, p = batch()
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "segmentation",
            "num_classes": 4,
            "ignore_index": 255,
            "y_true": t.tolist(),
            "y_pred": p.tolist(),
        },
    )
    assert res.status_code == 200, res.text
    body = res.json()
    keep = t.ravel() != 255
    yt, yp = t.ravel()[keep], p.ravel()[keep]
    cm = skm.confusion_matrix(yt, yp, labels=range(4))
    assert body["task"] == "segmentation" and body["n_samples"] == t.size
    assert body["confusion_matrix"]["counts"] == cm.tolist()
    iou = skm.jaccard_score(yt, yp, labels=range(4), average=None, zero_division=0)
    dice = skm.f1_score(yt, yp, labels=range(4), average=None)
    assert [r["iou"] for r in body["per_class"]] == pytest.approx(iou.tolist(), rel=1e-12)
    assert [r["dice"] for r in body["per_class"]] == pytest.approx(dice.tolist(), rel=1e-12)
    assert body["metrics"]["mean_iou"] == pytest.approx(iou.mean(), rel=1e-12)
    assert body["metrics"]["pixel_accuracy"] == pytest.approx(skm.accuracy_score(yt, yp))
    assert body["segmentation"]["n_ignored"] == int((~keep).sum())


def test_json_class_scores_are_argmaxed(client: TestClient) -> None:
    rng = np.random.default_rng(1)
    scores = rng.random((2, 3, 4, 4))
    t = rng.integers(0, 3, (2, 4, 4))
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "segmentation",
            "num_classes": 3,
            "y_true": t.tolist(),
            "y_pred": scores.tolist(),
        },
    )
    assert res.status_code == 200, res.text
    expected = skm.confusion_matrix(t.ravel(), scores.argmax(axis=1).ravel(), labels=range(3))
    assert res.json()["confusion_matrix"]["counts"] == expected.tolist()
    assert res.json()["segmentation"]["prediction"] == "scores"


def test_npz_and_arrow_bodies_give_the_json_report(client: TestClient) -> None:
    t, p = batch(2)
    scores = np.eye(4, dtype=np.float32)[p].transpose(0, 3, 1, 2)  # one-hot (N, C, H, W)
    as_json = client.post(
        "/v1/evaluations",
        json={
            "task": "segmentation",
            "num_classes": 4,
            "ignore_index": 255,
            "y_true": t.tolist(),
            "y_pred": p.tolist(),
        },
    ).json()
    answers = [
        post_npz(client, npz_body(y_true=t, y_pred=p)),
        post_npz(client, npz_body(True, y_true=t, y_pred=scores)),
        client.post(
            f"/v1/evaluations?{QUERY}",
            content=npz_body(y_true=t.astype(np.int64), y_pred=p),
            headers={"content-type": "application/octet-stream"},
        ),
        client.post(
            f"/v1/evaluations?{QUERY}",
            content=tensor_arrow_body(y_true=t, y_pred=p),
            headers={"content-type": ARROW},
        ),
        client.post(
            f"/v1/evaluations?{QUERY}",
            content=tensor_arrow_body(y_true=t, y_pred=scores),
            headers={"content-type": ARROW},
        ),
    ]
    for res in answers:
        assert res.status_code == 200, res.text
        got = res.json()
        for key in ("metrics", "per_class", "confusion_matrix", "n_samples", "warnings"):
            assert got[key] == as_json[key], key


def test_class_names_label_the_report(client: TestClient) -> None:
    t, p = batch(3)
    res = post_npz(client, npz_body(y_true=t, y_pred=p), QUERY + "&labels=sky,road,car,bike")
    assert res.status_code == 200, res.text
    assert res.json()["confusion_matrix"]["labels"] == ["sky", "road", "car", "bike"]
    assert [r["label"] for r in res.json()["per_class"]] == ["sky", "road", "car", "bike"]


def test_a_stored_segmentation_report_reads_back_lists_and_plots(store_client: TestClient) -> None:
    t, p = batch(4)
    res = post_npz(store_client, npz_body(y_true=t, y_pred=p), QUERY + "&persist=true&model=seg-v1")
    assert res.status_code == 201, res.text
    created = res.json()
    assert res.headers["location"] == f"/v1/evaluations/{created['id']}"
    fetched = store_client.get(f"/v1/evaluations/{created['id']}")
    assert fetched.status_code == 200 and fetched.json() == created
    listed = store_client.get("/v1/evaluations?task=segmentation&model=seg-v1").json()
    assert [i["id"] for i in listed["items"]] == [created["id"]]
    headline = listed["items"][0]["headline"]
    assert headline["accuracy"] == created["metrics"]["pixel_accuracy"]
    assert headline["f1"] == created["metrics"]["mean_dice"]
    plot = store_client.get(f"/v1/evaluations/{created['id']}/plots/confusion")
    assert plot.status_code == 200 and plot.headers["content-type"].startswith("image/svg")


def test_mask_losses_take_npz_and_arrow_bodies(client: TestClient) -> None:
    rng = np.random.default_rng(5)
    t = rng.integers(0, 3, (2, 4, 4))
    logits = rng.normal(size=(2, 3, 4, 4))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    losses = '[{"name":"tversky","alpha":0.3,"beta":0.7},"jaccard","focal_tversky"]'
    as_json = client.post(
        "/v1/losses",
        json={
            "y_true": t.tolist(),
            "y_pred": proba.tolist(),
            "losses": ["tversky", "jaccard", "focal_tversky"],
        },
    )
    assert as_json.status_code == 200, as_json.text
    via_npz = post_npz(client, npz_body(y_true=t, y_pred=proba), f"losses={losses}", "/v1/losses")
    via_arrow = client.post(
        f"/v1/losses?losses={losses}",
        content=tensor_arrow_body(y_true=t, y_pred=proba),
        headers={"content-type": ARROW},
    )
    for res in (via_npz, via_arrow):
        assert res.status_code == 200, res.text
        got = [v["value"] for v in res.json()["losses"]]
        assert got == pytest.approx([v["value"] for v in as_json.json()["losses"]], rel=1e-12)


def _problem(res: Any, status: int, field: str, *needles: str) -> None:
    assert res.status_code == status, res.text
    assert res.headers["content-type"] == "application/problem+json"
    body = res.json()
    assert body["field"] == field, body
    for needle in needles:
        assert needle in body["detail"], body["detail"]


def test_masks_of_different_shapes_are_a_422(client: TestClient) -> None:
    t, p = batch()
    _problem(post_npz(client, npz_body(y_true=t, y_pred=p[:, :, :4])), 422, "y_pred", "(6, 4)")
    ragged = t.tolist()
    ragged[2] = ragged[2][:-1]
    res = client.post(
        "/v1/evaluations",
        json={"task": "segmentation", "num_classes": 4, "y_true": ragged, "y_pred": p.tolist()},
    )
    _problem(res, 422, "y_true", "y_true[2] has shape (5, 5)")


@pytest.mark.parametrize(
    ("field", "value", "at", "needles"),
    [
        ("y_true", 9, (1, 2, 3), ("y_true[1][2][3] is 9", "[0, 4)")),
        ("y_true", -2, (2, 0, 0), ("y_true[2][0][0] is -2",)),
        ("y_true", 0.25, (0, 1, 1), ("y_true[0][1][1] is 0.25", "whole")),
        ("y_pred", 4, (2, 5, 4), ("y_pred[2][5][4] is 4",)),
    ],
)
def test_bad_class_ids_are_a_422_naming_image_pixel_and_value(
    client: TestClient, field: str, value: float, at: tuple[int, ...], needles: tuple[str, ...]
) -> None:
    t, p = batch()
    arrays = {"y_true": t.astype(np.float64), "y_pred": p.astype(np.int16)}
    arrays["y_true"][at] = 1  # a predicted id is checked where the true pixel is not ignored
    arrays[field][at] = value
    _problem(post_npz(client, npz_body(**arrays)), 422, field, *needles)


def test_non_finite_probabilities_are_a_422(client: TestClient) -> None:
    t, p = batch()
    scores = np.eye(4)[np.minimum(p, 3)].transpose(0, 3, 1, 2).copy()
    scores[1, 3, 2, 2] = np.nan
    _problem(
        post_npz(client, npz_body(y_true=t, y_pred=scores)), 422, "y_pred", "y_pred[1][3][2][2]"
    )
    # JSON has no NaN, but the parser takes the token: it must be refused as well.
    body = (
        b'{"task":"segmentation","num_classes":2,"y_true":[[[0,1]]],'
        b'"y_pred":[[[[0.1,NaN]],[[0.9,0.2]]]]}'
    )
    res = client.post("/v1/evaluations", content=body, headers={"content-type": "application/json"})
    _problem(res, 422, "y_pred", "y_pred[0][0][0][1] is nan")


@pytest.mark.parametrize(
    ("arrays", "field", "needle"),
    [
        ({"y_true": np.zeros((2, 3))}, "y_true", "3-D (N, H, W)"),
        ({"y_pred": np.zeros((2, 3, 3), np.uint8)}, "y_true", "no array named 'y_true'"),
        ({"y_true": np.zeros((2, 3, 3), np.uint8)}, "y_pred", "required"),
        ({"y_pred": np.array([[[1]], [["a"]]], dtype=object)}, "y_pred", "Python objects"),
        ({"y_pred": np.zeros((1, 2, 3, 3, 3))}, "y_pred", "4-D (N, C, H, W)"),
        ({"y_score": np.zeros((1, 3, 3))}, "y_score", "post class ids or class scores as y_pred"),
    ],
)
def test_bad_npz_arrays_are_a_422(
    client: TestClient, arrays: dict[str, np.ndarray], field: str, needle: str
) -> None:
    full = {"y_true": np.zeros((1, 3, 3), np.uint8), "y_pred": np.zeros((1, 3, 3), np.uint8)}
    full.update(arrays)
    if "y_pred" not in arrays and field == "y_pred":
        del full["y_pred"]
    if "y_true" not in arrays and field == "y_true":
        del full["y_true"]
    _problem(post_npz(client, npz_body(**full)), 422, field, needle)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("task=segmentation", "num_classes"),
        ("task=segmentation&num_classes=4&curves=roc", "curves"),
        ("task=multiclass&num_classes=4", "num_classes"),
        ("task=segmentation&num_classes=0", "num_classes"),
        ("task=segmentation&num_classes=2&labels=a,b,c", "labels"),
    ],
)
def test_options_that_do_not_fit_the_task_are_a_422(
    client: TestClient, query: str, field: str
) -> None:
    body = npz_body(y_true=np.zeros((1, 2, 2), np.uint8), y_pred=np.zeros((1, 2, 2), np.uint8))
    res = post_npz(client, body, query)
    assert res.status_code == 422, res.text
    assert res.json()["field"] == field, res.json()


def test_a_body_that_is_not_an_npz_archive_is_a_422(client: TestClient) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 2, 2)))  # a lone .npy, not an archive
    _problem(post_npz(client, buf.getvalue()), 422, "body", "not an .npz archive")
    _problem(post_npz(client, b"PK\x03\x04 broken"), 422, "body", "not a readable .npz")


def test_more_pixels_than_max_rows_is_a_413(client: TestClient) -> None:
    side = int(np.sqrt(LIMITS["max_rows"])) + 1  # one image, a pixel a row
    masks = np.zeros((1, side, side), np.uint8)
    _problem(post_npz(client, npz_body(y_true=masks, y_pred=masks)), 413, "y_true", "pixel")
    res = client.post(
        "/v1/evaluations",
        json={
            "task": "segmentation",
            "num_classes": 2,
            "y_true": masks.tolist(),
            "y_pred": masks.tolist(),
        },
    )
    _problem(res, 413, "y_true", f"{side * side} pixels")
    # Just under the limit is fine: the limit counts pixels, not images.
    small = np.zeros((2, side // 2, side // 2), np.uint8)
    assert post_npz(client, npz_body(y_true=small, y_pred=small), QUERY).status_code == 200


def test_npz_bodies_serve_every_task(client: TestClient) -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 200)
    p = np.round(rng.random(200), 2)
    as_json = client.post(
        "/v1/evaluations", json={"task": "binary", "y_true": y.tolist(), "y_score": p.tolist()}
    )
    via_npz = post_npz(client, npz_body(y_true=y, y_score=p), "task=binary")
    assert via_npz.status_code == 200, via_npz.text
    assert via_npz.json()["metrics"] == as_json.json()["metrics"]


def test_a_compressed_npz_is_limited_by_its_inflated_size(client: TestClient) -> None:
    zeros = np.zeros((1, 1000, 1000), np.int64)  # 8 MB inflated, a few kB compressed
    body = npz_body(True, y_true=zeros[:, :1, :1], y_pred=zeros)
    assert len(body) < LIMITS["max_body_bytes"]
    _problem(post_npz(client, body), 413, "body", "inflated")
