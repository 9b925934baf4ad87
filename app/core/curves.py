"""One binary column ranked once, and everything read straight off it.

:func:`rank_binary` sorts a score column once and keeps the cumulative (weighted) true- and
false-positive counts at each distinct score: a :class:`BinaryRanking`, the ROC / PR curve in
count form. This module reads curves (:func:`roc_curve`, :func:`precision_recall_curve`, exact to
sklearn's, same points and ``drop_intermediate`` rules), confusion counts at a decision threshold
(:func:`counts_at_threshold`) and at every threshold (:func:`operating_points`) off it in
O(n_thresholds), and thins curves for display (:func:`downsample_curve`). The scalar metrics
(ROC-AUC, average precision and their multiclass / multilabel averages) are in
:mod:`app.core.ranking`, which re-exports all of this.

Exactness: unweighted counts are int64; weights accumulate in float64 whatever the score dtype.
Scores keep their dtype for sorting, so float32 ties stay ties; thresholds are float64.
"""

from __future__ import annotations

import bisect
import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.errors import InvalidInput

__all__ = [
    "BinaryRanking",
    "ConfusionCounts",
    "OperatingPoints",
    "counts_at_threshold",
    "downsample_curve",
    "operating_points",
    "precision_recall_curve",
    "rank_binary",
    "roc_curve",
]

Float = NDArray[np.float64]
Counts = NDArray[np.int64] | NDArray[np.float64]

# Shewchuk's error bound for the 2-D orientation determinant evaluated in float64: a computed
# |det| above this times (|detleft| + |detright|) has the sign of the exact determinant.
_EPS = 2.0**-53
_CCW_ERRBOUND = (3.0 + 16.0 * _EPS) * _EPS
_TINY = 1e-280  # below this the bound's no-underflow assumption may fail: decide exactly


@dataclass(frozen=True, slots=True)
class BinaryRanking:
    """One binary column sorted once by decreasing score, with cumulative counts.

    Attributes
    ----------
    thresholds : ndarray of shape (k,), float64
        The distinct scores of the rows with non-zero weight, strictly decreasing.
    tps, fps : ndarray of shape (k,)
        ``tps[i] = Σ w·y`` and ``fps[i] = Σ w·(1 - y)`` over the rows with
        ``score >= thresholds[i]``: int64 counts without weights, float64 sums with weights.
        Non-decreasing; ``tps[-1]``, ``fps[-1]`` are the totals. The rows of the ``i``-th tie
        group weigh ``tps[i] + fps[i] - tps[i-1] - fps[i-1] > 0``.
    scores : ndarray of shape (n_samples,)
        Every row's score (zero-weight rows included) sorted decreasing, in the input dtype;
        possibly a reversed view (``scores[::-1]`` is ascending), for quantile binning. Sums of
        scores per tie group are ``thresholds[i] * group weight``: no per-row labels are kept.

    All arrays are read-only: one ranking is shared by every metric of a request.
    """

    thresholds: Float
    tps: Counts
    fps: Counts
    scores: NDArray[np.floating[Any]]

    @property
    def n_pos(self) -> int | float:
        """Number (or total weight) of positive rows."""
        return self.tps[-1].item()

    @property
    def n_neg(self) -> int | float:
        """Number (or total weight) of negative rows."""
        return self.fps[-1].item()

    @property
    def weighted(self) -> bool:
        """True when built with sample weights (float64 counts)."""
        return self.tps.dtype.kind == "f"


class ConfusionCounts(NamedTuple):
    """Binary confusion counts (int without weights, float with weights)."""

    tp: Any
    fp: Any
    tn: Any
    fn: Any


class OperatingPoints(NamedTuple):
    """Confusion counts at every distinct threshold, each an array of shape (k,)."""

    thresholds: Float
    tp: Counts
    fp: Counts
    tn: Counts
    fn: Counts


# -- building the ranking ----------------------------------------------------------------------


