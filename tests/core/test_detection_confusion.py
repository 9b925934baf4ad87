"""The detection confusion matrix on hand-computed cases, and its greedy matching.

Rows are the ground-truth class, columns the predicted class; the last row and column are
background (row: false positives, column: missed ground truth).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.core.detection import confusion, detection_confusion, from_coco, from_images, greedy_match
from app.errors import InvalidInput
from tests.core.test_detection_coco import make_set

A = [0, 0, 10, 10]


def one_image(
    truth: list[tuple[list[float], str]],
    preds: list[tuple[list[float], str, float]],
    crowd: list[int] | None = None,
) -> Any:
    return from_images(
        [
            {
                "ground_truth": {
                    "boxes": [b for b, _ in truth],
                    "labels": [c for _, c in truth],
                    "iscrowd": crowd or [0] * len(truth),
                },
                "predictions": {
                    "boxes": [b for b, _, _ in preds],
                    "labels": [c for _, c, _ in preds],
                    "scores": [s for _, _, s in preds],
                },
            }
        ],
        categories=["a", "b"],
    )


def test_the_best_iou_wins_whatever_the_class_and_the_other_is_a_false_positive() -> None:
    # IoU 0.8 (class a, score .5) and 0.9 (class b, score .9) on one ground truth of class a.
    ds = one_image([(A, "a")], [([0, 0, 10, 8], "a", 0.5), ([0, 0, 10, 9], "b", 0.9)])
    assert detection_confusion(ds).tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]


def test_a_correct_match_is_on_the_diagonal_and_a_miss_in_the_background_column() -> None:
    ds = one_image([(A, "a"), ([50, 50, 60, 60], "b")], [([0, 0, 10, 9], "a", 0.7)])
    assert detection_confusion(ds).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_predictions_below_the_score_threshold_are_left_out() -> None:
    ds = one_image([(A, "a")], [([0, 0, 10, 9], "a", 0.2)])
    assert detection_confusion(ds).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]
    assert detection_confusion(ds, score_threshold=0.2).tolist() == [
        [1, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
    ]


def test_an_iou_equal_to_the_threshold_matches() -> None:
    ds = one_image([(A, "a")], [([0, 0, 10, 5], "a", 0.9)])  # IoU exactly 0.5
    assert detection_confusion(ds, iou_threshold=0.5)[0, 0] == 1
    assert detection_confusion(ds, iou_threshold=0.51).tolist() == [
        [0, 0, 1],
        [0, 0, 0],
        [1, 0, 0],
    ]


def test_boxes_on_different_images_never_match() -> None:
    ds = from_images(
        [
            {"ground_truth": {"boxes": [A], "labels": ["a"]}},
            {"predictions": {"boxes": [A], "labels": ["a"], "scores": [0.9]}},
        ]
    )
    assert detection_confusion(ds).tolist() == [[0, 1], [1, 0]]


def test_crowd_regions_are_no_row_and_absorb_the_predictions_inside_them() -> None:
    ds = one_image(
        [([0, 0, 100, 100], "a")],
        [([10, 10, 20, 20], "b", 0.9), ([90, 90, 120, 120], "a", 0.9)],  # inside; 1/9 inside
        crowd=[1],
    )
    assert detection_confusion(ds).tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]


def test_one_prediction_matches_one_ground_truth_only() -> None:
    ds = one_image([(A, "a"), ([0, 0, 10, 9], "a")], [(A, "a", 0.9)])
    assert detection_confusion(ds).tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 0]]


def sequential_greedy(gt: np.ndarray, pred: np.ndarray, iou: np.ndarray) -> set[tuple[int, int]]:
    """The plain definition: walk pairs by (-iou, pred, gt) and keep those with free boxes."""
    used_g: set[int] = set()
    used_p: set[int] = set()
    kept = set()
    for i in np.lexsort((gt, pred, -iou)):
        g, p = int(gt[i]), int(pred[i])
        if g not in used_g and p not in used_p:
            kept.add((g, p))
            used_g.add(g)
            used_p.add(p)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_greedy_match_equals_the_sequential_definition_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    gt, pred = rng.integers(0, 30, n), rng.integers(0, 40, n)
    iou = rng.integers(5, 10, n) / 10.0  # few distinct values: ties everywhere
    mg, mp = greedy_match(gt, pred, iou)
    assert set(zip(mg.tolist(), mp.tolist(), strict=True)) == sequential_greedy(gt, pred, iou)


def test_small_blocks_give_the_same_matrix_with_consistent_margins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gt, results = make_set(0, n_images=40)
    ds = from_coco(gt, results)
    whole = detection_confusion(ds)
    monkeypatch.setattr(confusion, "_PAIRS_PER_BLOCK", 7)
    assert np.array_equal(detection_confusion(ds), whole)
    k = ds.n_categories
    truth = np.bincount(ds.gt_category[~ds.gt_crowd], minlength=k)
    assert whole[:k].sum(axis=1).tolist() == truth.tolist()
    kept = np.bincount(ds.pred_category[ds.pred_scores >= 0.25], minlength=k)
    assert (whole[:, :k].sum(axis=0) <= kept).all()  # those in crowd regions are not counted
    assert whole[k, k] == 0 and whole[:k, :k].trace() > 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"iou_threshold": 0.0}, "confusion_iou"),
        ({"iou_threshold": 1.5}, "confusion_iou"),
        ({"score_threshold": float("nan")}, "confusion_score_threshold"),
    ],
)
def test_bad_thresholds_are_invalid_input(options: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        detection_confusion(one_image([(A, "a")], []), **options)  # type: ignore[arg-type]
    assert err.value.field == field
