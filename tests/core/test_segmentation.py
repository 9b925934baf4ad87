"""Segmentation metrics: the pixel confusion matrix equals scikit-learn's, IoU and Dice equal
``jaccard_score`` / ``f1_score`` per class, and bad masks are refused naming the pixel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from app.core.segmentation import pixel_confusion, segmentation_report, segmentation_scores
from app.errors import InvalidInput

IGNORE = 255


def masks(
    seed: int, n: int, h: int, w: int, c: int, *, ignore: float = 0.1, dtype: Any = np.uint8
) -> tuple[np.ndarray, np.ndarray]:
    """True ids with a share of ``ignore`` pixels set to 255, and predictions right 60% of
    the time (so every cell of the matrix is hit, and a few classes stay rare)."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, c, (n, h, w)).astype(dtype)
    p = np.where(rng.random(t.shape) < 0.6, t, rng.integers(0, c, t.shape)).astype(dtype)
    t[rng.random(t.shape) < ignore] = IGNORE
    return t, p


def reference(t: np.ndarray, p: np.ndarray, c: int, ignore: int | None = IGNORE) -> dict:
    keep = np.ones(t.size, bool) if ignore is None else t.ravel() != ignore
    yt, yp = t.ravel()[keep].astype(np.int64), p.ravel()[keep].astype(np.int64)
    labels = list(range(c))
    nan = {"labels": labels, "average": None, "zero_division": np.nan}
    # jaccard_score takes zero_division 0 or 1 only: the classes absent from both are NaN here.
    present = np.isin(labels, np.concatenate([yt, yp]))
    iou = skm.jaccard_score(yt, yp, labels=labels, average=None, zero_division=0)
    return {
        "confusion": skm.confusion_matrix(yt, yp, labels=labels),
        "iou": np.where(present, iou, np.nan),
        "dice": skm.f1_score(yt, yp, **nan),
        "precision": skm.precision_score(yt, yp, **nan),
        "recall": skm.recall_score(yt, yp, **nan),
        "accuracy": skm.accuracy_score(yt, yp),
    }


@pytest.mark.parametrize("seed", range(4))
def test_confusion_iou_and_dice_equal_sklearn_on_random_masks(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    c = int(rng.integers(2, 12))
    n, h, w = (int(v) for v in rng.integers(1, 9, 3))
    t, p = masks(seed, n, h, w, c)
    ref = reference(t, p, c)
    cm = pixel_confusion(t, p, c, ignore_index=IGNORE)
    np.testing.assert_array_equal(cm, ref["confusion"])
    assert cm.dtype == np.int64
    s = segmentation_scores(cm)
    for name in ("iou", "dice", "precision", "recall"):
        np.testing.assert_allclose(getattr(s, name), ref[name], rtol=1e-12, equal_nan=True)
    assert s.pixel_accuracy == pytest.approx(ref["accuracy"], rel=1e-12)
    present = (cm.sum(0) + cm.sum(1)) > 0
    assert s.mean_iou == pytest.approx(np.mean(ref["iou"][present]), rel=1e-12)
    assert s.mean_dice == pytest.approx(np.mean(ref["dice"][present]), rel=1e-12)
    assert s.mean_accuracy == pytest.approx(np.nanmean(ref["recall"]), rel=1e-12)
    freq = cm.sum(1) / cm.sum()
    fw = np.sum(freq[freq > 0] * ref["iou"][freq > 0])
    assert s.frequency_weighted_iou == pytest.approx(fw, rel=1e-12)


def test_more_than_255_classes_count_exactly() -> None:
    # C² no longer fits the narrow uint16 flat index: the int64 path must give the same matrix.
    t, p = masks(12, 4, 20, 20, 300, dtype=np.int32)
    t[0, 0, :3] = [0, 299, 150]
    p[0, 0, :3] = [299, 299, 0]
    np.testing.assert_array_equal(
        pixel_confusion(t, p, 300, ignore_index=IGNORE, chunk_pixels=100),
        reference(t, p, 300)["confusion"],
    )


@pytest.mark.parametrize("chunk", [1, 5, 7, 64, 10_000])
def test_counts_do_not_depend_on_the_block_size(chunk: int) -> None:
    # chunk < H·W splits images into pixel ranges; chunk > H·W groups several images per block.
    t, p = masks(7, 5, 6, 9, 4)
    expected = reference(t, p, 4)["confusion"]
    got = pixel_confusion(t, p, 4, ignore_index=IGNORE, chunk_pixels=chunk)
    np.testing.assert_array_equal(got, expected)


def test_class_scores_are_argmaxed_over_axis_1_first_maximum_on_ties() -> None:
    rng = np.random.default_rng(3)
    n, c, h, w = 3, 5, 7, 6
    # Rounded scores: many ties between classes at one pixel.
    scores = np.round(rng.random((n, c, h, w)), 1).astype(np.float32)
    t, _ = masks(4, n, h, w, c)
    pred = torch.argmax(torch.from_numpy(scores), dim=1).numpy()
    ties = (scores == scores.max(axis=1, keepdims=True)).sum(axis=1) > 1
    assert ties.any()
    np.testing.assert_array_equal(
        pixel_confusion(t, scores, c, ignore_index=IGNORE, chunk_pixels=11),
        reference(t, pred, c)["confusion"],
    )


def test_logits_and_probabilities_give_the_same_matrix() -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 4, 8, 8))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    t = rng.integers(0, 4, (2, 8, 8))
    np.testing.assert_array_equal(pixel_confusion(t, logits, 4), pixel_confusion(t, proba, 4))