def rank_binary(
    y_true: ArrayLike,
    y_score: ArrayLike,
    sample_weight: ArrayLike | None = None,
) -> BinaryRanking:
    """Sort one binary column once and accumulate its counts at every distinct score.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        bool, or 0/1 numbers; True is the positive class.
    y_score : array-like of shape (n_samples,)
        Finite scores (checked at the boundary, not here); higher means more positive. Floating
        dtypes are kept (float32 ties stay ties), anything else becomes float64.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative, not all zero. Zero-weight rows take no part (as sklearn, which drops
        them): their scores are not thresholds. They stay in :attr:`BinaryRanking.scores`.

    Returns
    -------
    BinaryRanking

    Notes
    -----
    Without weights, the order inside a tie group does not matter (the counts at the group's
    end are integers), so the positives' and negatives' scores are sorted separately by value
    (faster than an argsort) and merged in O(n). With weights, rows are ordered as sklearn does
    (stable, by decreasing score), so the float64 cumulative sums are bit-identical to
    sklearn's.

    Examples
    --------
    >>> r = rank_binary(np.array([0, 1, 1, 0, 1]), np.array([0.2, 0.9, 0.2, 0.6, 0.6]))
    >>> r.thresholds, r.tps, r.fps
    (array([0.9, 0.6, 0.2]), array([1, 2, 3]), array([0, 1, 2]))
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score)
    if y.ndim != 1 or s.shape != y.shape:
        raise InvalidInput(
            f"y_true and y_score must be 1-D of one length, got {y.shape} and {s.shape}",
            field="y_score",
        )
    if y.shape[0] == 0:
        raise InvalidInput("is empty: the batch needs at least one row", field="y_true")
    if y.dtype != np.bool_:
        if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
            raise InvalidInput("must be bool or 0/1 for a binary ranking", field="y_true")
        y = y != 0
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    if sample_weight is None:
        return _rank_unweighted(y, s)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != y.shape:
        raise InvalidInput(f"has shape {w.shape}, expected {y.shape}", field="sample_weight")
    if w.min() < 0 or not w.any():
        raise InvalidInput("weights must be >= 0 and not all zero", field="sample_weight")
    desc = np.negative(s)
    order = np.argsort(desc, kind="stable")  # sklearn's order: ties keep their row order
    np.take(s, order, out=desc)
    return _from_descending(desc, y[order], w[order])


def _readonly(*arrays: NDArray[Any]) -> None:
    for a in arrays:
        a.flags.writeable = False


def _rank_unweighted(y: NDArray[np.bool_], s: NDArray[np.floating[Any]]) -> BinaryRanking:
    n = s.shape[0]
    n_pos = int(np.count_nonzero(y))
    n_neg = n - n_pos
    asc = np.empty(n, dtype=s.dtype)  # negatives' scores, then positives'
    np.compress(~y, s, out=asc[:n_neg])
    np.compress(y, s, out=asc[n_neg:])
    asc[:n_neg].sort()
    asc[n_neg:].sort()
    # Timsort finds the two sorted runs and merges them in O(n): the one full sort was the
    # two value sorts above, cheaper than an argsort. Rows from index n_neg on are positives.
    order = np.argsort(asc, kind="stable")
    pos_below = np.empty(n + 1, dtype=np.int32 if n < 2**31 else np.int64)
    pos_below[0] = 0  # pos_below[i]: positives among the i lowest scores
    np.cumsum(order >= n_neg, out=pos_below[1:])
    del order
    asc.sort(kind="stable")  # the same O(n) merge, in place
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(asc[1:], asc[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)[::-1]  # group starts, highest score first
    del new_group
    tps = pos_below[starts].astype(np.int64)
    np.subtract(n_pos, tps, out=tps)
    fps = np.subtract(n, starts)
    fps -= tps
    thresholds = asc[starts].astype(np.float64, copy=False)
    scores = asc[::-1]
    _readonly(thresholds, tps, fps, scores)
    return BinaryRanking(thresholds, tps, fps, scores)


def _from_descending(
    s: NDArray[np.floating[Any]], y: NDArray[np.bool_], w: Float | None
) -> BinaryRanking:
    """The ranking of rows already sorted by decreasing score (ties contiguous).

    ``s`` is kept as the ranking's ``scores``; ``w`` is overwritten (pass a private copy).
    """
    n = s.shape[0]
    buf = np.empty(n, dtype=bool)
    buf[-1] = True
    np.not_equal(s[1:], s[:-1], out=buf[:-1])
    ends = None if np.count_nonzero(buf) == n else np.flatnonzero(buf)  # None: all distinct
    if w is None:
        tps: Counts = np.cumsum(y, dtype=np.int64)
        fps: Counts = np.arange(1, n + 1, dtype=np.int64)
        fps -= tps
    else:
        if np.count_nonzero(w) < n:  # a tie group of zero-weight rows only is no threshold
            ends = np.arange(n) if ends is None else ends
            n_nonzero = np.cumsum(w != 0, dtype=np.int64)[ends]
            ends = ends[np.diff(n_nonzero, prepend=0) > 0]
        # sklearn's cumsum(y * w) and cumsum((1 - y) * w), bit for bit (same order, same terms).
        tps = np.multiply(y, w)
        np.cumsum(tps, out=tps)
        np.logical_not(y, out=buf)
        fps = np.multiply(buf, w, out=w)
        np.cumsum(fps, out=fps)
    if ends is not None:
        tps, fps = tps[ends], fps[ends]
    thresholds: Float = (s if ends is None else s[ends]).astype(np.float64, copy=False)
    _readonly(thresholds, tps, fps, s)
    return BinaryRanking(thresholds, tps, fps, s)


def counts_at_threshold(r: BinaryRanking, threshold: float) -> ConfusionCounts:
    """``(tp, fp, tn, fn)`` when a row is predicted positive iff ``score >= threshold``.

    A binary search on ``r.thresholds``: O(log k), no pass over the rows. Counts are ints
    without weights and float sums of weights with them (zero-weight rows count nowhere).

    Examples
    --------
    >>> r = rank_binary(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> counts_at_threshold(r, 0.4)
    ConfusionCounts(tp=1, fp=1, tn=1, fn=1)
    """
    t = float(threshold)
    if np.isnan(t):
        raise InvalidInput("is NaN; a decision threshold must be a number", field="threshold")
    # thresholds decrease: j = how many are >= t.
    j = bisect.bisect_right(r.thresholds, -t, key=operator.neg)
    zero = 0.0 if r.weighted else 0
    tp = r.tps[j - 1].item() if j else zero
    fp = r.fps[j - 1].item() if j else zero
    return ConfusionCounts(tp, fp, r.n_neg - fp, r.n_pos - tp)


def operating_points(r: BinaryRanking) -> OperatingPoints:
    """Confusion counts at every distinct threshold (predicted positive iff score >= it).

    sklearn's ``confusion_matrix_at_thresholds`` in decreasing threshold order. The
    "predict nothing" point (a threshold above every score) is ``tp = fp = 0`` and not listed.

    Examples
    --------
    >>> op = operating_points(rank_binary(np.array([0, 1, 1]), np.array([0.3, 0.3, 0.9])))
    >>> op.thresholds, op.tp, op.fp, op.tn, op.fn
    (array([0.9, 0.3]), array([1, 2]), array([0, 1]), array([1, 0]), array([1, 0]))
    """
    tn = cast(Counts, r.fps[-1] - r.fps)  # same dtype as the counts
    fn = cast(Counts, r.tps[-1] - r.tps)
    return OperatingPoints(r.thresholds, r.tps, r.fps, tn, fn)


# -- curves -------------------------------------------------------------------------------------


def _keep(tps: Counts, fps: Counts | None) -> NDArray[np.bool_] | None:
    """sklearn's ``drop_intermediate`` mask, or None when every point stays.

    With ``fps`` (ROC): keep interior points where the step of ``fps`` or of ``tps`` changes,
    i.e. ``np.diff(x, 2) != 0`` (for finite floats ``a - b == 0`` exactly when ``a == b``, so
    comparing the steps selects the same points). Without (PR): keep the first and last point
    of each run of equal ``tps``.
    """
    k = tps.shape[0]
    if k <= 2:
        return None
    keep = np.empty(k, dtype=bool)
    keep[0] = keep[-1] = True
    other = np.empty(k - 2, dtype=bool)
    if fps is None:
        np.not_equal(tps[1:-1], tps[:-2], out=keep[1:-1])
        np.not_equal(tps[2:], tps[1:-1], out=other)
    else:
        step = np.empty(k - 1, dtype=tps.dtype)
        np.subtract(fps[1:], fps[:-1], out=step)
        np.not_equal(step[1:], step[:-1], out=keep[1:-1])
        np.subtract(tps[1:], tps[:-1], out=step)
        np.not_equal(step[1:], step[:-1], out=other)
    keep[1:-1] |= other
    return None if np.count_nonzero(keep) == k else keep


def roc_curve(r: BinaryRanking, *, drop_intermediate: bool = True) -> tuple[Float, Float, Float]:
    """Receiver operating characteristic, equal to ``sklearn.metrics.roc_curve``.

    Parameters
    ----------
    r : BinaryRanking
    drop_intermediate : bool, default True
        Drop the thresholds where neither the false- nor the true-positive step changes (sklearn's
        second-difference rule). Such points are collinear with their neighbours, so the curve's
        shape and area do not change.

    Returns
    -------
    fpr, tpr : ndarray of shape (m + 1,)
        ``fps / n_neg`` and ``tps / n_pos``, starting at ``(0, 0)``.
    thresholds : ndarray of shape (m + 1,)
        Decreasing, float64; ``thresholds[0] = inf`` (predict nothing positive), then the kept
        distinct scores. Point ``i`` predicts positive iff ``score >= thresholds[i]``.

    Notes
    -----
    One class only: as sklearn, ``fpr`` is all NaN when ``r.n_neg == 0`` and ``tpr`` is all NaN
    when ``r.n_pos == 0``. sklearn also emits an ``UndefinedMetricWarning``; this function does
    not warn, the caller checks ``r.n_pos`` / ``r.n_neg`` (:func:`~app.core.ranking.roc_auc`
    raises ``UndefinedMetricError`` there).

    Examples
    --------
    >>> r = rank_binary(np.array([0, 0, 1, 1], bool), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> fpr, tpr, thr = roc_curve(r)
    >>> fpr, tpr, thr
    (array([0. , 0. , 0.5, 0.5, 1. ]), array([0. , 0.5, 0.5, 1. , 1. ]),
     array([ inf, 0.8 , 0.4 , 0.35, 0.1 ]))
    """
    keep = _keep(r.tps, r.fps) if drop_intermediate else None
    m = r.tps.shape[0] if keep is None else int(np.count_nonzero(keep))
    fpr, tpr, thresholds = np.empty(m + 1), np.empty(m + 1), np.empty(m + 1)
    thresholds[0] = np.inf
    _select(r.thresholds, keep, thresholds[1:])
    for rate, counts in ((fpr, r.fps), (tpr, r.tps)):
        total = counts[-1]
        if total <= 0:
            rate.fill(np.nan)
        else:
            rate[0] = 0.0
            _select(counts, keep, rate[1:])
            rate[1:] /= total  # float(count) is exact: the same quotient as sklearn's
    return fpr, tpr, thresholds


def _select(src: NDArray[Any], keep: NDArray[np.bool_] | None, out: Float) -> None:
    """``out[...] = src[keep]`` (or ``src``), without a temporary when the dtypes agree."""
    if keep is None:
        out[...] = src
    elif src.dtype == out.dtype:
        np.compress(keep, src, out=out)
    else:
        out[...] = src[keep]


def precision_recall_curve(
    r: BinaryRanking, *, drop_intermediate: bool = False
) -> tuple[Float, Float, Float]:
    """Precision-recall pairs, equal to ``sklearn.metrics.precision_recall_curve``.

    Parameters
    ----------
    r : BinaryRanking
    drop_intermediate : bool, default False
        Keep only the first and last threshold of each run of equal ``tps`` (equal recall: a
        vertical segment of the plot), as sklearn.

    Returns
    -------
    precision : ndarray of shape (m + 1,)
        ``tps / (tps + fps)`` at increasing thresholds, then a final 1.
    recall : ndarray of shape (m + 1,)
        ``tps / n_pos``, decreasing, then a final 0.
    thresholds : ndarray of shape (m,)
        Increasing distinct scores, float64 (sklearn keeps the score dtype, e.g. float32; the
        values are the same).

    Notes
    -----
    ``tps + fps > 0`` at every threshold (each holds a row of positive weight), so precision is
    always defined. With no positives, recall is all ones as in sklearn (which warns; this
    does not): the caller checks ``r.n_pos``.

    Examples
    --------
    >>> r = rank_binary(np.array([0, 0, 1, 1], bool), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> precision, recall, thr = precision_recall_curve(r)
    >>> precision
    array([0.5       , 0.66666667, 0.5       , 1.        , 1.        ])
    >>> recall, thr
    (array([1. , 1. , 0.5, 0.5, 0. ]), array([0.1 , 0.35, 0.4 , 0.8 ]))
    """
    tps, fps, thr = r.tps, r.fps, r.thresholds
    keep = _keep(tps, None) if drop_intermediate else None
    if keep is not None:
        tps, fps, thr = tps[keep], fps[keep], thr[keep]
    m = tps.shape[0]
    precision, recall = np.empty(m + 1), np.empty(m + 1)
    precision[-1] = 1.0
    recall[-1] = 0.0
    rev_tps = tps[::-1]
    np.add(rev_tps, fps[::-1], out=precision[:-1])
    np.divide(rev_tps, precision[:-1], out=precision[:-1])
    n_pos = tps[-1]
    if n_pos <= 0:
        recall[:-1] = 1.0
    else:
        np.divide(rev_tps, n_pos, out=recall[:-1])
    return precision, recall, thr[::-1].copy()


def downsample_curve(
    x: ArrayLike, y: ArrayLike, thresholds: ArrayLike, max_points: int
) -> tuple[Float, Float, NDArray[Any]]:
    """Thin a curve for drawing: drop exactly redundant points, then subsample if still too long.

    1. Drop a point equal to its predecessor, and every interior point exactly collinear with
       its two neighbours (decided by an exact orientation test: a float filter, then rational
       arithmetic on the undecided points). This keeps the polyline, so the signed trapezoid
       area ``Σ (x[i+1] - x[i]) (y[i] + y[i+1]) / 2`` is preserved exactly.
    2. If more than ``max_points`` remain, keep the first, the last and evenly spaced points in
       between. This changes the area. (A curve of more than 16 × ``max_points`` points is
       first thinned evenly to 16 × ``max_points``, so step 1 stays cheap on huge batches.)

    The returned points are for plots only: report areas (ROC-AUC, AP) computed from the
    full-resolution ranking, never from the thinned curve.

    Parameters
    ----------
    x, y : array-like of shape (n,)
        The curve's coordinates, finite.
    thresholds : array-like of shape (n,)
        Carried along (any values: ``inf`` and NaN are fine).
    max_points : int >= 2

    Returns
    -------
    x, y : ndarray of shape (m,), float64
    thresholds : ndarray of shape (m,)
        ``m <= max_points``. The first and last points are always kept (of a run of equal
        points, the first one and its threshold).

    Examples
    --------
    >>> downsample_curve([0, 0, 0.5, 1], [0, 0.5, 0.75, 1], [np.inf, 3, 2, 1], 10)
    (array([0., 0., 1.]), array([0. , 0.5, 1. ]), array([inf,  3.,  1.]))
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer):
        raise InvalidInput(f"is {max_points!r}; must be an integer >= 2", field="max_points")
    if max_points < 2:
        raise InvalidInput(f"is {max_points}; must be >= 2", field="max_points")
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    thr = np.asarray(thresholds)
    if xs.ndim != 1 or xs.shape != ys.shape or thr.shape != xs.shape:
        raise InvalidInput(
            f"x, y and thresholds must be 1-D of one length, got {xs.shape}, {ys.shape}, "
            f"{thr.shape}",
            field="curve",
        )
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise InvalidInput("curve coordinates must be finite", field="curve")
    idx = np.arange(xs.shape[0])
    if idx.shape[0] > _PREPICK * max_points:
        # Step 2 would drop nearly every point anyway: thin evenly first, so the exact test
        # runs on O(max_points) points instead of millions (it dominated 1e7-row reports).
        idx = idx[_even(idx.shape[0], _PREPICK * max_points)]
    idx = idx[_non_redundant(xs[idx], ys[idx])]
    if idx.shape[0] > max_points:
        idx = idx[_even(idx.shape[0], max_points)]
    return xs[idx], ys[idx], thr[idx]


#: A curve longer than this many times the cap is thinned evenly before the exact test.
_PREPICK = 16


def _even(n: int, m: int) -> NDArray[np.intp]:
    """``m`` evenly spaced indices of ``range(n)``, the first and the last included."""
    return np.rint(np.linspace(0, n - 1, m)).astype(np.intp)


def _non_redundant(x: Float, y: Float) -> NDArray[np.intp]:
    """Indices of the points left after dropping repeats and exactly collinear points.

    After duplicates are gone, consecutive points are distinct, so a run of points each
    collinear with its original neighbours lies on one line with the two kept points around
    it: testing against the original neighbours is enough.
    """
    n = x.shape[0]
    if n <= 2:
        return np.arange(n)
    distinct = np.ones(n, dtype=bool)
    distinct[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    idx = np.flatnonzero(distinct)
    if idx.shape[0] <= 2:
        return idx
    px, py = x[idx], y[idx]
    x0, x1, x2 = px[:-2], px[1:-1], px[2:]
    y0, y1, y2 = py[:-2], py[1:-1], py[2:]
    detleft = (x0 - x2) * (y1 - y2)
    detright = (y0 - y2) * (x1 - x2)
    scale = np.abs(detleft) + np.abs(detright)
    undecided = (np.abs(detleft - detright) <= _CCW_ERRBOUND * scale) | (scale < _TINY)
    collinear = ((x0 == x1) & (x1 == x2)) | ((y0 == y1) & (y1 == y2))
    for j in np.flatnonzero(undecided & ~collinear):
        fx0, fx1, fx2 = Fraction(x0[j]), Fraction(x1[j]), Fraction(x2[j])
        fy0, fy1, fy2 = Fraction(y0[j]), Fraction(y1[j]), Fraction(y2[j])
        collinear[j] = (fx0 - fx2) * (fy1 - fy2) == (fy0 - fy2) * (fx1 - fx2)
    keep = np.ones(idx.shape[0], dtype=bool)
    keep[1:-1] = ~collinear
    return idx[keep]
