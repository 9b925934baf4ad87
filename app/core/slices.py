"""Per-group evaluation: every metric on each slice of the batch defined by a group column.

A group column (device, region, language, …) splits the rows; each group is evaluated by the
normal engine (its own :class:`EvalContext`, the registry's metrics), then summarised by the
support-weighted mean over groups and the worst group per metric. Rows are grouped with one
stable argsort of the group codes and contiguous slices, so thousands of groups cost one sort,
not one boolean mask per group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core.batch import Batch
from app.core.context import Binning, EvalContext
from app.core.registry import MetricSpec, finite_or_none, metric_key, resolve
from app.errors import InvalidInput, UndefinedMetricError

__all__ = ["MAX_GROUPS", "encode_groups", "evaluate_groups"]

#: Distinct values a group column may have: beyond this it is an identifier, not a grouping.
MAX_GROUPS = 1000


def encode_groups(
    labels: ArrayLike, n: int, *, field: str, max_groups: int = MAX_GROUPS
) -> tuple[list[Any], NDArray[np.intp]]:
    """The sorted distinct values of a group column and each row's code.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Strings, integers, booleans or finite floats (not mixed strings and numbers).
    n : int
        The batch's number of rows.
    field : str
        Names the column in errors (``groups.<name>``).
    max_groups : int, default 1000

    Returns
    -------
    values : list
        The distinct values, sorted, as Python scalars.
    codes : ndarray of shape (n,)
        ``values[codes[i]]`` is row ``i``'s group.

    Raises
    ------
    InvalidInput
        Wrong length or shape, missing (None / NaN) or mixed-type values, too many groups.

    Examples
    --------
    >>> encode_groups(["b", "a", "b"], 3, field="groups.site")
    (['a', 'b'], array([1, 0, 1]))
    """
    # A plain list keeps its Python types (np.asarray would turn [1, "a"] into strings).
    g = np.asarray(labels, dtype=object if isinstance(labels, list | tuple) else None)
    if g.ndim != 1:
        raise InvalidInput(f"must be 1-D, got shape {g.shape}", field=field)
    if g.shape[0] != n:
        raise InvalidInput(
            f"has {g.shape[0]} rows but y_true has {n}: lengths must match", field=field
        )
    if g.dtype.kind == "O":
        kinds = {_scalar_kind(v) for v in g.tolist()}
        if kinds == {"str"}:
            g = g.astype(str)
        elif kinds == {"int"}:
            g = g.astype(np.int64)
        elif kinds <= {"int", "float"}:
            g = g.astype(np.float64)
        else:
            raise InvalidInput(
                f"values must be all strings or all numbers, got {', '.join(sorted(kinds))}",
                field=field,
            )
    elif g.dtype.kind not in "biufUS":
        raise InvalidInput(f"values of dtype {g.dtype} cannot name groups", field=field)
    if g.dtype.kind == "f" and not np.isfinite(g).all():
        i = int(np.argmax(~np.isfinite(g)))
        raise InvalidInput(f"{field}[{i}] is {g[i]!r}: a group value must be finite", field=field)
    values, codes = np.unique(g, return_inverse=True)
    if values.shape[0] > max_groups:
        raise InvalidInput(
            f"has {values.shape[0]} distinct values; at most {max_groups} groups are allowed "
            "(is it an identifier rather than a grouping?)",
            field=field,
        )
    return values.tolist(), codes.reshape(-1).astype(np.intp, copy=False)


def _scalar_kind(value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, bool | int | np.integer | np.bool_):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    return type(value).__name__


def evaluate_groups(
    batch: Batch,
    groups: Mapping[str, ArrayLike],
    metrics: list[tuple[str, dict[str, Any]]] | None = None,
    *,
    threshold: float | None = None,
    n_bins: int = 15,
    binning: Binning = "uniform",
    max_groups: int = MAX_GROUPS,
) -> dict[str, dict[str, Any]]:
    """Evaluate the metrics on every group of every group column.

    Parameters
    ----------
    batch : Batch
    groups : mapping of str to array-like of shape (n,)
        Group columns by name; each row belongs to one group per column.
    metrics : list of (name, params), optional
        Registry metrics (default: the task's defaults).
    threshold, n_bins, binning
        As :class:`EvalContext`; the same for every group.
    max_groups : int, default 1000

    Returns
    -------
    dict
        Per column name: ``{"values": [...], "weighted_mean": {...}, "worst": {...}}``.

        - ``values``: one entry per group, in sorted value order: ``value``, ``n`` (rows),
          ``weight`` (sum of sample weights, = ``n`` without weights), ``metrics``
          (key -> float or None), ``ece`` (classification; None if undefined or regression),
          ``confusion_matrix`` (as the report's counts; None for regression) and ``warnings``
          (``{"metric", "message"}`` for each undefined value).
        - ``weighted_mean``: per metric, ``Σ_g W_g m_g / Σ_g W_g`` over the groups where it is
          defined (``W_g`` the group's weight); None if no group defines it.
        - ``worst``: per metric, ``{"value", "metric_value"}`` of the group with the lowest value
          (highest for lower-is-better metrics) among groups where it is defined, the first in
          value order on ties; None if no group defines it.

    Raises
    ------
    InvalidInput
        A group column of the wrong length or with more than ``max_groups`` values
        (field ``groups.<name>``); unknown metrics.

    Examples
    --------
    >>> from app.core.batch import make_batch
    >>> b = make_batch("binary", [0, 1, 1, 0, 1, 1], [.2, .8, .4, .6, .9, .7])
    >>> out = evaluate_groups(b, {"site": ["a", "a", "a", "b", "b", "b"]}, [("accuracy", {})])
    >>> [(g["value"], g["metrics"]["accuracy"]) for g in out["site"]["values"]]
    [('a', 0.6667), ('b', 0.6667)]
    >>> out["site"]["worst"]["accuracy"]
    {'value': 'a', 'metric_value': 0.6667}
    """
    specs = resolve(batch.task, metrics)
    encoded = {
        name: encode_groups(labels, batch.n, field=f"groups.{name}", max_groups=max_groups)
        for name, labels in groups.items()
    }
    options = {"threshold": threshold, "n_bins": n_bins, "binning": binning}
    out: dict[str, dict[str, Any]] = {}
    for name, (values, codes) in encoded.items():
        order = np.argsort(codes, kind="stable")  # rows of a group: contiguous, in row order
        bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=len(values)))))
        rows = [
            _evaluate_group(batch, order[lo:hi], value, specs, options)
            for value, lo, hi in zip(values, bounds[:-1], bounds[1:], strict=True)
        ]
        out[name] = {"values": rows, **_summaries(rows, specs)}
    return out


def _subset(batch: Batch, rows: NDArray[np.intp]) -> Batch:
    weight = None if batch.sample_weight is None else batch.sample_weight[rows]
    return Batch(
        batch.task, batch.y[rows], batch.score[rows], batch.score_type, batch.classes, weight
    )


def _evaluate_group(
    batch: Batch,
    rows: NDArray[np.intp],
    value: Any,
    specs: list[tuple[MetricSpec, dict[str, Any]]],
    options: dict[str, Any],
) -> dict[str, Any]:
    sub = _subset(batch, rows)
    weight = float(rows.shape[0] if sub.sample_weight is None else sub.sample_weight.sum())
    entry: dict[str, Any] = {"value": value, "n": int(rows.shape[0]), "weight": weight}
    metrics: dict[str, float | None] = {}
    warnings: list[dict[str, str]] = []
    classification = batch.task != "regression"
    if weight == 0:
        # Nothing to evaluate (every row weighs 0): the engine's functions refuse such weights.
        for spec, params in specs:
            metrics[metric_key(spec.name, params)] = None
        warnings.append({"metric": "*", "message": "every row of this group has zero weight"})
        entry.update(metrics=metrics, ece=None, confusion_matrix=None, warnings=warnings)
        return entry
    ctx = EvalContext(sub, **options)
    for spec, params in specs:
        key = metric_key(spec.name, params)
        try:
            metrics[key] = finite_or_none(spec(ctx, **params))
        except UndefinedMetricError as exc:
            metrics[key] = None
            warnings.append({"metric": key, "message": exc.reason})
    ece: float | None = None
    if classification:
        try:
            ece = finite_or_none(ctx.calibration.ece)
        except UndefinedMetricError as exc:
            warnings.append({"metric": "ece", "message": exc.reason})
    entry.update(
        metrics=metrics,
        ece=ece,
        confusion_matrix=ctx.confusion if classification else None,
        warnings=warnings,
    )
    return entry


def _summaries(
    rows: list[dict[str, Any]], specs: list[tuple[MetricSpec, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    weighted_mean: dict[str, float | None] = {}
    worst: dict[str, dict[str, Any] | None] = {}
    for spec, params in specs:
        key = metric_key(spec.name, params)
        defined = [(r["value"], r["metrics"][key], r["weight"]) for r in rows]
        defined = [d for d in defined if d[1] is not None]
        if not defined:
            weighted_mean[key] = None
            worst[key] = None
            continue
        values = np.array([v for _, v, _ in defined])
        weights = np.array([w for _, _, w in defined])
        weighted_mean[key] = finite_or_none(np.sum(weights * values) / np.sum(weights))
        # argmin / argmax return the first extreme: ties go to the first group in value order.
        i = int(np.argmin(values) if spec.greater_is_better else np.argmax(values))
        worst[key] = {"value": defined[i][0], "metric_value": float(values[i])}
    return {"weighted_mean": weighted_mean, "worst": worst}
