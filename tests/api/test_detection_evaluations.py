"""POST /v1/detection-evaluations end to end: both input forms, storage, plots, bad input."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.api.conftest import LIMITS
from tests.api.test_errors import problem
from tests.core.test_detection_coco import SUMMARY, as_images, make_set, reference

URL = "/v1/detection-evaluations"

SMALL = {
    "images": [
        {
            "image_id": "a",
            "ground_truth": {"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "labels": ["cat", "dog"]},
            "predictions": {
                "boxes": [[0, 0, 10, 9], [80, 80, 90, 90]],
                "labels": ["cat", "cat"],
                "scores": [0.9, 0.8],
            },
        },
        {"image_id": "b"},
    ]
}
COCO_SMALL = {
    "ground_truth": {
        "info": {"description": "kept as it is"},
        "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0},
            {"id": 6, "image_id": 2, "category_id": 2, "bbox": [5, 5, 4, 4], "area": 12.0},
        ],
    },
    "detections": [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 9], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [5, 5, 4, 4], "score": 0.3},
    ],
}


def post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post(URL, json=body)


def test_per_image_form_reports_coco_metrics_curves_and_confusion(client: TestClient) -> None:
    res = post(client, SMALL)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["task"] == "detection" and body["n_samples"] == 2
    assert body["counts"] == {
        "images": 2,
        "ground_truth": 2,
        "crowd": 0,
        "predictions": 2,
        "categories": 2,
    }
    assert list(body["metrics"]) == SUMMARY
    # cat: one hit at IoU 0.9 ranked first, so AP50 = 1 and AP@[.5:.95] = 9/10; dog: missed.
    cat, dog = body["per_class"]
    assert (cat["name"], cat["ap_50"], cat["ap"]) == ("cat", 1.0, pytest.approx(0.9))
    assert (dog["ap"], dog["ar"]) == (0.0, 0.0)
    assert body["metrics"]["map_50"] == pytest.approx(0.5)
    assert set(body["curves"]["pr"]) == {"cat", "dog"}
    cm = body["confusion_matrix"]
    assert cm["labels"] == ["cat", "dog", "background"]
    assert cm["counts"] == [[1, 0, 0], [0, 0, 1], [1, 0, 0]]
    assert (cm["iou"], cm["score_threshold"]) == (0.5, 0.25)
    assert body["params"]["box_format"] == "xyxy" and body["params"]["max_dets"] == [1, 10, 100]


def test_coco_files_are_accepted_as_they_are(client: TestClient) -> None:
    res = post(client, COCO_SMALL)
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["params"]["box_format"] == "xywh"
    cat, dog = body["per_class"]
    assert (cat["category_id"], cat["ap_50"], cat["ap"]) == (1, 1.0, pytest.approx(0.9))
    assert (dog["category_id"], dog["ap"], dog["n_ground_truth"]) == (2, 0.0, 1)
    assert body["metrics"]["map_small"] == body["metrics"]["map"]  # areas 100 and 12 (given)
    assert body["metrics"]["map_medium"] is None
    # The dog on image 2 is found by a cat prediction: truth dog, predicted cat.
    assert body["confusion_matrix"]["counts"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_both_forms_of_a_generated_set_equal_pycocotools(client: TestClient) -> None:
    gt, results = make_set(11, n_images=40)
    stats = reference(gt, results).stats
    images = as_images(gt, results, "xyxy", np.random.default_rng(0))
    cats = [c["id"] for c in gt["categories"]]
    for body in (
        {"ground_truth": gt, "detections": results},
        {"images": images, "categories": cats},
    ):
        res = post(client, copy.deepcopy(body))
        assert res.status_code == 200, res.text
        got = res.json()["metrics"]
        for name, value in zip(SUMMARY, stats, strict=True):
            assert (got[name] is None) if value == -1 else abs(got[name] - value) <= 1e-9


def test_options_reach_the_report(client: TestClient) -> None:
    body = {
        **SMALL,
        "box_format": "xywh",
        "max_dets": [1, 5],
        "confusion_iou": 0.95,
        "confusion_score_threshold": 0.85,
    }
    res = post(client, body)
    assert res.status_code == 200, res.text
    report = res.json()
    assert "mar_5" in report["metrics"] and "mar_100" not in report["metrics"]
    assert report["params"]["box_format"] == "xywh"
    # xywh [0, 0, 10, 9] vs [0, 0, 10, 10]: IoU 0.9 < 0.95; the 0.8 prediction is left out.
    assert report["confusion_matrix"]["counts"] == [[0, 0, 1], [0, 0, 1], [1, 0, 0]]


def test_a_stored_detection_report_is_listed_fetched_and_plotted(
    store_client: TestClient,
) -> None:
    res = post(store_client, {**SMALL, "persist": True, "name": "yolo-val", "tags": ["det"]})
    assert res.status_code == 201, res.text
    created = res.json()
    assert res.headers["location"] == f"/v1/evaluations/{created['id']}"
    fetched = store_client.get(f"/v1/evaluations/{created['id']}")
    assert fetched.status_code == 200 and fetched.json() == created
    listed = store_client.get("/v1/evaluations", params={"task": "detection", "tag": "det"})
    [item] = [i for i in listed.json()["items"] if i["id"] == created["id"]]
    assert item["task"] == "detection" and item["n_samples"] == 2
    assert item["headline"]["average_precision"] == pytest.approx(created["metrics"]["map"])
    assert item["headline"]["accuracy"] is None
    for kind in ("pr", "confusion"):
        svg = store_client.get(f"/v1/evaluations/{created['id']}/plots/{kind}")
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert b"background" in svg.content if kind == "confusion" else b"AP50" in svg.content
        png = store_client.get(
            f"/v1/evaluations/{created['id']}/plots/{kind}", params={"format": "png"}
        )
        assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    roc = problem(store_client.get(f"/v1/evaluations/{created['id']}/plots/roc"), 422)
    assert "detection report has no roc plot" in roc["detail"]


def test_the_request_is_documented_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/DetectionEvaluationRequest"}
    fields = spec["components"]["schemas"]["DetectionEvaluationRequest"]["properties"]
    assert {"images", "ground_truth", "detections", "box_format", "max_dets"} <= set(fields)


def _image(**parts: Any) -> dict[str, Any]:
    return {"images": [{"image_id": 1, **parts}]}


def _gt(boxes: list[Any], labels: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"boxes": boxes, "labels": labels or [1] * len(boxes), **extra}


def _pred(boxes: list[Any], scores: list[Any], labels: list[Any] | None = None) -> dict[str, Any]:
    return {"boxes": boxes, "labels": labels or [1] * len(boxes), "scores": scores}


def _coco(**change: Any) -> dict[str, Any]:
    body = copy.deepcopy(COCO_SMALL)
    for path, value in change.items():
        *head, last = path.split("__")
        target: Any = body
        for key in head:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return body


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (_image(ground_truth=_gt([[5, 0, 4, 10]])), "images[0].ground_truth.boxes[0]", "x2 < x1"),
        (_image(ground_truth=_gt([[0, 5, 4, 1]])), "images[0].ground_truth.boxes[0]", "y2 < y1"),
        (
            {**_image(predictions=_pred([[0, 0, 4, 4], [0, 0, -2, 4]], [0.5, 0.4])),
             "box_format": "xywh"},
            "images[0].predictions.boxes[1]",
            "negative width",
        ),
        (_image(ground_truth=_gt([[0, 0, 4]])), "images[0].ground_truth.boxes[0]", "4 numbers"),
        (_image(ground_truth=_gt([[0, 0, "4", 4]])), "images[0].ground_truth.boxes[0]", "4 num"),
        (_image(predictions=_pred([[0, 0, 1, 1]], ["high"])), "images[0].predictions.scores[0]",
         "must be numbers"),
        (_image(predictions=_pred([[0, 0, 1, 1]], [0.5, 0.2])), "images[0].predictions.scores",
         "one per box"),
        (_image(ground_truth=_gt([[0, 0, 1, 1]], iscrowd=[2])),
         "images[0].ground_truth.iscrowd[0]", "0 or 1"),
        (_image(ground_truth=_gt([[0, 0, 1, 1]], area=[-1])), "images[0].ground_truth.area[0]",
         ">= 0"),
        (_image(ground_truth=_gt([[0, 0, 1, 1]], labels=[1.5])),
         "images[0].ground_truth.labels[0]", "integer or a string"),
        (_image(truth=_gt([[0, 0, 1, 1]])), "images[0].truth", "unknown field"),
        ({**_image(ground_truth=_gt([[0, 0, 1, 1]], labels=["cat"])), "categories": ["dog"]},
         "images[0].ground_truth.labels[0]", "not a known category"),
        ({"images": [{"image_id": 3}, {"image_id": 3}]}, "images[1].image_id", "listed twice"),
        ({"images": []}, "images", "non-empty"),
        ({}, "images", "no boxes"),
        ({**SMALL, **COCO_SMALL}, "images", "not both"),
        ({**SMALL, "max_dets": [10, 1]}, "max_dets", "strictly increasing"),
        ({**SMALL, "max_det": [1]}, "max_det", "Extra inputs"),
        ({**SMALL, "confusion_iou": 0}, "confusion_iou", "greater than 0"),
        ({**SMALL, "box_format": "yolo"}, "box_format", "xyxy"),
        (_coco(detections__0__image_id=99), "detections[0].image_id",
         "no entry in ground_truth.images"),
        (_coco(detections__1__category_id=7), "detections[1].category_id",
         "not a known category"),
        (_coco(ground_truth__annotations__0__category_id=7),
         "ground_truth.annotations[0].category_id", "not a known category"),
        (_coco(ground_truth__annotations__1__image_id=5),
         "ground_truth.annotations[1].image_id", "no entry"),
        (_coco(detections__0__bbox=[0, 0, -1, 2]), "detections[0].bbox", "negative width"),
        (_coco(detections__0__score=None), "detections[0].score", "must be numbers"),
        (_coco(ground_truth__images__1__id=1), "ground_truth.images[1].id", "listed twice"),
        (_coco(ground_truth__images__1__id="2"), "ground_truth.images[1].id", "an integer"),
        (_coco(ground_truth__categories=[]), "ground_truth.categories", "at least one"),
        ({"ground_truth": COCO_SMALL["ground_truth"]}, "detections", "is missing"),
        ({**COCO_SMALL, "categories": [1]}, "categories", "ground_truth.categories"),
        ({"ground_truth": [], "detections": []}, "ground_truth", "COCO dataset"),
    ],
)  # fmt: skip
def test_bad_input_is_a_422_naming_the_field_and_index(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    got = problem(post(client, body), 422)
    assert got["field"] == field, got
    assert words in got["detail"], got["detail"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        # Python's json.dumps writes NaN and Infinity; the box or score holding one is named.
        (json.dumps(_image(predictions=_pred([[0, 0, 1, 1]], [float("nan")]))),
         "images[0].predictions.scores[0]"),
        (json.dumps(_image(ground_truth=_gt([[0, 0, float("inf"), 1]]))),
         "images[0].ground_truth.boxes[0]"),
        ('{"images": [{"ground_truth": {"boxes": [[0, 0, 1e999, 1]], "labels": [1]}}]}',
         "images[0].ground_truth.boxes[0]"),
        ('{"images": [', "body"),
        ("[1, 2]", "body"),
    ],
)  # fmt: skip
def test_non_finite_numbers_and_broken_json_are_422(
    client: TestClient, text: str, field: str
) -> None:
    res = client.post(URL, content=text.encode(), headers={"content-type": "application/json"})
    got = problem(res, 422)
    assert got["field"] == field
    assert "finite" in got["detail"] or field == "body"


def test_an_empty_body_is_a_422_and_another_content_type_a_415(client: TestClient) -> None:
    empty = client.post(URL, content=b"", headers={"content-type": "application/json"})
    assert problem(empty, 422)["field"] == "body"
    problem(client.post(URL, content=b"x", headers={"content-type": "text/csv"}), 415)


def test_a_body_over_the_limit_is_a_413(client: TestClient) -> None:
    n = LIMITS["max_body_bytes"] // 25  # about 30 bytes a box
    body = _image(predictions=_pred([[0.0, 0.0, 100.0, 100.0]] * n, [0.5] * n))
    got = problem(post(client, body), 413)
    assert "EVALSERVE_MAX_BODY_BYTES" in got["detail"]


def test_too_many_boxes_is_a_413(sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, max_rows=3))
    with TestClient(app) as small:
        body = _image(ground_truth=_gt([[0, 0, 1, 1]] * 2), predictions=_pred([[0, 0, 1, 1]] * 2,
                      [0.5, 0.4]))  # fmt: skip
        got = problem(post(small, body), 413)
    assert "EVALSERVE_MAX_ROWS" in got["detail"]
