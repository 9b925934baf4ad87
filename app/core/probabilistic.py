"""Metrics of predicted probabilities: log loss, Brier score, and calibration error (ECE/MCE).

Binary inputs are the positive-class probability ``p`` of shape (n_samples,) with ``y_true`` in
{0, 1} (or bool); multiclass inputs are class indices and an (n_samples, K) probability matrix;
multilabel inputs are two (n_samples, L) arrays. Inputs arrive validated (probabilities in
[0, 1], rows of a multiclass matrix summing to 1); results are float64.

Undefined values: none of these metrics is undefined on a validated batch (at least one row, a
positive total weight). The only guard is :func:`expected_calibration_error` /
:func:`max_calibration_error` on bins that are all empty, which raise
:class:`app.errors.UndefinedMetricError`, as every undefined metric of the engine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput, UndefinedMetricError

__all__ = [
    "CalibrationError",
    "ReliabilityBins",
    "binary_calibration_error",
    "brier_for_task",
    "brier_score",
    "brier_score_multilabel",
    "expected_calibration_error",
    "log_loss",
    "log_loss_for_task",
    "log_loss_multilabel",
    "max_calibration_error",
    "multiclass_calibration_error",
    "reliability_bins",
]

Float = NDArray[np.float64]
Strategy = Literal["uniform", "quantile"]


def _clip_eps(p: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """Clip to [eps, 1 − eps] with eps of the input dtype, as sklearn's ``log_loss``."""
    eps = np.finfo(p.dtype).eps
    return np.clip(p, eps, 1 - eps)


def _binary_cell_loss(y: NDArray[Any], p: NDArray[np.floating[Any]]) -> Float:
    """−log of the clipped probability given to the observed outcome, per cell."""
    positive = np.asarray(y) != 0
    chosen = np.where(positive, _clip_eps(p), _clip_eps(1 - p))
    return -np.log(chosen.astype(np.float64, copy=False))


def log_loss(
    y_true_idx: NDArray[Any],
    proba: NDArray[np.floating[Any]],
    sample_weight: Float | None = None,
) -> float:
    """Cross-entropy ``Σ w · (−log p̂_y) / Σ w`` with sklearn's clipping.

    Parameters
    ----------
    y_true_idx : ndarray of shape (n_samples,)
        Class indices; for 1-D ``proba``, 0/1 (or bool) with 1 the positive class.
    proba : ndarray of shape (n_samples, K) or (n_samples,)
        Class probabilities, or the positive-class probability of a binary problem (the
        negative class then gets ``1 − p``).
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    float
        Equals ``sklearn.metrics.log_loss(..., labels=range(K))``: probabilities are clipped to
        ``[eps, 1 − eps]`` with ``eps = np.finfo(proba.dtype).eps`` (so a confident miss costs
        about 36.04 nats in float64, 15.9 in float32) and rows are not renormalized. The clip is
        done in the input dtype, the logarithm in float64.

    Examples
    --------
    >>> log_loss(np.array([1, 0, 0, 1]), np.array([[.1, .9], [.9, .1], [.8, .2], [.35, .65]]))
    0.21616
    >>> log_loss(np.array([1, 0, 0, 1]), np.array([.9, .1, .2, .65]))
    0.21616
    """
    p = np.asarray(proba)
    y = np.asarray(y_true_idx)
    if p.ndim == 1:
        loss = _binary_cell_loss(y, p)
    else:
        chosen = np.take_along_axis(p, y.astype(np.intp)[:, None], axis=1)[:, 0]
        loss = -np.log(_clip_eps(chosen).astype(np.float64, copy=False))
    return float(np.average(loss, weights=sample_weight))


def log_loss_multilabel(
    y_true: NDArray[Any], proba: NDArray[np.floating[Any]], sample_weight: Float | None = None
) -> float:
    """Mean over labels of the binary log loss of each label.

    ``Σ_i w_i · mean_l ℓ(y_il, p_il) / Σ w`` = the mean of
    ``sklearn.metrics.log_loss(y_true[:, l], proba[:, l], labels=[0, 1])`` over labels (with
    the same clipping). sklearn's own ``log_loss`` on indicator matrices drops the
    ``(1 − y) log(1 − p)`` terms and is not a per-label likelihood; this is the binary
    cross-entropy of the L independent labels (torch's ``BCELoss``, up to its clamping).

    Parameters
    ----------
    y_true, proba : ndarray of shape (n_samples, n_labels)
    sample_weight : ndarray of shape (n_samples,), optional

    Examples
    --------
    >>> log_loss_multilabel(np.array([[1, 0], [0, 1]]), np.array([[.9, .2], [.1, .6]]))
    0.2362
    """
    cells = _binary_cell_loss(y_true, np.asarray(proba))
    return float(np.average(cells.mean(axis=1), weights=sample_weight))


