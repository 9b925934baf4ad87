"""The confusion matrix of detections, with a background row and column.

Convention (the service's, as scikit-learn's: **rows are the truth, columns the prediction**;
the transpose of the Ultralytics plot, whose rows are predictions). With ``K`` categories the
matrix is ``(K + 1) x (K + 1)``, index ``K`` being *background*:

- ``M[i, j]``, ``i, j < K``: a ground-truth box of class ``i`` matched by a prediction of class
  ``j`` (the diagonal holds the correct ones; off the diagonal, right place, wrong class);
- ``M[i, K]``: a ground-truth box of class ``i`` that no prediction matched (a miss, a false
  negative);
- ``M[K, j]``: a prediction of class ``j`` that matched no ground truth (a false positive);
- ``M[K, K] = 0`` always.

Matching, per image: only predictions with ``score ≥ score_threshold`` take part; a prediction
and a ground-truth box may be matched if ``IoU ≥ iou_threshold``, *whatever their classes*; pairs
are taken greedily by decreasing IoU (ties: the earlier prediction, then the earlier ground
truth, in posted order), each box used at most once. Crowd regions (``iscrowd``) are not ground
truth here: they are no row, and an unmatched prediction that lies mostly inside one
(``|p ∩ crowd| / |p| ≥ iou_threshold``, COCO's crowd IoU, any class) is not counted. Every
prediction above the threshold counts (there is no per-image cap as in COCO's ``max_dets``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np
from numpy.typing import NDArray

from app.core.detection._boxes import pair_coverage, pair_iou
from app.core.detection._inputs import DetectionSet
from app.errors import InvalidInput

DEFAULT_IOU: Final = 0.5
DEFAULT_SCORE_THRESHOLD: Final = 0.25
#: Candidate (ground truth, prediction) pairs handled per block, to bound memory.
_PAIRS_PER_BLOCK: Final = 1 << 21

IntArray = NDArray[np.int64]


def detection_confusion(
    ds: DetectionSet,
    *,
    iou_threshold: float = DEFAULT_IOU,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> IntArray:
    """The ``(K + 1) x (K + 1)`` detection confusion matrix (int64 counts; see the module).

    >>> from app.core.detection._inputs import from_images
    >>> ds = from_images([{"ground_truth": {"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]],
    ...     "labels": ["cat", "dog"]}, "predictions": {"boxes": [[0, 0, 10, 9],
    ...     [80, 80, 90, 90]], "labels": ["dog", "cat"], "scores": [0.9, 0.8]}}])
    >>> detection_confusion(ds).tolist()  # cat seen as dog; dog missed; a cat out of nowhere
    [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise InvalidInput(f"is {iou_threshold!r}: must be in (0, 1]", field="confusion_iou")
    if not np.isfinite(score_threshold):
        raise InvalidInput(
            f"is {score_threshold!r}: must be finite", field="confusion_score_threshold"
        )
    k = ds.n_categories
    matrix = np.zeros((k + 1, k + 1), dtype=np.int64)
    truth = np.flatnonzero(~ds.gt_crowd)
    crowd = np.flatnonzero(ds.gt_crowd)
    preds = np.flatnonzero(ds.pred_scores >= score_threshold)
    g_matched, p_matched = _match(ds, truth, preds, iou_threshold)
    np.add.at(matrix, (ds.gt_category[g_matched], ds.pred_category[p_matched]), 1)
    missed = np.setdiff1d(truth, g_matched, assume_unique=True)
    matrix[:k, k] += np.bincount(ds.gt_category[missed], minlength=k)
    spare = np.setdiff1d(preds, p_matched, assume_unique=True)
    spare = spare[~_in_crowd(ds, spare, crowd, iou_threshold)]
    matrix[k, :k] += np.bincount(ds.pred_category[spare], minlength=k)
    return matrix


def greedy_match(
    gt: IntArray, pred: IntArray, iou: NDArray[np.float64]
) -> tuple[IntArray, IntArray]:
    """Greedy one-to-one matching of candidate pairs by decreasing IoU.

    ``gt[i], pred[i], iou[i]`` is a candidate pair. Pairs are ranked by ``(-iou, pred, gt)``;
    the result equals walking that ranking and keeping each pair whose two boxes are still free,
    but is computed in rounds: every pair that ranks first among the remaining pairs of both its
    boxes is kept (at least the best pair each round), and the pairs touching kept boxes are
    dropped.

    >>> greedy_match(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.8, 0.7]))
    (array([0]), array([0]))
    >>> greedy_match(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.7, 0.9, 0.8]))
    (array([0, 1]), array([1, 0]))
    """
    order = np.lexsort((gt, pred, -iou))
    g, p = gt[order], pred[order]
    kept_g: list[IntArray] = []
    kept_p: list[IntArray] = []
    while g.size:
        best = np.zeros(g.size, dtype=bool)
        first_for_g = np.unique(g, return_index=True)[1]
        first_for_p = np.unique(p, return_index=True)[1]
        best[np.intersect1d(first_for_g, first_for_p, assume_unique=True)] = True
        kept_g.append(g[best])
        kept_p.append(p[best])
        free = ~np.isin(g, g[best]) & ~np.isin(p, p[best])
        g, p = g[free], p[free]
    if not kept_g:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(kept_g), np.concatenate(kept_p)


def _match(
    ds: DetectionSet, truth: IntArray, preds: IntArray, iou_threshold: float
) -> tuple[IntArray, IntArray]:
    """Matched (ground truth, prediction) rows of the whole set, image block by image block."""
    matched_g: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    matched_p: list[IntArray] = [np.zeros(0, dtype=np.int64)]
    for g, p in _same_image_pairs(ds.gt_image, truth, ds.pred_image, preds, ds.n_images):
        iou = pair_iou(ds.gt_boxes[g], ds.pred_boxes[p])
        close = iou >= iou_threshold
        mg, mp = greedy_match(g[close], p[close], iou[close])
        matched_g.append(mg)
        matched_p.append(mp)
    return np.concatenate(matched_g), np.concatenate(matched_p)


def _in_crowd(
    ds: DetectionSet, preds: IntArray, crowd: IntArray, iou_threshold: float
) -> NDArray[np.bool_]:
    """Which of ``preds`` lie inside a crowd region of their image (crowd IoU ≥ threshold)."""
    inside = np.zeros(preds.size, dtype=bool)
    if not crowd.size or not preds.size:
        return inside
    position = np.empty(ds.pred_image.size, dtype=np.int64)
    position[preds] = np.arange(preds.size)
    for c, p in _same_image_pairs(ds.gt_image, crowd, ds.pred_image, preds, ds.n_images):
        covered = pair_coverage(ds.pred_boxes[p], ds.gt_boxes[c]) >= iou_threshold
        inside[position[p[covered]]] = True
    return inside


def _same_image_pairs(
    a_image: IntArray, a_rows: IntArray, b_image: IntArray, b_rows: IntArray, n_images: int
) -> Iterator[tuple[IntArray, IntArray]]:
    """Every pair ``(a, b)`` of rows on the same image, in blocks of whole images.

    Within an image the pairs run ``a``-major in posted order; rows are grouped by a stable sort
    on the image, so the order inside an image is the posted one.
    """
    a = a_rows[np.argsort(a_image[a_rows], kind="stable")]
    b = b_rows[np.argsort(b_image[b_rows], kind="stable")]
    n_a = np.bincount(a_image[a], minlength=n_images)
    n_b = np.bincount(b_image[b], minlength=n_images)
    start_a = np.concatenate([[0], np.cumsum(n_a)])
    start_b = np.concatenate([[0], np.cumsum(n_b)])
    pairs = n_a * n_b
    images = np.flatnonzero(pairs)
    if not images.size:
        return
    ends = np.cumsum(pairs[images])
    lo = 0
    while lo < images.size:
        # Whole images up to the block size (at least one image per block).
        done = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, done + _PAIRS_PER_BLOCK, side="right")))
        block = images[lo:hi]
        per = pairs[block]
        offset = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
        nb = np.repeat(n_b[block], per)
        yield (
            a[np.repeat(start_a[block], per) + offset // nb],
            b[np.repeat(start_b[block], per) + offset % nb],
        )
        lo = hi
