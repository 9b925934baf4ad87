"""Reading the two input forms: ids, class order, defaults, and what the engine is given."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from app.core.detection import evaluate_coco, evaluate_detections, from_coco, from_images, to_coco
from app.errors import InvalidInput
from tests.core.test_detection_coco import as_images, make_set


def test_classes_default_to_the_labels_seen_integers_before_strings() -> None:
    ds = from_images(
        [
            {"ground_truth": {"boxes": [[0, 0, 1, 1]] * 2, "labels": ["b", 10]}},
            {"predictions": {"boxes": [[0, 0, 1, 1]] * 2, "labels": [2, "a"], "scores": [1, 1]}},
        ]
    )
    assert ds.category_ids == [2, 10, "a", "b"]
    assert ds.gt_category.tolist() == [3, 1] and ds.pred_category.tolist() == [0, 2]


def test_a_posted_class_order_gives_the_same_numbers_as_the_sorted_one() -> None:
    # The engine sorts category ids: a posted order that is not sorted must not mix classes up.
    gt, results = make_set(8, n_images=30)
    ids = [c["id"] for c in gt["categories"]]
    shuffled = from_coco(gt, results)
    by_id = {r["category_id"]: r for r in evaluate_detections(shuffled)["per_class"]}
    images = as_images(gt, results, "xyxy", np.random.default_rng(0))
    reversed_order = sorted(ids, reverse=True)
    ds = from_images(images, categories=reversed_order, box_format="xyxy")
    report = evaluate_detections(ds)
    assert [r["category_id"] for r in report["per_class"]] == reversed_order
    for row in report["per_class"]:
        assert row["ap"] == by_id[row["category_id"]]["ap"]
        assert row["ar"] == by_id[row["category_id"]]["ar"]


def test_coco_ids_are_kept_when_positive_and_renumbered_otherwise() -> None:
    gt, results = make_set(9, n_images=20)
    kept, _ = to_coco(from_coco(copy.deepcopy(gt), copy.deepcopy(results)))
    assert [im["id"] for im in kept["images"]] == sorted(im["id"] for im in gt["images"])
    shifted_gt, shifted = copy.deepcopy(gt), copy.deepcopy(results)
    for item in [*shifted_gt["images"], *shifted_gt["categories"]]:
        item["id"] -= 1000  # zero and negative ids: the engine gets 1..n in the same order
    for item in [*shifted_gt["annotations"], *shifted]:
        item["image_id"] -= 1000
        item["category_id"] -= 1000
    renumbered, _ = to_coco(from_coco(shifted_gt, shifted))
    assert [im["id"] for im in renumbered["images"]] == list(range(1, 21))
    a = evaluate_coco(from_coco(gt, results))
    b = evaluate_coco(from_coco(shifted_gt, shifted))
    assert np.array_equal(a.precision, b.precision) and np.array_equal(a.recall, b.recall)


def test_areas_default_to_the_box_area_and_names_are_made_unique() -> None:
    ds = from_coco(
        {
            "images": [{"id": 1}],
            "categories": [{"id": 4, "name": "cat"}, {"id": 2, "name": "cat"}, {"id": 9}],
            "annotations": [
                {"image_id": 1, "category_id": 4, "bbox": [0, 0, 3, 5]},
                {"image_id": 1, "category_id": 2, "bbox": [0, 0, 3, 5], "area": 2.5},
            ],
        },
        [],
    )
    assert ds.gt_area.tolist() == [15.0, 2.5]
    assert ds.category_names == ["cat (2)", "cat (4)", "9"]


def test_boxes_in_every_format_become_the_same_xywh() -> None:
    def one(box: list[float], fmt: str) -> list[float]:
        entry = {"ground_truth": {"boxes": [box], "labels": [1]}}
        return from_images([entry], box_format=fmt).gt_boxes[0].tolist()  # type: ignore[arg-type]

    assert one([1, 2, 4, 8], "xyxy") == one([1, 2, 3, 6], "xywh") == one([2.5, 5, 3, 6], "cxcywh")


@pytest.mark.parametrize(
    ("images", "field"),
    [
        ([{"ground_truth": {"boxes": [[0, 0, 1, float("nan")]], "labels": [1]}}],
         "images[0].ground_truth.boxes[0]"),
        ([{}, {"predictions": {"boxes": [[0, 0, 1, 1], [0, 0, 1, 1]], "labels": [1, 1],
                               "scores": [0.5, float("inf")]}}],
         "images[1].predictions.scores[1]"),
        ([{"ground_truth": {"boxes": [[0, 0, 1, 1]], "labels": [[1]]}}],
         "images[0].ground_truth.labels[0]"),
        ([{"image_id": True}], "images[0].image_id"),
        (["not an object"], "images[0]"),
    ],
)  # fmt: skip
def test_bad_values_name_their_path(images: list[Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        from_images(images)
    assert err.value.field == field