def brier_score(
    y_true: NDArray[Any],
    proba: NDArray[np.floating[Any]],
    sample_weight: Float | None = None,
    *,
    scale_by_half: bool | Literal["auto"] = "auto",
) -> float:
    """Brier score ``Σ w Σ_k (1[y = k] − p̂_k)² / Σ w``, with sklearn 1.9's scaling.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        0/1 (or bool) for 1-D ``proba``; class indices for 2-D.
    proba : ndarray of shape (n_samples,) or (n_samples, K)
    sample_weight : ndarray of shape (n_samples,), optional
    scale_by_half : bool or "auto", default "auto"
        Halve the sum over classes. "auto" halves for binary input (1-D or K = 2, so the binary
        score is the familiar ``mean (y − p)²`` in [0, 1]) and keeps the [0, 2] range for
        K >= 3, as ``sklearn.metrics.brier_score_loss``.

    Examples
    --------
    >>> brier_score(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.3]))
    0.0375
    >>> brier_score(np.array([0, 1, 2]), np.array([[.8, .1, .1], [.2, .7, .1], [.2, .2, .6]]))
    0.146
    """
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true)
    if p.ndim == 1:
        per_row = 2.0 * ((y != 0) - p) ** 2  # both columns of [1 − p, p] miss by |y − p|
        n_columns = 2
    else:
        onehot = np.arange(p.shape[1]) == y.astype(np.intp)[:, None]
        per_row = np.sum((onehot - p) ** 2, axis=1)
        n_columns = p.shape[1]
    score = float(np.average(per_row, weights=sample_weight))
    half = n_columns < 3 if scale_by_half == "auto" else bool(scale_by_half)
    return 0.5 * score if half else score


def brier_score_multilabel(
    y_true: NDArray[Any], proba: NDArray[np.floating[Any]], sample_weight: Float | None = None
) -> float:
    """Mean over labels of the binary Brier score: ``Σ_i w_i · mean_l (y_il − p_il)² / Σ w``.

    Examples
    --------
    >>> brier_score_multilabel(np.array([[1, 0], [0, 1]]), np.array([[.9, .2], [.1, .6]]))
    0.055
    """
    sq = ((np.asarray(y_true) != 0) - np.asarray(proba, dtype=np.float64)) ** 2
    return float(np.average(sq.mean(axis=1), weights=sample_weight))


def log_loss_for_task(
    task: str, y: NDArray[Any], proba: NDArray[np.floating[Any]], sample_weight: Float | None = None
) -> float:
    """:func:`log_loss` (binary, multiclass) or :func:`log_loss_multilabel` by task name."""
    if task in ("binary", "multiclass"):
        return log_loss(y, proba, sample_weight)
    if task == "multilabel":
        return log_loss_multilabel(y, proba, sample_weight)
    raise InvalidInput(f"log loss does not apply to task {task!r}", field="task")


def brier_for_task(
    task: str, y: NDArray[Any], proba: NDArray[np.floating[Any]], sample_weight: Float | None = None
) -> float:
    """:func:`brier_score` (binary, multiclass) or :func:`brier_score_multilabel` by task name."""
    if task in ("binary", "multiclass"):
        return brier_score(y, proba, sample_weight)
    if task == "multilabel":
        return brier_score_multilabel(y, proba, sample_weight)
    raise InvalidInput(f"the Brier score does not apply to task {task!r}", field="task")


# -- reliability bins and calibration error --------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBins:
    """Reliability-diagram bins; every array has shape (n_bins,) except ``edges``.

    Attributes
    ----------
    edges : ndarray of shape (n_bins + 1,)
        Bin ``b`` holds confidences in ``(edges[b], edges[b + 1]]``; the first bin also holds
        ``edges[0]`` (sklearn's ``searchsorted(edges[1:-1], c)`` convention).
    count : int64 ndarray
        Rows per bin (zero-weight rows included).
    weight : float64 ndarray
        Sum of sample weights per bin (= ``count`` without weights).
    mean_confidence, observed_frequency : float64 ndarray
        Weighted mean confidence and weighted frequency of the outcome per bin; NaN where
        ``empty``.
    empty : bool ndarray
        ``weight == 0``: the bin has no (weighted) row and takes no part in ECE/MCE.
    """

    edges: Float
    count: NDArray[np.int64]
    weight: Float
    mean_confidence: Float
    observed_frequency: Float
    empty: NDArray[np.bool_]