def test_uint8_masks_do_not_wrap_the_flat_index() -> None:
    # 19·20 + 19 = 399 does not fit in uint8: the flat index must be formed in int64.
    t = np.full((1, 2, 2), 19, np.uint8)
    p = np.array([[[19, 18], [0, 19]]], np.uint8)
    cm = pixel_confusion(t, p, 20)
    assert cm.dtype == np.int64
    assert (cm[19, 19], cm[19, 18], cm[19, 0], cm.sum()) == (2, 1, 1, 4)


def test_a_4k_mask_counts_past_float32_precision_exactly() -> None:
    # 4097² = 16,785,409 pixels of one class: odd and past 2^24, so a float32 count would
    # round it. A broadcast view costs no memory for the input.
    t = np.broadcast_to(np.zeros((1, 1, 1), np.uint8), (1, 4097, 4097))
    cm = pixel_confusion(t, t, 3)
    assert cm.dtype == np.int64
    assert cm[0, 0] == 4097 * 4097 and cm.sum() == 4097 * 4097


def test_sums_of_huge_counts_stay_exact_integers() -> None:
    # Counts near 2^60: a float64 sum would drop the +1; int64 sums keep it.
    big = 2**60
    s = segmentation_scores(np.array([[big, 1], [2, big]], np.int64))
    assert s.support.dtype == np.int64
    assert s.support.tolist() == [big + 1, big + 2]
    assert s.predicted.tolist() == [big + 2, big + 1]
    assert s.pixel_accuracy == pytest.approx(1.0, abs=1e-15)


def test_ignore_index_inside_the_class_range_drops_that_class() -> None:
    t, p = masks(9, 3, 5, 5, 4, ignore=0.0)
    cm = pixel_confusion(t, p, 4, ignore_index=0)
    np.testing.assert_array_equal(cm, reference(t, p, 4, ignore=0)["confusion"])
    assert cm[0].sum() == 0 and cm[:, 0].sum() > 0  # predicted 0 still counts


def test_predictions_at_ignored_pixels_are_not_checked() -> None:
    t = np.array([[[0, IGNORE], [1, IGNORE]]])
    p = np.array([[[0, IGNORE], [1, -3]]])
    np.testing.assert_array_equal(pixel_confusion(t, p, 2, ignore_index=IGNORE), np.eye(2))


