"""Bootstrap confidence intervals for any engine metric, vectorized over the resamples.

A resample draws the ``n`` rows with replacement; it is expressed as integer count weights
``c_b`` (how often each row was drawn, ``c_b ~ Multinomial(n, 1/n)``) multiplied into the batch's
own sample weights, so resample ``b`` is the batch with ``sample_weight = w · c_b``. The engine's
metrics treat an integer weight exactly like repeated rows, so this is the textbook bootstrap.

No fast path sorts, validates or reads the batch per resample: each reads one weight-free
structure built once per request (a sort, the confusion cell of every row, per-row
losses, calibration bin ids) and combines it with a block of count vectors ``W`` (``B_c × n``):

===========  =========================================================  ======================
kind         metrics                                                    per resample
===========  =========================================================  ======================
counts       accuracy, precision / recall / f1 / fbeta / specificity /  one bincount of the
             npv / jaccard (binary, macro, micro, weighted),            cells ``y·K + ŷ``, then
             balanced_accuracy, matthews_corrcoef, cohen_kappa,         the registry's count
             hamming_loss (multilabel: the per-label 2×2 stacks,        function on the (K, K)
             ``Σ w·y·ŷ`` etc.; no ``samples`` average nor accuracy)     matrix
ranking      roc_auc, average_precision (binary), roc_auc_ovr,          gather into the one
             roc_auc_ovr_weighted (multiclass)                          score order, cumsums of
                                                                        ``w·y``, ``w·(1−y)``,
                                                                        trapezoids / AP terms
means        log_loss, brier, top_k_accuracy (K ≥ 3), multilabel        ``Σ w ℓ / Σ w`` with
             accuracy, mean_squared_error, root_mean_squared_error,     per-row values ``ℓ``
             mean_absolute_error, mean_absolute_percentage_error
moments      r2, explained_variance (a resample whose variance is too   ``Σ w x``, ``Σ w x²``
             small to trust is evaluated by the fallback)               about the batch mean
calibration  ece, mce                                                   bincounts of the bins
order        max_error, median_absolute_error                           masked max; weighted
                                                                        median on one sort
===========  =========================================================  ======================

Everything else (``roc_auc_ovo*``, the multilabel ranking averages, ``*_samples``) takes the
generic fallback: the registry metric on ``dataclasses.replace(batch, sample_weight=w·c_b)`` with
a fresh :class:`EvalContext` per resample: exact by construction, B times one evaluation.

The fast paths equal the fallback resample by resample up to float64 rounding (the tests hold
them to 1e-12). Counts come from one seeded generator in resample order, so the same batch,
metrics and seed give identical results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.core.batch import TASKS, Batch, Task
from app.core.context import Binning, EvalContext
from app.core.registry import REGISTRY, MetricSpec, finite_or_none, metric_key, resolve
from app.errors import InvalidInput, UndefinedMetricError

__all__ = [
    "MAX_RESAMPLES",
    "MIN_RESAMPLES",
    "Interval",
    "Replicates",
    "bootstrap_intervals",
    "bootstrap_replicates",
    "resample_counts",
    "vectorized_metrics",
]

Float = NDArray[np.float64]
MIN_RESAMPLES = 10
MAX_RESAMPLES = 100_000
#: Resamples are processed in blocks of about this many (resample, row) cells: a block of count
#: weights is 64 MiB of float64, reused from block to block; the paths that work on whole blocks
#: add a few (B_c, K²) or (B_c, n_bins) arrays, the ranking path one resample's (n,) buffers.
_BLOCK_CELLS = 2**23
#: A resample whose weighted variance is below this fraction of its raw second moment is too
#: degenerate for the moment formulas (cancellation); it is evaluated by the generic fallback.
_DEGENERATE = 1e-3
#: Up to this many columns, weighted sums are one dot product per resample and column.
_DOT_COLUMNS = 16


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval.

    Attributes
    ----------
    low, high : float or None
        The ``(1 − confidence)/2`` and ``(1 + confidence)/2`` quantiles of the defined resample
        values (numpy's linear interpolation); None when fewer than half the resamples are
        defined.
    point : float or None
        The metric on the full batch (None when undefined there).
    std : float or None
        Standard deviation (ddof = 1) of the defined resample values: the bootstrap standard
        error.
    n_valid : int
        Resamples on which the metric is defined (e.g. not a single class).
    reason : str or None
        Why ``point`` or the interval is None.
    """

    low: float | None
    high: float | None
    point: float | None
    std: float | None
    n_valid: int
    reason: str | None = None


