"""COCO detection metrics equal pycocotools' COCOeval (the reference) to 1e-9.

Generated sets hold crowd regions, images without ground truth, images without predictions, a
class with no ground truth, a class with only crowd regions, score ties and boxes of every size.
Coordinates are multiples of 1/4, so converting between box formats is exact and both sides see
the same boxes.
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from app.core.detection import (
    DetectionOptions,
    evaluate_coco,
    evaluate_detections,
    from_coco,
    from_images,
    summary,
)

SUMMARY = [
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
]


def make_set(
    seed: int, n_images: int = 60, n_classes: int = 12, max_dets: int = 25
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A COCO ground-truth dataset and results list with every awkward case in it."""
    rng = np.random.default_rng(seed)
    image_ids = (rng.permutation(10 * n_images)[:n_images] + 1).tolist()
    cat_ids = (rng.permutation(5 * n_classes)[:n_classes] + 1).tolist()
    no_truth, only_crowd = cat_ids[0], cat_ids[1]
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id in image_ids:
        kind = rng.random()
        boxes = []
        if kind > 0.15:  # else: an image with no objects
            for _ in range(int(rng.integers(1, 8))):
                cat = int(rng.choice(cat_ids[1:]))
                box = _box(rng)
                crowd = int(cat == only_crowd or rng.random() < 0.06)
                ann = {"image_id": image_id, "category_id": cat, "bbox": box, "iscrowd": crowd}
                ann["area"] = box[2] * box[3] * (0.5 if rng.random() < 0.2 else 1.0)
                annotations.append(ann)
                boxes.append((box, cat))
        if 0.15 < kind < 0.3:
            continue  # an image with objects and no predictions
        for box, cat in boxes:
            for _ in range(int(rng.integers(0, 4))):
                jitter = rng.integers(-24, 25, 4) / 4.0
                moved = [box[0] + jitter[0], box[1] + jitter[1]]
                moved += [max(0.0, box[2] + jitter[2]), max(0.0, box[3] + jitter[3])]
                label = cat if rng.random() < 0.8 else int(rng.choice(cat_ids))
                results.append(_det(image_id, label, moved, rng))
        for _ in range(int(rng.integers(0, max_dets))):
            results.append(_det(image_id, int(rng.choice(cat_ids)), _box(rng), rng))
    for n, ann in enumerate(annotations, start=1):
        ann["id"] = n
    assert not any(a["category_id"] == no_truth for a in annotations)
    categories = [{"id": c, "name": f"class-{c}"} for c in cat_ids]
    return {"images": [{"id": i} for i in image_ids], "annotations": annotations,
            "categories": categories}, results  # fmt: skip


def _box(rng: np.random.Generator) -> list[float]:
    size = rng.choice([16.0, 64.0, 300.0])  # small, medium and large objects
    w, h = (rng.integers(1, int(4 * size), 2) / 4.0).tolist()
    return [float(rng.integers(0, 2400) / 4.0), float(rng.integers(0, 2400) / 4.0), w, h]


def _det(image_id: int, cat: int, box: list[float], rng: np.random.Generator) -> dict[str, Any]:
    score = float(rng.integers(0, 11) / 10.0)  # 11 distinct scores: heavy ties
    return {"image_id": image_id, "category_id": cat, "bbox": box, "score": score}


def reference(
    gt: dict[str, Any], results: list[dict[str, Any]], max_dets: list[int] | None = None
) -> COCOeval:
    """pycocotools' COCOeval, evaluated and accumulated (summarized for the default caps)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        engine = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), "bbox")
        if max_dets is not None:
            engine.params.maxDets = max_dets
        engine.evaluate()
        engine.accumulate()
        if max_dets is None:
            engine.summarize()
    return engine


def as_images(
    gt: dict[str, Any], results: list[dict[str, Any]], fmt: str, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The same set in the per-image form, boxes in ``fmt``, images in a shuffled order."""

    def convert(b: list[float]) -> list[float]:
        x, y, w, h = b
        return [x, y, x + w, y + h] if fmt == "xyxy" else [x + w / 2, y + h / 2, w, h]

    entries: dict[int, dict[str, Any]] = {
        im["id"]: {
            "image_id": im["id"],
            "ground_truth": {"boxes": [], "labels": [], "iscrowd": [], "area": []},
            "predictions": {"boxes": [], "labels": [], "scores": []},
        }
        for im in gt["images"]
    }
    for a in gt["annotations"]:
        truth = entries[a["image_id"]]["ground_truth"]
        truth["boxes"].append(convert(a["bbox"]))
        truth["labels"].append(a["category_id"])
        truth["iscrowd"].append(a["iscrowd"])
        truth["area"].append(a["area"])
    for d in results:
        pred = entries[d["image_id"]]["predictions"]
        pred["boxes"].append(convert(d["bbox"]))
        pred["labels"].append(d["category_id"])
        pred["scores"].append(d["score"])
    return [entries[i] for i in rng.permutation(list(entries)).tolist()]


def assert_arrays_equal(ours: Any, ref: COCOeval) -> None:
    for name in ("precision", "recall", "scores"):
        np.testing.assert_allclose(getattr(ours, name), ref.eval[name], rtol=0, atol=1e-9)


def assert_summary_equal(metrics: dict[str, float | None], ref: COCOeval) -> None:
    for name, value in zip(SUMMARY, ref.stats, strict=True):
        got = metrics[name]
        if value == -1:
            assert got is None, name
        else:
            assert got is not None and abs(got - value) <= 1e-9, (name, got, value)