def test_a_class_absent_from_both_masks_is_null_with_a_warning() -> None:
    t = np.array([[[0, 0], [1, 1]]])
    p = np.array([[[0, 2], [1, 1]]])  # class 2 predicted, never true; class 3 nowhere
    r = segmentation_report(t, p, 4, class_names=["sky", "road", "car", "bike"])
    per = {row["label"]: row for row in r["per_class"]}
    assert per["bike"]["iou"] is None and per["bike"]["dice"] is None
    assert per["car"]["iou"] == 0.0 and per["car"]["recall"] is None
    # Mean over sky (1/2), road (1) and car (0): bike is skipped, car counts.
    assert r["metrics"]["mean_iou"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert r["metrics"]["mean_dice"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert r["metrics"]["pixel_accuracy"] == pytest.approx(0.75)
    assert r["metrics"]["mean_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    messages = {w["metric"]: w["message"] for w in r["warnings"]}
    assert "class 'bike'" in messages["iou"] and "'car'" not in messages["iou"]
    assert "class 'car'" in messages["recall"]


def test_every_pixel_ignored_makes_every_metric_null() -> None:
    t = np.full((2, 3, 3), IGNORE)
    r = segmentation_report(t, np.zeros((2, 3, 3), int), 3, ignore_index=IGNORE)
    assert set(r["metrics"].values()) == {None}
    assert {w["metric"] for w in r["warnings"]} == set(r["metrics"])
    assert r["segmentation"]["n_ignored"] == 18 and r["n_samples"] == 18


def test_report_counts_and_geometry() -> None:
    t, p = masks(11, 2, 4, 5, 3)
    r = segmentation_report(t, p, 3, ignore_index=IGNORE)
    kept = int((t != IGNORE).sum())
    assert r["segmentation"] == {
        "num_classes": 3,
        "ignore_index": IGNORE,
        "n_images": 2,
        "mask_shape": [4, 5],
        "prediction": "class_ids",
        "n_pixels": kept,
        "n_ignored": 40 - kept,
    }
    assert np.asarray(r["confusion_matrix"]["counts"]).sum() == kept


def _raises(y_true: Any, y_pred: Any, c: int = 3, **kw: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        pixel_confusion(y_true, y_pred, c, **kw)
    return err.value


ZEROS = np.zeros((2, 2, 3), int)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "kw", "field", "needle"),
    [
        (ZEROS, np.zeros((2, 2, 4), int), {}, "y_pred", "shape (2, 4)"),
        (ZEROS, np.zeros((3, 2, 3), int), {}, "y_pred", "has 3 masks but y_true has 2"),
        (ZEROS, np.zeros((2, 4, 2, 3)), {}, "y_pred", "4 class scores on axis 1"),
        (np.zeros((2, 3), int), np.zeros((2, 3), int), {}, "y_true", "must be 3-D"),
        (ZEROS, np.zeros((2, 3, 2, 3, 1)), {}, "y_pred", "3-D (N, H, W) class ids or 4-D"),
        ([[[0, 1], [1, 0]], [[0, 1], [1]]], ZEROS, {}, "y_true", "y_true[1] is ragged"),
        ([[[0, 1]], [[0, 1], [1, 0]]], ZEROS, {}, "y_true", "y_true[1] has shape (2, 2)"),
        ([[["a"]]], [[[0]]], {}, "y_true", "must hold numbers"),
    ],
)
def test_bad_shapes_are_refused_naming_the_field(
    y_true: Any, y_pred: Any, kw: dict, field: str, needle: str
) -> None:
    err = _raises(y_true, y_pred, **kw)
    assert err.field == field and needle in err.detail, err.detail


def _with(value: Any, at: tuple[int, ...], base: np.ndarray) -> np.ndarray:
    out = base.astype(type(value) if isinstance(value, float) else base.dtype, copy=True)
    out[at] = value
    return out


@pytest.mark.parametrize(
    ("field", "value", "at", "needle"),
    [
        ("y_true", 3, (1, 0, 2), "y_true[1][0][2] is 3: class ids must lie in [0, 3)"),
        ("y_true", 7, (1, 1, 1), "or equal ignore_index"),
        ("y_true", -1, (0, 1, 0), "y_true[0][1][0] is -1"),
        ("y_true", 0.5, (1, 1, 0), "y_true[1][1][0] is 0.5: class ids must be whole"),
        ("y_true", float("nan"), (0, 0, 1), "y_true[0][0][1] is nan"),
        ("y_pred", 4, (1, 1, 2), "y_pred[1][1][2] is 4"),
        ("y_pred", 1.5, (0, 0, 0), "post class scores as (N, C, H, W)"),
    ],
)
def test_bad_ids_are_refused_naming_the_image_pixel_and_value(
    field: str, value: Any, at: tuple[int, ...], needle: str
) -> None:
    t, p = ZEROS, ZEROS
    if field == "y_true":
        t = _with(value, at, ZEROS)
    else:
        p = _with(value, at, ZEROS)
    for chunk in (2, 1000):  # the index is right whether the image is split or grouped
        err = _raises(t, p, ignore_index=IGNORE, chunk_pixels=chunk)
        assert err.field == field and needle in err.detail, err.detail


def test_non_finite_scores_are_refused_naming_the_class_and_pixel() -> None:
    scores = np.zeros((2, 3, 2, 3))
    scores[1, 2, 1, 0] = np.inf
    err = _raises(ZEROS, scores, chunk_pixels=4)
    assert err.field == "y_pred" and "y_pred[1][2][1][0] is inf" in err.detail


def test_num_classes_and_ignore_index_must_be_integers() -> None:
    assert _raises(ZEROS, ZEROS, c=0).field == "num_classes"
    assert _raises(ZEROS, ZEROS, ignore_index=2.5).field == "ignore_index"  # type: ignore[arg-type]


def test_class_names_must_name_every_class() -> None:
    with pytest.raises(InvalidInput) as err:
        segmentation_report(ZEROS, ZEROS, 3, class_names=["a", "b"])
    assert err.value.field == "labels"


def test_a_bad_confusion_matrix_is_refused() -> None:
    with pytest.raises(InvalidInput):
        segmentation_scores(np.zeros((2, 3), np.int64))
    with pytest.raises(InvalidInput):
        segmentation_scores(np.zeros((2, 2)))