@dataclass(frozen=True)
class Replicates:
    """A metric on every resample: ``values`` of shape (n_resamples,), NaN where undefined.

    ``reason`` is the first undefined resample's reason; ``vectorized`` says whether a fast path
    computed the values (False: the generic fallback).
    """

    values: Float
    reason: str | None
    vectorized: bool


# -- public API -----------------------------------------------------------------------------


def resample_counts(n: int, n_resamples: int, *, seed: int = 0) -> Iterator[NDArray[np.int64]]:
    """Yield the bootstrap count vectors in blocks of shape (B_c, n), in resample order.

    Resample ``b`` draws ``n`` row indices uniformly with replacement
    (``np.random.default_rng(seed).integers(0, n, n)``, one call per resample) and counts them:
    ``c_b ~ Multinomial(n, (1/n, …, 1/n))``, ``Σ_i c_b[i] = n``. The stream is the same however
    it is blocked.

    Examples
    --------
    >>> blocks = list(resample_counts(4, 3, seed=1))
    >>> counts = np.concatenate(blocks)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 4), [4, 4, 4])
    """
    for block in _count_blocks(n, n_resamples, seed, np.empty(0, dtype=np.int64)):
        yield block.copy()


def _count_blocks(
    n: int, n_resamples: int, seed: int, like: NDArray[Any]
) -> Iterator[NDArray[Any]]:
    """The stream of :func:`resample_counts`, written into one reused buffer of ``like.dtype``.

    Each block is a view of that buffer, valid until the next one is yielded (a fresh array per
    block would cost a page fault per 4 KiB, about as much as the arithmetic).
    """
    rng = np.random.default_rng(seed)
    size = max(1, min(n_resamples, _BLOCK_CELLS // max(n, 1)))
    buffer = np.empty((size, n), dtype=like.dtype)
    for start in range(0, n_resamples, size):
        out = buffer[: min(size, n_resamples - start)]
        for row in out:
            row[...] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        yield out


def bootstrap_intervals(
    batch: Batch,
    metrics: list[tuple[str, dict[str, Any]]] | None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    threshold: float | None = None,
    n_bins: int = 15,
    binning: Binning = "uniform",
) -> dict[str, Interval]:
    """Percentile bootstrap intervals of the requested metrics (the task's defaults if None).

    .. math:: [\\hat q_{\\alpha/2}, \\hat q_{1-\\alpha/2}] \\text{ of }
       \\{ m(w \\cdot c_b) : b = 1..B, \\text{ defined} \\}, \\quad \\alpha = 1 - \\text{confidence}

    Parameters
    ----------
    batch : Batch
    metrics : list of (name, params), or None
        Registry metrics; keys of the result are ``registry.metric_key(name, params)``.
    n_resamples : int in [10, 100000], default 1000
    confidence : float in (0, 1), default 0.95
    seed : int >= 0, default 0
        Same batch, metrics and seed give identical intervals.
    threshold, n_bins, binning
        As :class:`EvalContext`.

    Returns
    -------
    dict of str to Interval
        When fewer than half the resamples give a defined value the interval bounds are None
        and ``reason`` says why.

    Raises
    ------
    InvalidInput
        ``n_resamples`` (field ``bootstrap.n``), ``confidence`` (``bootstrap.confidence``) or
        ``seed`` (``bootstrap.seed``) out of range; unknown metrics.

    Examples
    --------
    >>> from app.core.batch import make_batch
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> p = np.clip(0.3 * y + 0.7 * rng.random(200), 0, 1)
    >>> iv = bootstrap_intervals(make_batch("binary", y, p), [("roc_auc", {})], n_resamples=200)
    >>> r = iv["roc_auc"]
    >>> r.low < r.point < r.high, r.n_valid
    (True, 200)
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise InvalidInput(
            f"is {confidence!r}; must be a number in (0, 1)", field="bootstrap.confidence"
        )
    if not 0 < confidence < 1:
        raise InvalidInput(f"is {confidence!r}; must lie in (0, 1)", field="bootstrap.confidence")
    ctx = EvalContext(batch, threshold=threshold, n_bins=n_bins, binning=binning)
    specs = resolve(batch.task, metrics)
    points: dict[str, float | None] = {}
    point_reasons: dict[str, str] = {}
    for spec, params in specs:
        key = metric_key(spec.name, params)
        try:
            points[key] = finite_or_none(spec(ctx, **params))
        except UndefinedMetricError as exc:
            points[key] = None
            point_reasons[key] = exc.reason
    replicates = _replicates(ctx, specs, n_resamples, seed, vectorized=True)
    alpha = 1.0 - float(confidence)
    out: dict[str, Interval] = {}
    for key, rep in replicates.items():
        valid = rep.values[np.isfinite(rep.values)]
        n_valid = int(valid.shape[0])
        point = points[key]
        reason = None if point is not None else point_reasons.get(key, f"{key} is not finite")
        if 2 * n_valid < n_resamples:
            why = f"only {n_valid} of {n_resamples} resamples give a defined {key}"
            why += f" (e.g. {rep.reason})" if rep.reason else ""
            out[key] = Interval(None, None, point, None, n_valid, why)
            continue
        low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
        std = float(np.std(valid, ddof=1))
        out[key] = Interval(float(low), float(high), point, std, n_valid, reason)
    return out


def bootstrap_replicates(
    batch: Batch,
    metrics: list[tuple[str, dict[str, Any]]] | None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    threshold: float | None = None,
    n_bins: int = 15,
    binning: Binning = "uniform",
    vectorized: bool = True,
) -> dict[str, Replicates]:
    """Every requested metric on every resample (the raw bootstrap distribution).

    ``vectorized=False`` forces the generic fallback for every metric (a reference for the fast
    paths). Other parameters and errors as :func:`bootstrap_intervals`.

    Examples
    --------
    >>> from app.core.batch import make_batch
    >>> b = make_batch("regression", [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0])
    >>> rep = bootstrap_replicates(b, [("mean_absolute_error", {})], n_resamples=10)
    >>> rep["mean_absolute_error"].values.shape, rep["mean_absolute_error"].vectorized
    ((10,), True)
    """
    ctx = EvalContext(batch, threshold=threshold, n_bins=n_bins, binning=binning)
    return _replicates(ctx, resolve(batch.task, metrics), n_resamples, seed, vectorized)


def vectorized_metrics(task: Task) -> frozenset[str]:
    """Registry metrics of ``task`` with a fast path (the rest take the generic fallback).

    Examples
    --------
    >>> sorted(vectorized_metrics("regression"))[:3]
    ['explained_variance', 'max_error', 'mean_absolute_error']
    """
    if task not in TASKS:
        raise InvalidInput(f"unknown task {task!r}; use one of {list(TASKS)}", field="task")
    return frozenset(n for n, s in REGISTRY.items() if task in s.tasks and _kind(task, n))


# -- the resampling loop --------------------------------------------------------------------


def _check(n_resamples: int, seed: int) -> None:
    if (
        isinstance(n_resamples, bool)
        or not isinstance(n_resamples, int | np.integer)
        or not MIN_RESAMPLES <= n_resamples <= MAX_RESAMPLES
    ):
        raise InvalidInput(
            f"is {n_resamples!r}; must be an integer in [{MIN_RESAMPLES}, {MAX_RESAMPLES}]",
            field="bootstrap.n",
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInput(f"is {seed!r}; must be an integer >= 0", field="bootstrap.seed")


Kernel = Callable[["_Block"], Float]


def _replicates(
    ctx: EvalContext,
    specs: list[tuple[MetricSpec, dict[str, Any]]],
    n_resamples: int,
    seed: int,
    vectorized: bool,
) -> dict[str, Replicates]:
    _check(n_resamples, seed)
    batch = ctx.batch
    prep = _Prepared(ctx, frozenset(spec.name for spec, _ in specs))
    plans = []
    for spec, params in specs:
        kernel = _kernel(prep, spec, params) if vectorized else None
        plans.append((metric_key(spec.name, params), spec, params, kernel))
    values = {key: np.empty(n_resamples) for key, *_ in plans}
    reasons: dict[str, str | None] = {key: None for key, *_ in plans}
    start = 0
    for weights in _count_blocks(batch.n, n_resamples, seed, np.empty(0)):
        if batch.sample_weight is not None:
            weights *= batch.sample_weight
        block = _Block(weights, prep)
        stop = start + weights.shape[0]
        drawn = np.flatnonzero(~block.empty)
        for key, _spec, _params, kernel in plans:
            if kernel is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    values[key][start:stop] = kernel(block)
        generic = [(key, spec, params) for key, spec, params, kernel in plans if kernel is None]
        if generic:
            for i in drawn:
                rctx = block.context(int(i))
                for key, spec, params in generic:
                    values[key][start + i], why = _evaluate(spec, rctx, params)
                    reasons[key] = reasons[key] or why
        for key, spec, params, kernel in plans:
            if kernel is not None and reasons[key] is None:
                bad = drawn[~np.isfinite(values[key][start:stop][drawn])]
                if bad.size:  # the fast paths give NaN; the fallback tells why
                    reasons[key] = _evaluate(spec, block.context(int(bad[0])), params)[1]
        if drawn.shape[0] < weights.shape[0]:
            for key in values:
                values[key][start:stop][block.empty] = np.nan
                reasons[key] = reasons[key] or "a resample drew only rows of zero weight"
        start = stop
    return {
        key: Replicates(values[key], reasons[key], kernel is not None)
        for key, _s, _p, kernel in plans
    }


def _evaluate(
    spec: MetricSpec, ctx: EvalContext, params: Mapping[str, Any]
) -> tuple[float, str | None]:
    try:
        return float(spec(ctx, **params)), None
    except UndefinedMetricError as exc:
        return np.nan, exc.reason


class _Prepared:
    """Weight-free intermediates of the fast paths, computed once for all resamples."""

    def __init__(self, ctx: EvalContext, names: frozenset[str] = frozenset()) -> None:
        self.ctx = ctx
        self.batch = ctx.batch
        self.names = names  # the requested metrics
        self._columns: dict[int, _SortedColumn] = {}
        self._buffers: dict[str, Float] = {}

    def wants(self, name: str) -> bool:
        return name in self.names

    def buffer(self, name: str, shape: tuple[int, ...]) -> Float:
        """A scratch array reused from block to block (same shape: no new pages to fault in)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape)
        return buf

    def context(self, weights: Float) -> EvalContext:
        """A fresh context of the batch reweighted by ``weights`` (one resample)."""
        resample = dataclasses.replace(self.batch, sample_weight=weights)
        c = self.ctx
        return EvalContext(resample, threshold=c.threshold, n_bins=c.n_bins, binning=c.binning)

    @cached_property
    def cells(self) -> tuple[NDArray[np.intp], int]:
        """Confusion cell ``true · K + predicted`` of every row, and K (binary: 2)."""
        b = self.batch
        k = 2 if b.task == "binary" else int(b.score.shape[1])
        cells = b.y.astype(np.intp) * k + np.asarray(self.ctx.y_pred, dtype=np.intp)
        return cells, k

    @cached_property
    def multilabel_indicators(self) -> tuple[Float, Float, Float]:
        """``(y & ŷ, ŷ, y)`` as float (n, L) matrices, for ``W @ ·``."""
        t, p = self.batch.y, np.asarray(self.ctx.y_pred)
        return (t & p).astype(np.float64), p.astype(np.float64), t.astype(np.float64)

    def column(self, j: int) -> _SortedColumn:
        """Binary column ``j`` (binary: the score; multiclass: ``y == j`` on ``proba[:, j]``)."""
        if j not in self._columns:
            b = self.batch
            if b.task == "binary":
                self._columns[j] = _SortedColumn.build(b.y, b.score)
            else:
                self._columns[j] = _SortedColumn.build(b.y == j, b.proba[:, j])
        return self._columns[j]

    @cached_property
    def calibration_cells(self) -> tuple[NDArray[np.intp], Float, Float, int]:
        """Bin id, confidence and outcome of every reliability cell, and cells per row.

        The edges ignore the weights, so every resample shares the full batch's bins.
        """
        b = self.batch
        edges = self.ctx.calibration.bins.edges
        if b.task == "binary":
            conf, outcome, per_row = b.proba, b.y, 1
        elif b.task == "multiclass":
            pred = np.argmax(b.proba, axis=1)
            conf = np.take_along_axis(b.proba, pred[:, None], axis=1)[:, 0]
            outcome, per_row = pred == b.y, 1
        else:
            conf, outcome, per_row = b.proba.ravel(), b.y.ravel(), b.y.shape[1]
        ids = np.searchsorted(edges[1:-1], conf)
        return ids, conf, (np.asarray(outcome) != 0).astype(np.float64), per_row


@dataclass(frozen=True)
class _SortedColumn:
    """One binary column sorted as :func:`rank_binary` sorts a weighted one (stable, desc)."""

    order: NDArray[np.intp]
    positive: Float  # 1.0 / 0.0 in sorted order (float: a bool operand makes multiply slow)
    negative: Float
    ends: NDArray[np.intp] | None  # last sorted row of every tie group; None: no ties

    @classmethod
    def build(cls, y: NDArray[Any], score: NDArray[np.floating[Any]]) -> _SortedColumn:
        s = score if score.dtype.kind == "f" else score.astype(np.float64)
        order = np.argsort(np.negative(s), kind="stable")
        s_desc = s[order]
        last = np.empty(s.shape[0], dtype=bool)
        last[-1] = True
        np.not_equal(s_desc[1:], s_desc[:-1], out=last[:-1])
        positive = np.asarray(y, dtype=bool)[order]
        ends = None if last.all() else np.flatnonzero(last)
        return cls(order, positive.astype(np.float64), (~positive).astype(np.float64), ends)


class _Block:
    """A block of resamples: weights ``w · c_b`` of shape (B_c, n) and shared intermediates."""

    def __init__(self, weights: Float, prep: _Prepared) -> None:
        self.weights = weights
        self.prep = prep
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @cached_property
    def total(self) -> Float:
        return self.weights.sum(axis=1)

    def sums(self, values: Float) -> Float:
        """``Σ_i w_bi · values[i, :]`` per resample: (B_c, D) for ``values`` of shape (n, D).

        One ``einsum`` per resample and column: a resample's value then does not depend on how
        resamples are blocked, and no BLAS thread pool is involved (a threaded ``ddot`` /
        ``dgemv`` can cost milliseconds per call when another library's threads compete for
        the cores). Wide ``values`` (multilabel stacks) take one matrix product per block.
        """
        size, width = self.weights.shape[0], values.shape[1]
        if width > _DOT_COLUMNS:
            return self.weights @ values
        columns = np.ascontiguousarray(values.T)
        out = np.empty((size, width))
        for b, row in enumerate(self.weights):
            for d, column in enumerate(columns):
                out[b, d] = np.einsum("i,i->", row, column)
        return out

    @cached_property
    def empty(self) -> NDArray[np.bool_]:
        """Resamples that drew only zero-weight rows: every metric is undefined there."""
        return self.total == 0

    def context(self, i: int) -> EvalContext:
        return self.prep.context(self.weights[i].copy())


# -- which fast path a metric takes -----------------------------------------------------------

_RATIOS = ("precision", "recall", "f1", "fbeta", "specificity", "npv", "jaccard")
_AVERAGED = {f"{r}_{a}" for r in _RATIOS for a in ("macro", "micro", "weighted")}
_WHOLE_MATRIX = {"accuracy", "balanced_accuracy", "matthews_corrcoef", "cohen_kappa"}
_REGRESSION_MEANS = {
    "mean_squared_error",
    "root_mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
}


def _kind(task: Task, name: str) -> str | None:
    """The fast path of metric ``name`` on ``task``, or None for the generic fallback."""
    if task in ("binary", "multiclass"):
        if name in _RATIOS or name in _AVERAGED or name in _WHOLE_MATRIX or name == "hamming_loss":
            return "counts"
        if name in ("roc_auc", "average_precision", "roc_auc_ovr", "roc_auc_ovr_weighted"):
            return "ranking"
    if task == "multilabel":
        if name in _AVERAGED or name == "hamming_loss":
            return "counts"
        if name == "accuracy":
            return "means"
    if task != "regression" and name in ("log_loss", "brier", "top_k_accuracy"):
        return "means"
    if task != "regression" and name in ("ece", "mce"):
        return "calibration"
    if task == "regression":
        if name in _REGRESSION_MEANS:
            return "means"
        if name in ("r2", "explained_variance"):
            return "moments"
        if name in ("max_error", "median_absolute_error"):
            return "order"
    return None


def _kernel(prep: _Prepared, spec: MetricSpec, params: dict[str, Any]) -> Kernel | None:
    b = prep.batch
    kind = _kind(b.task, spec.name)
    if kind == "counts":
        return _counts_kernel(spec, params)
    if kind == "ranking":
        return _ranking_kernel(spec.name, with_ap=prep.wants("average_precision"))
    if kind == "calibration":
        return _calibration_kernel(spec.name)
    if kind == "order":
        return _order_kernel(prep, spec.name)
    if kind == "moments":
        return None if b.n < 2 else _moments_kernel(prep, spec, params)
    if kind == "means":
        rows = _per_row(prep, spec.name, params)
        if rows is None:
            return None
        values, finish = rows
        return lambda block: finish(block.sums(values) / block.total[:, None])
    return None


# -- counts ---------------------------------------------------------------------------------------


def _confusions(block: _Block) -> NDArray[np.float64]:
    """(B_c, K, K) confusion matrices, or (B_c, L, 2, 2) per-label stacks for multilabel."""
    prep, w = block.prep, block.weights
    if prep.batch.task == "multilabel":
        both, pred, true = prep.multilabel_indicators
        tp, pred_w, true_w = block.sums(both), block.sums(pred), block.sums(true)
        fp, fn = pred_w - tp, true_w - tp
        tn = block.total[:, None] - tp - fp - fn
        return np.stack([tn, fp, fn, tp], axis=-1).reshape(*tp.shape, 2, 2)
    cells, k = prep.cells
    out = np.empty((w.shape[0], k * k))
    for i in range(w.shape[0]):
        out[i] = np.bincount(cells, weights=w[i], minlength=k * k)
    return out.reshape(-1, k, k)


def _counts_kernel(spec: MetricSpec, params: dict[str, Any]) -> Kernel:
    """The registry's own count function on each resample's confusion matrix."""

    def kernel(block: _Block) -> Float:
        matrices = block.memo("confusion", lambda: _confusions(block))
        base = block.prep.ctx
        out = np.empty(matrices.shape[0])
        for i, cm in enumerate(matrices):
            ctx = EvalContext(base.batch, threshold=base.threshold)
            # cached_property is a non-data descriptor: assigning fills the cache.
            ctx.confusion = cm
            ctx.y_pred = base.y_pred
            out[i] = _evaluate(spec, ctx, params)[0]
        return out

    return kernel


# -- rankings ------------------------------------------------------------------------------------


def _ranking(block: _Block, j: int, with_ap: bool) -> tuple[Float, Float, Float]:
    """ROC-AUC, average precision (NaN unless ``with_ap``) and positive weight per resample.

    Column ``j`` is sorted once (:meth:`_Prepared.column`); per resample, the same products and
    the same sequential cumsums as the weighted :func:`rank_binary` give bit-identical
    cumulative ``T``, ``F`` at every tie group's end. Tie groups of zero weight stay, with a
    zero step, where ``rank_binary`` drops them: that changes no area. One resample at a time,
    so the ~10 passes over it run in cache (faster than whole-block arrays).
    """
    prep = block.prep
    col = prep.column(j)
    n = block.weights.shape[1]
    sorted_w, t, f = (prep.buffer(name, (n,)) for name in ("sorted", "t", "f"))
    groups = n if col.ends is None else col.ends.shape[0]
    t_end, f_end, a, b = (prep.buffer(name, (groups,)) for name in ("T", "F", "a", "b"))
    size = block.weights.shape[0]
    auc, ap, n_pos = np.full(size, np.nan), np.full(size, np.nan), np.empty(size)
    for i, row in enumerate(block.weights):
        np.take(row, col.order, out=sorted_w)
        np.cumsum(np.multiply(sorted_w, col.positive, out=t), out=t)
        np.cumsum(np.multiply(sorted_w, col.negative, out=f), out=f)
        if col.ends is None:
            tps, fps = t, f
        else:
            tps, fps = np.take(t, col.ends, out=t_end), np.take(f, col.ends, out=f_end)
        pos, neg = float(tps[-1]), float(fps[-1])
        n_pos[i] = pos
        if pos > 0 and neg > 0:
            auc[i] = _roc_auc(tps, fps, a, b) / 2 / pos / neg
        if with_ap and pos > 0:
            ap[i] = _precision_sum(tps, fps, a, b) / pos
    return auc, ap, n_pos


def _roc_auc(tps: Float, fps: Float, tsum: Float, dfps: Float) -> float:
    """``Σ (F_i − F_{i−1})(T_i + T_{i−1})`` (twice the area times ``P·N``), in scratch arrays."""
    tsum[0] = tps[0]
    np.add(tps[1:], tps[:-1], out=tsum[1:])
    dfps[0] = fps[0]
    np.subtract(fps[1:], fps[:-1], out=dfps[1:])
    dfps *= tsum
    return float(dfps.sum())


def _precision_sum(tps: Float, fps: Float, terms: Float, step: Float) -> float:
    """``Σ (T_i − T_{i−1}) T_i / (T_i + F_i)`` (average precision times ``P``)."""
    np.add(tps, fps, out=terms)
    # An empty leading group (zero weights only) has T = 0: 0 / tiny = 0, and its step is 0.
    np.maximum(terms, np.finfo(np.float64).smallest_subnormal, out=terms)
    np.divide(tps, terms, out=terms)
    step[0] = tps[0]
    np.subtract(tps[1:], tps[:-1], out=step[1:])
    terms *= step
    return float(terms.sum())


def _ranking_kernel(name: str, with_ap: bool) -> Kernel:
    def binary(block: _Block) -> Float:
        auc, ap, _ = block.memo(("ranking", 0), lambda: _ranking(block, 0, with_ap))
        return auc if name == "roc_auc" else ap

    def one_vs_rest(block: _Block) -> Float:
        def column(j: int) -> tuple[Float, Float, Float]:
            return block.memo(("ranking", j), lambda: _ranking(block, j, False))

        per_class = [column(j) for j in range(block.prep.batch.score.shape[1])]
        auc = np.stack([a for a, _, _ in per_class], axis=1)
        prevalence = np.stack([p for _, _, p in per_class], axis=1)
        if name == "roc_auc_ovr":
            value = auc.mean(axis=1)
        else:
            value = (auc * prevalence).sum(axis=1) / prevalence.sum(axis=1)
        return np.where((prevalence > 0).all(axis=1), value, np.nan)

    return binary if name in ("roc_auc", "average_precision") else one_vs_rest


# -- means of per-row values --------------------------------------------------------------------


def _cell_log_loss(y: NDArray[Any], p: Float) -> Float:
    """−log of the probability given to the outcome, clipped as sklearn (probabilistic.py)."""
    eps = np.finfo(p.dtype).eps
    chosen = np.where(np.asarray(y) != 0, np.clip(p, eps, 1 - eps), np.clip(1 - p, eps, 1 - eps))
    return -np.log(chosen)


def _per_row(
    prep: _Prepared, name: str, params: Mapping[str, Any]
) -> tuple[Float, Callable[[Float], Float]] | None:
    """Per-row values ``(n, D)`` whose weighted column means give the metric after ``finish``.

    Mirrors the formulas of :mod:`app.core.probabilistic`, :mod:`app.core.regression` and
    ``top_k_accuracy``; the tests hold them equal to the registry's.
    """
    b = prep.batch

    def first(m: Float) -> Float:
        return m[:, 0]

    def mean(m: Float) -> Float:
        return m.mean(axis=1)

    if b.task == "regression":
        t = b.y.astype(np.float64).reshape(b.n, -1)
        p = b.score.astype(np.float64).reshape(b.n, -1)
        if name == "mean_squared_error":
            return (t - p) ** 2, mean
        if name == "root_mean_squared_error":
            return (t - p) ** 2, lambda m: np.sqrt(m).mean(axis=1)
        if name == "mean_absolute_error":
            return np.abs(t - p), mean
        ape = np.abs(p - t) / np.maximum(np.abs(t), np.finfo(np.float64).eps)
        return ape, mean
    y = b.y
    if name == "accuracy":  # multilabel exact match
        return np.all(y == np.asarray(prep.ctx.y_pred), axis=1).astype(np.float64)[:, None], first
    if name == "top_k_accuracy":
        s = b.score
        if s.shape[1] < 3:
            return None  # the 1-D binary rule of top_k_accuracy: leave it to the fallback
        s_true = np.take_along_axis(s, y[:, None], axis=1)
        above = np.count_nonzero(s > s_true, axis=1)
        later = np.arange(s.shape[1]) > y[:, None]
        tied_later = np.count_nonzero((s == s_true) & later, axis=1)
        return ((above + tied_later) < int(params.get("k", 2))).astype(np.float64)[:, None], first
    proba = b.proba
    if name == "log_loss":
        if b.task == "binary":
            return _cell_log_loss(y, proba)[:, None], first
        if b.task == "multiclass":
            chosen = np.take_along_axis(proba, y[:, None], axis=1)[:, 0]
            return _cell_log_loss(np.ones_like(y), chosen)[:, None], first
        return _cell_log_loss(y, proba).mean(axis=1)[:, None], first
    # Brier score
    if b.task == "binary":
        return (2.0 * ((y != 0) - proba) ** 2)[:, None], lambda m: 0.5 * m[:, 0]
    if b.task == "multiclass":
        onehot = np.arange(proba.shape[1]) == y[:, None]
        rows = np.sum((onehot - proba) ** 2, axis=1)[:, None]
        return rows, (lambda m: 0.5 * m[:, 0]) if proba.shape[1] < 3 else first
    return (((y != 0) - proba) ** 2).mean(axis=1)[:, None], first


def _moments_kernel(prep: _Prepared, spec: MetricSpec, params: dict[str, Any]) -> Kernel:
    """r2 and explained variance from weighted moments about the full batch's means.

    Centering at a fixed point keeps ``Σw x² − (Σw x)²/Σw`` accurate for every resample near
    the batch; a resample whose variance is under ``_DEGENERATE`` of its second moment (nearly
    or exactly constant ``y_true``, or perfect predictions) is evaluated by the fallback, which
    applies the engine's exact constant-target policy.
    """
    b = prep.batch
    t = b.y.astype(np.float64).reshape(b.n, -1)
    p = b.score.astype(np.float64).reshape(b.n, -1)
    resid = t - p

    def spread(block: _Block, x: Float) -> tuple[Float, Float]:
        """(Σ w (x − x̄_w)², Σ w x²) per resample and output, x centered at its mean."""
        x0 = x - x.mean(axis=0)
        s1, s2 = block.sums(x0), block.sums(x0 * x0)
        return s2 - s1 * s1 / block.total[:, None], s2

    def kernel(block: _Block) -> Float:
        den, den_raw = spread(block, t)
        if spec.name == "r2":
            num = block.sums(resid * resid)
            unsure = num == 0
        else:
            num, num_raw = spread(block, resid)
            unsure = num <= _DEGENERATE * num_raw
        unsure |= den <= _DEGENERATE * den_raw
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.mean(1 - num / den, axis=1)
        for i in np.flatnonzero(unsure.any(axis=1) & ~block.empty):
            out[i] = _evaluate(spec, block.context(int(i)), params)[0]
        return out

    return kernel


# -- calibration bins ------------------------------------------------------------------------------


def _bin_sums(block: _Block) -> tuple[Float, Float, Float]:
    """Per resample and bin: weight, weighted confidence sum, weighted outcome sum."""
    ids, conf, outcome, per_row = block.prep.calibration_cells
    n_bins = block.prep.ctx.n_bins
    size = block.weights.shape[0]
    weight, conf_sum, pos_sum = (np.empty((size, n_bins)) for _ in range(3))
    for i in range(size):
        w = block.weights[i] if per_row == 1 else np.repeat(block.weights[i], per_row)
        weight[i] = np.bincount(ids, weights=w, minlength=n_bins)
        conf_sum[i] = np.bincount(ids, weights=w * conf, minlength=n_bins)
        pos_sum[i] = np.bincount(ids, weights=w * outcome, minlength=n_bins)
    return weight, conf_sum, pos_sum


def _calibration_kernel(name: str) -> Kernel:
    """ECE ``Σ_b W_b |acc_b − conf_b| / W`` or MCE ``max_b |acc_b − conf_b|`` per resample."""

    def kernel(block: _Block) -> Float:
        weight, conf_sum, pos_sum = block.memo("bins", lambda: _bin_sums(block))
        full = weight > 0
        safe = np.where(full, weight, 1.0)
        gap = np.where(full, np.abs(pos_sum / safe - conf_sum / safe), 0.0)
        if name == "mce":
            return gap.max(axis=1)
        return (weight * gap).sum(axis=1) / weight.sum(axis=1)

    return kernel


# -- order statistics ------------------------------------------------------------------------------


def _order_kernel(prep: _Prepared, name: str) -> Kernel:
    b = prep.batch
    err = np.abs(b.y.astype(np.float64) - b.score.astype(np.float64)).reshape(b.n, -1)
    if name == "max_error":

        def max_error(block: _Block) -> Float:
            drawn = block.weights > 0
            per_output = [np.where(drawn, e, -np.inf).max(axis=1) for e in err.T]
            return np.mean(per_output, axis=0)

        return max_error
    orders = [np.argsort(e, kind="stable") for e in err.T]

    def median(block: _Block) -> Float:
        return np.mean(
            [
                _weighted_medians(e[o], block.weights[:, o])
                for e, o in zip(err.T, orders, strict=True)
            ],
            axis=0,
        )

    return median


def _weighted_medians(values: Float, weights: Float) -> Float:
    """``regression._weighted_median`` of ascending ``values`` under each row of ``weights``.

    The averaged inverted CDF: the first value whose cumulative weight reaches half the total;
    where it reaches it exactly (within eps), the mean with the next value of positive weight.
    """
    last = values.shape[0] - 1
    cdf = np.cumsum(weights, axis=1)
    target = 0.5 * cdf[:, -1]
    rows = np.arange(cdf.shape[0])
    i = np.minimum(np.count_nonzero(cdf < target[:, None], axis=1), last)
    at_i = cdf[rows, i]
    exact = at_i - target <= np.finfo(np.float64).eps
    j = np.minimum(i + 1, last)
    zero_next = weights[rows, j] == 0
    after = np.count_nonzero(cdf <= at_i[:, None], axis=1)  # searchsorted(cdf, cdf[i], "right")
    j = np.where(zero_next, np.where(after > last, i, after), j)
    return np.where(exact, (values[i] + values[j]) / 2, values[i])