class CalibrationError(NamedTuple):
    """``(ece, mce, bins)`` of :func:`binary_calibration_error` and the multiclass variant."""

    ece: float
    mce: float
    bins: ReliabilityBins


def _sorted_percentile_edges(sorted_values: Float, n_bins: int) -> Float:
    """``np.percentile(x, np.linspace(0, 1, n_bins + 1) * 100)`` read off an ascending ``x``.

    numpy's default ("linear") method, replicated operation by operation so the edges are
    bit-identical, without numpy's O(n) partition of a copy.
    """
    q = np.true_divide(np.linspace(0, 1, n_bins + 1) * 100, 100)
    n = sorted_values.shape[0]
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    nxt = prev + 1
    at_end = virtual >= n - 1
    prev[at_end] = -1
    nxt[at_end] = -1
    prev_i = prev.astype(np.intp)
    gamma = virtual - prev_i
    a = sorted_values[prev_i]
    b = sorted_values[nxt.astype(np.intp)]
    diff = b - a
    out = a + diff * gamma
    high = gamma >= 0.5
    out[high] = (b - diff * (1 - gamma))[high]
    return out


def reliability_bins(
    y: NDArray[Any],
    confidence: NDArray[np.floating[Any]],
    sample_weight: Float | None = None,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    sorted_confidence: NDArray[np.floating[Any]] | None = None,
) -> ReliabilityBins:
    """Bin confidences and outcomes exactly as ``sklearn.calibration.calibration_curve``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        The outcome, 0/1 or bool (binary: the label; top-label: "the prediction is right").
    confidence : ndarray of shape (n_samples,)
        Predicted probability of that outcome, in [0, 1].
    sample_weight : ndarray of shape (n_samples,), optional
        Weights the per-bin means; the edges ignore it (sklearn has no weights).
    n_bins : int >= 1, default 15
    strategy : {"uniform", "quantile"}, default "uniform"
        "uniform": ``np.linspace(0, 1, n_bins + 1)``; "quantile": the linear-interpolated
        percentiles of ``confidence`` (duplicate edges leave bins empty).
    sorted_confidence : ndarray of shape (n_samples,), optional
        ``confidence`` sorted ascending (e.g. ``ranking``'s sorted scores reversed: a view),
        for "quantile": the edges are then read off it in O(n_bins) instead of numpy's O(n)
        partition of a copy. Same values as ``confidence``; not checked. Ignored for "uniform".

    Returns
    -------
    ReliabilityBins
        For non-empty bins, ``observed_frequency`` and ``mean_confidence`` equal
        ``calibration_curve``'s ``prob_true`` and ``prob_pred`` without weights.

    Examples
    --------
    >>> b = reliability_bins(np.array([0, 0, 1, 1]), np.array([.1, .3, .6, .9]), n_bins=2)
    >>> b.count, b.observed_frequency, b.mean_confidence
    (array([2, 2]), array([0., 1.]), array([0.2 , 0.75]))
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise InvalidInput(f"is {n_bins!r}; must be an integer >= 1", field="n_bins")
    conf = np.asarray(confidence)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        if sorted_confidence is not None:
            edges = _sorted_percentile_edges(np.asarray(sorted_confidence), n_bins)
        else:
            edges = np.percentile(conf, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        raise InvalidInput(f"is {strategy!r}; expected 'uniform' or 'quantile'", field="strategy")
    ids = np.searchsorted(edges[1:-1], conf)
    outcome = (np.asarray(y) != 0).astype(np.float64)
    count = np.bincount(ids, minlength=n_bins).astype(np.int64)

    def bin_sum(values: NDArray[Any]) -> Float:
        return np.bincount(ids, weights=values, minlength=n_bins).astype(np.float64, copy=False)

    if sample_weight is None:
        weight = count.astype(np.float64)
        conf_sum, pos_sum = bin_sum(conf), bin_sum(outcome)
    else:
        weight = bin_sum(sample_weight)
        conf_sum, pos_sum = bin_sum(sample_weight * conf), bin_sum(sample_weight * outcome)
    empty = weight == 0
    safe = np.where(empty, 1.0, weight)
    return ReliabilityBins(
        edges=np.asarray(edges, dtype=np.float64),
        count=count,
        weight=weight,
        mean_confidence=np.where(empty, np.nan, conf_sum / safe),
        observed_frequency=np.where(empty, np.nan, pos_sum / safe),
        empty=empty,
    )


def _gaps(bins: ReliabilityBins, metric: str) -> tuple[Float, Float]:
    full = ~bins.empty
    if not full.any():
        raise UndefinedMetricError(f"{metric} is undefined: every bin is empty (no weight)")
    gap = np.abs(bins.observed_frequency[full] - bins.mean_confidence[full])
    return gap, bins.weight[full]


def expected_calibration_error(bins: ReliabilityBins) -> float:
    """ECE ``Σ_b (W_b / W) · |acc_b − conf_b|`` over the non-empty bins.

    Examples
    --------
    >>> expected_calibration_error(
    ...     reliability_bins(np.array([0, 1, 1, 1]), np.array([.1, .3, .6, .9]), n_bins=2))
    0.275
    """
    gap, weight = _gaps(bins, "expected calibration error")
    return float(np.sum(weight * gap) / np.sum(weight))


def max_calibration_error(bins: ReliabilityBins) -> float:
    """MCE ``max_b |acc_b − conf_b|`` over the non-empty bins.

    Examples
    --------
    >>> max_calibration_error(
    ...     reliability_bins(np.array([0, 1, 1, 1]), np.array([.1, .3, .6, .9]), n_bins=2))
    0.3
    """
    gap, _ = _gaps(bins, "maximum calibration error")
    return float(np.max(gap))


def _calibration(
    y: NDArray[Any],
    conf: NDArray[np.floating[Any]],
    sample_weight: Float | None,
    n_bins: int,
    strategy: Strategy,
    sorted_confidence: NDArray[np.floating[Any]] | None = None,
) -> CalibrationError:
    bins = reliability_bins(
        y,
        conf,
        sample_weight,
        n_bins=n_bins,
        strategy=strategy,
        sorted_confidence=sorted_confidence,
    )
    return CalibrationError(expected_calibration_error(bins), max_calibration_error(bins), bins)


def binary_calibration_error(
    y_true: NDArray[Any],
    proba: NDArray[np.floating[Any]],
    sample_weight: Float | None = None,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
    sorted_confidence: NDArray[np.floating[Any]] | None = None,
) -> CalibrationError:
    """Positive-class reliability: confidence ``p(positive)``, outcome ``y``.

    As torchmetrics' ``binary_calibration_error`` (norm "l1" for the ECE, "max" for the MCE),
    but with sklearn's bin convention: torchmetrics uses ``bucketize(right=True)``, i.e. bins
    ``[e_b, e_b+1)`` and a bin of its own for ``p = 1``; the two agree unless a confidence
    falls exactly on an inner edge or equals 1.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        0/1 or bool.
    proba : ndarray of shape (n_samples,)
        Positive-class probability.
    sample_weight, n_bins, strategy, sorted_confidence
        As :func:`reliability_bins`.

    Returns
    -------
    CalibrationError
        ``(ece, mce, bins)``.

    Examples
    --------
    >>> binary_calibration_error(np.array([0, 1, 1, 1]), np.array([.1, .3, .6, .9]),
    ...                          n_bins=2).ece
    0.275
    """
    return _calibration(
        y_true, np.asarray(proba), sample_weight, n_bins, strategy, sorted_confidence
    )


def multiclass_calibration_error(
    y_true_idx: NDArray[Any],
    proba: NDArray[np.floating[Any]],
    sample_weight: Float | None = None,
    *,
    n_bins: int = 15,
    strategy: Strategy = "uniform",
) -> CalibrationError:
    """Top-label reliability: confidence ``max_k p_k``, outcome ``argmax_k p_k == y``.

    As torchmetrics' ``multiclass_calibration_error`` (norm "l1" / "max"); ties in the argmax
    go to the lowest class index (``np.argmax``, like ``torch.max``). Bins follow sklearn's
    convention (see :func:`binary_calibration_error`).

    Parameters
    ----------
    y_true_idx : ndarray of shape (n_samples,)
    proba : ndarray of shape (n_samples, K)
    sample_weight, n_bins, strategy
        As :func:`reliability_bins`.

    Examples
    --------
    >>> p = np.array([[.7, .3], [.4, .6], [.2, .8]])
    >>> multiclass_calibration_error(np.array([0, 0, 1]), p, n_bins=2).ece  # |2/3 - 0.7|
    0.0333
    """
    p = np.asarray(proba)
    pred = np.argmax(p, axis=1)
    conf = np.take_along_axis(p, pred[:, None], axis=1)[:, 0]
    correct = pred == np.asarray(y_true_idx)
    return _calibration(correct, conf, sample_weight, n_bins, strategy)