@pytest.mark.parametrize(("seed", "n_classes"), [(0, 12), (1, 80)])
def test_coco_form_equals_pycocotools_arrays_and_summary(seed: int, n_classes: int) -> None:
    gt, results = make_set(seed, n_classes=n_classes)
    ref = reference(gt, results)
    ds = from_coco(gt, results)
    ours = evaluate_coco(ds)
    assert_arrays_equal(ours, ref)
    assert_summary_equal(summary(ours), ref)
    # The generated set does reach every branch the comparison is meant to cover.
    assert (ref.eval["precision"] == -1).any() and ds.gt_crowd.any()
    assert len({d["score"] for d in results}) <= 11 < len(results)


@pytest.mark.parametrize("fmt", ["xyxy", "cxcywh"])
def test_per_image_form_equals_pycocotools_in_every_box_format(fmt: str) -> None:
    gt, results = make_set(2, n_images=50)
    images = as_images(gt, results, fmt, np.random.default_rng(0))
    cats = [c["id"] for c in gt["categories"]]
    report = evaluate_detections(from_images(images, categories=cats, box_format=fmt))
    assert_summary_equal(report["metrics"], reference(gt, results))


def test_string_image_ids_keep_the_posted_order() -> None:
    gt, results = make_set(3, n_images=40)
    rng = np.random.default_rng(1)
    images = sorted(as_images(gt, results, "xyxy", rng), key=lambda e: e["image_id"])
    for entry in images:
        entry["image_id"] = f"img-{entry['image_id']}"
    report = evaluate_detections(from_images(images, box_format="xyxy"))
    assert_summary_equal(report["metrics"], reference(gt, results))


def test_custom_max_dets_equal_pycocotools_arrays() -> None:
    gt, results = make_set(4, n_images=30, max_dets=40)
    ref = reference(gt, results, max_dets=[1, 3, 7])
    ours = evaluate_coco(from_coco(gt, results), max_dets=[1, 3, 7])
    assert_arrays_equal(ours, ref)
    metrics = summary(ours)
    assert set(metrics) >= {"mar_1", "mar_3", "mar_7"} and "mar_100" not in metrics
    assert metrics["mar_3"] == pytest.approx(np.mean(ref.eval["recall"][:, :, 0, 1][
        ref.eval["recall"][:, :, 0, 1] > -1]), abs=1e-12)  # fmt: skip


def test_per_class_ap_and_the_pr_curves_come_from_the_reference_arrays() -> None:
    gt, results = make_set(5, n_images=40)
    ref = reference(gt, results)
    report = evaluate_detections(from_coco(gt, results))
    precision = ref.eval["precision"]
    sorted_ids = sorted(c["id"] for c in gt["categories"])
    for k, row in enumerate(report["per_class"]):
        assert row["category_id"] == sorted_ids[k]
        p = precision[:, :, k, 0, -1]
        if (p == -1).all():
            assert row["ap"] is None and row["ap_50"] is None and row["ar"] is None
            assert row["name"] not in report["curves"]["pr"]
            continue
        assert row["ap"] == pytest.approx(p[p > -1].mean(), abs=1e-9)
        assert row["ap_50"] == pytest.approx(p[0].mean(), abs=1e-9)
        curve = report["curves"]["pr"][row["name"]]
        assert len(curve["recall"]) == len(curve["precision"]) == 101
        np.testing.assert_allclose(curve["precision"], p[0], atol=1e-9)
        assert curve["average_precision"] == pytest.approx(row["ap_50"], abs=1e-12)


def test_classes_without_ground_truth_are_null_with_one_warning() -> None:
    gt, results = make_set(6, n_images=30)
    no_truth, only_crowd = gt["categories"][0], gt["categories"][1]
    report = evaluate_detections(from_coco(gt, results))
    rows = {r["category_id"]: r for r in report["per_class"]}
    assert rows[no_truth["id"]]["ap"] is None and rows[no_truth["id"]]["n_ground_truth"] == 0
    assert rows[only_crowd["id"]]["ap"] is None and rows[only_crowd["id"]]["n_crowd"] > 0
    [warning] = [w for w in report["warnings"] if w["metric"] == "per_class.ap"]
    assert "2 of 12 classes" in warning["message"]
    assert repr(no_truth["name"]) in warning["message"]


def test_no_predictions_at_all_gives_zero_ap_where_there_is_ground_truth() -> None:
    # pycocotools cannot load an empty results list; the values follow from the definition.
    ds = from_coco(
        {
            "images": [{"id": 1}, {"id": 2}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]}],
        },
        [],
    )
    report = evaluate_detections(ds)
    assert report["metrics"]["map"] == 0.0 and report["metrics"]["mar_100"] == 0.0
    assert report["metrics"]["map_medium"] is None  # an area of 100 is small
    assert report["confusion_matrix"]["counts"] == [[0, 1], [0, 0]]


def test_a_set_without_any_ground_truth_has_only_null_metrics() -> None:
    ds = from_images([{"predictions": {"boxes": [[0, 0, 4, 4]], "labels": ["a"], "scores": [0.9]}}])
    report = evaluate_detections(ds)
    assert all(v is None for v in report["metrics"].values())
    assert {w["metric"] for w in report["warnings"]} == {"per_class.ap", *SUMMARY}
    assert report["curves"]["pr"] == {}


def test_the_engine_writes_nothing_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    gt, results = make_set(7, n_images=10)
    evaluate_detections(from_coco(gt, results), DetectionOptions(max_dets=(1, 10, 100)))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
