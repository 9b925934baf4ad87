"""Domain-based validation: which rows a held-out domain or a time cutoff keeps, and the
summary over domains (support-weighted mean, worst domain, random-split gap).

Pure numpy: the service (:mod:`app.services.domain_validation`) trains one run per held-out
domain and hands each run's validation metrics here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.errors import InvalidInput

__all__ = [
    "GREATER_IS_BETTER",
    "PRIMARY_METRIC",
    "TASK_METRICS",
    "aggregate_domains",
    "parse_times",
    "random_split_gap",
    "time_masks",
    "weighted_mean",
]

#: The validation metrics compared across domains (a stored evaluation's headline columns).
TASK_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "binary": ("accuracy", "f1", "roc_auc", "average_precision", "log_loss", "brier", "ece"),
    "multiclass": ("accuracy", "f1", "roc_auc", "log_loss", "brier", "ece"),
    "regression": ("rmse", "mae", "r2"),
}
#: Direction of each metric (sklearn's rule: scores up, errors and losses down).
GREATER_IS_BETTER: Final[dict[str, bool]] = {
    "accuracy": True,
    "f1": True,
    "roc_auc": True,
    "average_precision": True,
    "r2": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "rmse": False,
    "mae": False,
}
#: The metric that names the worst domain, per task.
PRIMARY_METRIC: Final[dict[str, str]] = {
    "binary": "roc_auc",
    "multiclass": "accuracy",
    "regression": "rmse",
}


def weighted_mean(values: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """Support-weighted mean over the domains where the metric is defined.

    ``m̄ = Σ_d n_d m_d / Σ_d n_d``, the sums over domains ``d`` whose ``m_d`` is not None;
    None when no domain defines it.

    Parameters
    ----------
    values : sequence of float or None, one per domain
    weights : sequence of float >= 0, one per domain (the held-out rows, ``n_d``)

    Examples
    --------
    >>> weighted_mean([0.5, 1.0, None], [10, 30, 60])
    0.875
    >>> weighted_mean([None], [5]) is None
    True
    """
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} values for {len(weights)} weights")
    pairs = [(float(v), float(w)) for v, w in zip(values, weights, strict=True) if v is not None]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    v = np.array([p[0] for p in pairs], dtype=np.float64)
    w = np.array([p[1] for p in pairs], dtype=np.float64)
    return float(np.dot(w, v) / w.sum())


def aggregate_domains(
    task: str, domains: Sequence[Mapping[str, Any]], *, metrics: Sequence[str] | None = None
) -> dict[str, Any]:
    """Summary of per-domain validation metrics.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    domains : sequence of mappings
        One per held-out domain: ``domain`` (its value), ``n_val`` (its support ``n_d``, the
        held-out rows) and ``metrics`` (name -> value or None).
    metrics : sequence of str, optional
        Default: :data:`TASK_METRICS` of the task.

    Returns
    -------
    dict
        ``weighted_mean`` (per metric, :func:`weighted_mean`), ``mean`` (unweighted, over
        domains defining it), ``worst`` (per metric: the domain with the lowest score or the
        highest error, and its value; ties go to the first domain), ``worst_domain`` (the worst
        by :data:`PRIMARY_METRIC`, None when no domain defines it), ``ece_by_domain``
        (classification), ``undefined`` (per metric: the domains where it is None).

    Examples
    --------
    >>> out = aggregate_domains("regression", [
    ...     {"domain": "a", "n_val": 1, "metrics": {"rmse": 1.0, "mae": 1.0, "r2": 0.5}},
    ...     {"domain": "b", "n_val": 3, "metrics": {"rmse": 3.0, "mae": 2.0, "r2": None}}])
    >>> out["weighted_mean"]["rmse"], out["worst_domain"]
    (2.5, {'domain': 'b', 'metric': 'rmse', 'value': 3.0})
    """
    names = tuple(metrics) if metrics is not None else TASK_METRICS[task]
    support = [float(d["n_val"]) for d in domains]
    weighted: dict[str, float | None] = {}
    mean: dict[str, float | None] = {}
    worst: dict[str, dict[str, Any] | None] = {}
    undefined: dict[str, list[Any]] = {}
    for name in names:
        values = [d["metrics"].get(name) for d in domains]
        weighted[name] = weighted_mean(values, support)
        defined = [
            (d["domain"], float(v)) for d, v in zip(domains, values, strict=True) if v is not None
        ]
        mean[name] = float(np.mean([v for _, v in defined])) if defined else None
        undefined[name] = [d["domain"] for d, v in zip(domains, values, strict=True) if v is None]
        if not defined:
            worst[name] = None
            continue
        sign = -1.0 if GREATER_IS_BETTER[name] else 1.0  # worst = largest sign * value
        i = int(np.argmax([sign * v for _, v in defined]))
        worst[name] = {"domain": defined[i][0], "value": defined[i][1]}
    primary = PRIMARY_METRIC[task]
    hit = worst.get(primary)
    out: dict[str, Any] = {
        "primary_metric": primary,
        "weighted_mean": weighted,
        "mean": mean,
        "worst": worst,
        "worst_domain": None
        if hit is None
        else {"domain": hit["domain"], "metric": primary, "value": hit["value"]},
        "undefined": {k: v for k, v in undefined.items() if v},
    }
    if "ece" in names:
        out["ece_by_domain"] = {str(d["domain"]): d["metrics"].get("ece") for d in domains}
    return out


def random_split_gap(
    random: Mapping[str, float | None], domain: Mapping[str, float | None]
) -> tuple[dict[str, float | None], dict[str, bool | None]]:
    """How far a random split's score is from the domain-based one.

    ``gap_m = m_random - m_domain`` per metric (None when either is undefined), and whether
    the random split looks better (overestimates): ``gap > 0`` for a score, ``gap < 0`` for an
    error or loss.

    Examples
    --------
    >>> random_split_gap({"roc_auc": 0.9, "log_loss": 0.3}, {"roc_auc": 0.7, "log_loss": 0.6})
    ({'roc_auc': 0.20000000000000007, 'log_loss': -0.3}, {'roc_auc': True, 'log_loss': True})
    """
    gap: dict[str, float | None] = {}
    over: dict[str, bool | None] = {}
    for name, r in random.items():
        d = domain.get(name)
        if r is None or d is None:
            gap[name], over[name] = None, None
            continue
        g = float(r) - float(d)
        gap[name] = g
        over[name] = g > 0 if GREATER_IS_BETTER.get(name, True) else g < 0
    return gap, over


# -- time splits ------------------------------------------------------------------------------
def _instant(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, date):
        t = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"{value!r} is not an ISO-8601 date or time", field=field) from None
    else:
        raise InvalidInput(f"{value!r} is not an ISO-8601 date or time", field=field)
    # naive times are read as UTC; aware ones are converted, so offsets compare correctly
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_times(values: Sequence[Any], field: str) -> NDArray[np.int64]:
    """ISO-8601 dates or times (or ``datetime`` / ``date`` objects) as UTC microseconds.

    A date is its midnight; a naive time is read as UTC; an offset (``+02:00``, ``Z``) is
    honoured. Comparing the microseconds is comparing the instants.

    Examples
    --------
    >>> parse_times(["2024-01-01", "2024-01-01T01:00:00+01:00"], "t").tolist()
    [1704067200000000, 1704067200000000]
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        delta = _instant(v, field) - epoch
        out[i] = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return out


