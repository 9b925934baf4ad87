"""Permutation importance, equal to :func:`sklearn.inspection.permutation_importance`.

The importance of a feature (or of a group of features permuted together) is the drop of a
score when its values are shuffled across rows, breaking its link with the target while the
other columns stay as they are:

.. math::

    I_{j,r} = s(f(X), y) - s(f(X^{(j, r)}), y), \\qquad
    \\bar I_j = \\frac{1}{R} \\sum_r I_{j,r}, \\qquad
    \\sigma_j = \\sqrt{\\frac{1}{R} \\sum_r (I_{j,r} - \\bar I_j)^2}

where :math:`X^{(j, r)}` is ``X`` with the column(s) ``j`` permuted by the ``r``-th
permutation and ``s`` is the scorer's value, higher is better (a loss is negated, as
``make_scorer(..., greater_is_better=False)`` does), so a positive importance always means the
model needed the feature.

The random permutations are scikit-learn's, draw for draw: ``RandomState(seed)`` draws one
``randint(2**31)`` seed; each column starts a fresh ``RandomState`` from it and shuffles an
index array in place ``R`` times, each time re-indexing the already permuted column (so every
column sees the same cumulative permutations). All repeats of a column are scored from one
call of the ``predict_permuted`` callable, which receives the permuted values of every repeat
at once and may batch them (stacked copies in one forward pass, or cheaper: see
:mod:`app.training.inspect`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from app.core.batch import Batch, make_batch
from app.core.context import EvalContext
from app.core.ranking import RocAucOfScores
from app.core.registry import REGISTRY, finite_or_none, resolve
from app.errors import InvalidInput, UndefinedMetricError

__all__ = [
    "ImportanceResult",
    "PermutedPredict",
    "Scorer",
    "engine_scorer",
    "permutation_importance",
    "permutation_indices",
    "resolve_groups",
    "stacked_predict",
]

#: Rows of stacked copies predicted in one call (bounds the memory of a batched pass).
MAX_STACKED_ROWS: Final = 1 << 21


class PermutedPredict(Protocol):
    """Model outputs for ``R`` copies of ``X`` with ``X[:, columns]`` replaced.

    ``values`` has shape ``(R, n_rows, len(columns))``; the result has shape
    ``(R, n_rows)`` or ``(R, n_rows, n_outputs)``.
    """

    def __call__(
        self, columns: NDArray[np.intp], values: NDArray[Any]
    ) -> NDArray[np.floating[Any]]: ...


#: ``score(outputs) -> float``, higher is better (the target ``y`` is bound in).
Scorer = Callable[[NDArray[np.floating[Any]]], float]


@dataclass(frozen=True)
class ImportanceResult:
    """Importances of each feature or group.

    Attributes
    ----------
    names : list of str
        A feature or group name per row, in the order given (not sorted).
    baseline : float
        The score on the unpermuted data (scorer sign: higher is better).
    importances : ndarray of shape (n_groups, n_repeats)
        ``baseline - permuted score`` per repeat.
    """

    names: list[str]
    baseline: float
    importances: NDArray[np.float64]

    @property
    def mean(self) -> NDArray[np.float64]:
        return np.asarray(self.importances.mean(axis=1), dtype=np.float64)

    @property
    def std(self) -> NDArray[np.float64]:
        return np.asarray(self.importances.std(axis=1), dtype=np.float64)

    def ranked(self) -> list[dict[str, Any]]:
        """One entry per feature or group, largest mean drop first (ties by name)."""
        order = sorted(range(len(self.names)), key=lambda i: (-self.mean[i], self.names[i]))
        return [
            {
                "name": self.names[i],
                "rank": k + 1,
                "mean": finite_or_none(self.mean[i]),
                "std": finite_or_none(self.std[i]),
                "drops": [finite_or_none(v) for v in self.importances[i]],
            }
            for k, i in enumerate(order)
        ]


def permutation_indices(n_rows: int, n_repeats: int, seed: int) -> NDArray[np.intp]:
    """Row orders of the ``n_repeats`` permuted copies, exactly as scikit-learn draws them.

    Returns
    -------
    ndarray of shape (n_repeats, n_rows)
        Row ``r`` holds the indices into the original column of the ``r``-th permuted copy.

    Examples
    --------
    >>> permutation_indices(5, 2, seed=1).tolist()
    [[1, 2, 3, 0, 4], [1, 2, 4, 3, 0]]
    """
    outer = np.random.RandomState(seed)
    column_seed = outer.randint(np.iinfo(np.int32).max + 1)
    rng = np.random.RandomState(column_seed)
    shuffling = np.arange(n_rows)
    current = np.arange(n_rows)
    out = np.empty((n_repeats, n_rows), dtype=np.intp)
    for r in range(n_repeats):
        rng.shuffle(shuffling)
        current = current[shuffling]  # X_perm[:, j] = X_perm[shuffling, j], cumulatively
        out[r] = current
    return out


def resolve_groups(
    feature_names: Sequence[str], groups: Mapping[str, Sequence[str]] | None
) -> tuple[list[str], list[NDArray[np.intp]]]:
    """Names and column indices of what is permuted: each group, then each feature in no group.

    Raises
    ------
    InvalidInput
        An unknown feature name, an empty group, a group name that is also a feature of another
        group, or a feature in two groups (field ``groups``).
    """
    index = {name: j for j, name in enumerate(feature_names)}
    names: list[str] = []
    columns: list[NDArray[np.intp]] = []
    used: dict[str, str] = {}
    for group, members in (groups or {}).items():
        if not members:
            raise InvalidInput(f"group {group!r} is empty", field=f"groups.{group}")
        cols = []
        for m in members:
            if m not in index:
                known = ", ".join(list(feature_names)[:50])
                raise InvalidInput(
                    f"{m!r} is not a feature of the run (features: {known})",
                    field=f"groups.{group}",
                )
            if m in used:
                raise InvalidInput(
                    f"{m!r} is already in group {used[m]!r}", field=f"groups.{group}"
                )
            used[m] = group
            cols.append(index[m])
        names.append(group)
        columns.append(np.asarray(cols, dtype=np.intp))
    for name, j in index.items():
        if name not in used:
            if name in names:
                raise InvalidInput(f"group name {name!r} is also a feature", field="groups")
            names.append(name)
            columns.append(np.asarray([j], dtype=np.intp))
    return names, columns


def stacked_predict(
    predict: Callable[[NDArray[Any]], NDArray[np.floating[Any]]], X: NDArray[Any]
) -> PermutedPredict:
    """A :class:`PermutedPredict` that stacks the permuted copies and calls ``predict`` once.

    Examples
    --------
    >>> X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    >>> pp = stacked_predict(lambda A: A.sum(axis=1), X)
    >>> pp(np.array([0]), np.array([[[3.0], [1.0], [2.0]]])).tolist()
    [[13.0, 21.0, 32.0]]
    """

    def permuted(columns: NDArray[np.intp], values: NDArray[Any]) -> NDArray[np.floating[Any]]:
        R, n = values.shape[:2]
        stack = np.broadcast_to(X, (R, *X.shape)).copy()
        stack[:, :, columns] = values
        out = np.asarray(predict(stack.reshape(R * n, X.shape[1])))
        return out.reshape(R, n, *out.shape[1:])

    return permuted


def permutation_importance(
    predict_permuted: PermutedPredict,
    X: NDArray[Any],
    score: Scorer,
    baseline_outputs: NDArray[np.floating[Any]],
    *,
    n_repeats: int = 5,
    seed: int = 0,
    columns: Sequence[NDArray[np.intp]] | None = None,
    names: Sequence[str] | None = None,
    max_stacked_rows: int = MAX_STACKED_ROWS,
    n_threads: int | None = None,
) -> ImportanceResult:
    """Permutation importance of each column (or group of columns) of ``X``.

    Parameters
    ----------
    predict_permuted : PermutedPredict
        Outputs of the model on permuted copies (see :func:`stacked_predict`).
    X : ndarray of shape (n_rows, n_features)
    score : Scorer
        The scorer's value of model outputs, higher is better.
    baseline_outputs : ndarray
        The model's outputs on ``X`` itself.
    n_repeats : int
    seed : int
        ``random_state`` of :func:`sklearn.inspection.permutation_importance`.
    columns : list of int arrays, optional
        What to permute, one entry per feature or group (default: each column alone).
    names : list of str, optional
        Names of ``columns`` (default ``"0"``, ``"1"``, ...).
    max_stacked_rows : int
        At most this many rows (repeats × rows) per ``predict_permuted`` call.
    n_threads : int, optional
        Threads that score the repeats of one call side by side (default: the CPUs this
        process may use). The engine's scorers hold no shared state and spend their time in
        NumPy calls that release the GIL.

    Returns
    -------
    ImportanceResult
        With single columns and the same ``seed``, ``importances`` equals scikit-learn's
        ``permutation_importance(...).importances``.

    Examples
    --------
    >>> X = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    >>> y = X[:, 0]
    >>> pp = stacked_predict(lambda A: A[:, 0], X)
    >>> neg_mse = lambda out: -np.mean((out - y) ** 2)
    >>> res = permutation_importance(pp, X, neg_mse, y, n_repeats=2, seed=1)
    >>> res.importances.tolist()
    [[3.0, 4.5], [0.0, 0.0]]
    """
    n, d = X.shape
    cols = [np.asarray([j], dtype=np.intp) for j in range(d)] if columns is None else columns
    labels = [str(j) for j in range(len(cols))] if names is None else list(names)
    baseline = float(score(baseline_outputs))
    perms = permutation_indices(n, n_repeats, seed)
    per_call = max(1, max_stacked_rows // max(n, 1))
    drops = np.empty((len(cols), n_repeats), dtype=np.float64)
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1  # (process_cpu_count: 3.13+)
    threads = min(n_threads or cpus, per_call, n_repeats)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for g, c in enumerate(cols):
            block = X[:, c]
            for lo in range(0, n_repeats, per_call):
                hi = min(n_repeats, lo + per_call)
                out = predict_permuted(c, block[perms[lo:hi]])
                scores = pool.map(score, out) if threads > 1 else map(score, out)
                drops[g, lo:hi] = baseline - np.fromiter(scores, np.float64, hi - lo)
    return ImportanceResult(labels, baseline, drops)


def engine_scorer(
    task: str,
    metric: str,
    params: Mapping[str, Any] | None,
    y: NDArray[Any],
    n_outputs: int,
) -> tuple[Scorer, Callable[[NDArray[np.floating[Any]]], float | None]]:
    """A scorer of model outputs (logits, or values for regression) by an engine metric.

    Returns ``(scorer, natural)``: ``scorer`` is the metric with scikit-learn's sign (a loss
    negated; an undefined value is NaN) and ``natural(outputs)`` the metric as reported by
    ``/v1/evaluations``. The labels are checked once; each call only swaps the scores.

    Raises
    ------
    InvalidInput
        An unknown metric, or one that does not apply to the task (field ``metric``).

    Examples
    --------
    >>> y = np.array([0, 1, 1, 0])
    >>> scorer, natural = engine_scorer("binary", "log_loss", None, y, 1)
    >>> round(natural(np.array([-2.0, 2.0, 1.0, -1.0])), 6), round(scorer(np.zeros(4)), 6)
    (0.220095, -0.693147)
    """
    try:
        ((spec, bound),) = resolve(task, [(metric, dict(params or {}))])  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field="metric") from None
    sign = 1.0 if REGISTRY[metric].greater_is_better else -1.0
    template = _template_batch(task, y, n_outputs)
    # Binary ROC AUC, the usual importance metric: the same value from one key sort per call.
    fixed_auc = RocAucOfScores(template.y) if (task, metric) == ("binary", "roc_auc") else None

    def natural(outputs: NDArray[np.floating[Any]]) -> float | None:
        try:
            if fixed_auc is not None:
                return finite_or_none(fixed_auc(outputs))
            batch = replace(template, score=np.asarray(outputs))
            return finite_or_none(spec(EvalContext(batch), **bound))
        except UndefinedMetricError:
            return None

    def scorer(outputs: NDArray[np.floating[Any]]) -> float:
        value = natural(outputs)
        return float("nan") if value is None else sign * value

    return scorer, natural


def _template_batch(task: str, y: NDArray[Any], n_outputs: int) -> Batch:
    if task == "regression":
        return make_batch("regression", y, np.zeros(y.shape[0]), score_field="y_pred")
    k = 1 if task == "binary" else n_outputs
    labels = [0, 1] if task == "binary" else list(range(n_outputs))
    zeros = np.zeros(y.shape[0]) if k == 1 else np.zeros((y.shape[0], k))
    return make_batch(
        task,  # type: ignore[arg-type]
        y.astype(np.int64),
        zeros,
        score_type="logit",
        labels=labels,
    )