def time_masks(
    values: ArrayLike, cutoff: float | str, *, field: str = "validation.time_split"
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Past (``t < cutoff``: training) and future (``t >= cutoff``: validation) rows.

    Parameters
    ----------
    values : array-like of shape (n,)
        Numbers (compared as float64), or ISO-8601 strings / dates (compared as instants,
        :func:`parse_times`).
    cutoff : float or str
        A number for numeric values, an ISO-8601 string for times.

    Raises
    ------
    InvalidInput
        A cutoff of the other kind than the values, an unparsable time, NaN.

    Examples
    --------
    >>> past, future = time_masks([1, 5, 3], 3)
    >>> past.tolist(), future.tolist()
    ([True, False, False], [False, True, True])
    >>> time_masks(["2024-03-01", "2023-12-31"], "2024-01-01")[1].tolist()
    [True, False]
    """
    arr = np.asarray(values)
    numeric = arr.dtype.kind in "iuf" and arr.dtype.kind != "b"
    if numeric:
        if isinstance(cutoff, str | bool):
            raise InvalidInput(
                f"is {cutoff!r}: the column is numeric, so the cutoff must be a number",
                field=f"{field}.cutoff",
            )
        t = arr.astype(np.float64)
        c = float(cutoff)
        if not np.isfinite(c):
            raise InvalidInput(f"is {cutoff!r}: must be finite", field=f"{field}.cutoff")
        if np.isnan(t).any():
            raise InvalidInput("the time column holds NaN", field=f"{field}.column")
        past = t < c
    else:
        if not isinstance(cutoff, str):
            raise InvalidInput(
                f"is {cutoff!r}: the column holds dates or times, so the cutoff must be an "
                "ISO-8601 string",
                field=f"{field}.cutoff",
            )
        t_us = parse_times(arr.tolist(), f"{field}.column")
        c_us = parse_times([cutoff], f"{field}.cutoff")[0]
        past = t_us < c_us
    return past, ~past
