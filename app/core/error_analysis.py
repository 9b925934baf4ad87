"""Error analysis: which classes fail, which attract errors, and the most confident mistakes.

Reads a confusion matrix (:func:`confusion_analysis`: hard classes are rows with low recall,
"magnet" classes are columns with low precision, specific confusions are large off-diagonal
cells) and a batch (:func:`most_confident_errors`: wrong predictions with a high confidence
point at label noise, leakage or bias first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core.batch import Batch
from app.core.context import EvalContext
from app.errors import InvalidInput

__all__ = ["confusion_analysis", "most_confident_errors"]

Float = NDArray[np.float64]


def _check_top(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInput(f"is {value!r}; must be an integer >= 1", field=field)
    return int(value)


def confusion_analysis(
    cm: ArrayLike, classes: Sequence[Any], *, top: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """Hard classes, error-attracting classes and the most confused pairs of a confusion matrix.

    Parameters
    ----------
    cm : array-like of shape (K, K)
        Rows are true classes, columns predicted classes; counts or sums of weights.
    classes : sequence of length K
        The class labels in row order.
    top : int >= 1, default 5
        Entries per list.

    Returns
    -------
    dict
        - ``hard_classes``: the classes of lowest recall ``cm[a, a] / Σ_j cm[a, j]`` first, each
          ``{"label", "recall", "support", "errors"}`` (``errors = support − cm[a, a]``);
          classes without support are left out (recall undefined).
        - ``attracting_classes``: the classes of lowest precision ``cm[b, b] / Σ_i cm[i, b]``
          first, each ``{"label", "precision", "predicted", "false_positives"}``; classes never
          predicted are left out.
        - ``confused_pairs``: non-zero off-diagonal cells ``a → b`` by count, descending, each
          ``{"true", "predicted", "count", "fraction"}`` with ``fraction = cm[a, b] / support_a``
          (the share of class ``a`` that goes to ``b``).

        Ties are broken by class index (pairs: by ``(a, b)``).

    Raises
    ------
    InvalidInput
        ``cm`` not square, negative or non-finite; ``classes`` of the wrong length; bad ``top``.

    Examples
    --------
    >>> cm = np.array([[5, 1, 0], [3, 2, 1], [0, 0, 4]])
    >>> out = confusion_analysis(cm, ["cat", "dog", "fox"], top=2)
    >>> [(c["label"], c["recall"]) for c in out["hard_classes"]]
    [('dog', 0.3333), ('cat', 0.8333)]
    >>> out["confused_pairs"][0]
    {'true': 'dog', 'predicted': 'cat', 'count': 3.0, 'fraction': 0.5}
    """
    c = np.asarray(cm, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise InvalidInput(f"must be a (K, K) confusion matrix, got shape {c.shape}", field="cm")
    if not np.isfinite(c).all() or (c < 0).any():
        raise InvalidInput("counts must be finite and >= 0", field="cm")
    labels = list(classes)
    k = c.shape[0]
    if len(labels) != k:
        raise InvalidInput(f"has {len(labels)} labels but cm has {k} classes", field="classes")
    top = _check_top(top, "top")
    diag = np.diagonal(c)
    support, predicted = c.sum(axis=1), c.sum(axis=0)

    def lowest(num: Float, den: Float) -> list[int]:
        present = np.flatnonzero(den > 0)
        ratio = num[present] / den[present]
        return present[np.argsort(ratio, kind="stable")][:top].tolist()  # ties: by index

    hard = [
        {
            "label": labels[a],
            "recall": float(diag[a] / support[a]),
            "support": float(support[a]),
            "errors": float(support[a] - diag[a]),
        }
        for a in lowest(diag, support)
    ]
    attracting = [
        {
            "label": labels[b],
            "precision": float(diag[b] / predicted[b]),
            "predicted": float(predicted[b]),
            "false_positives": float(predicted[b] - diag[b]),
        }
        for b in lowest(diag, predicted)
    ]
    off = c.copy()
    np.fill_diagonal(off, 0.0)
    flat = off.ravel()
    nonzero = np.flatnonzero(flat > 0)  # row-major: already in (a, b) order
    ranked = nonzero[np.argsort(-flat[nonzero], kind="stable")][:top]
    pairs = [
        {
            "true": labels[a],
            "predicted": labels[b],
            "count": float(c[a, b]),
            "fraction": float(c[a, b] / support[a]),
        }
        for a, b in (divmod(int(i), k) for i in ranked)
    ]
    return {"hard_classes": hard, "attracting_classes": attracting, "confused_pairs": pairs}


def most_confident_errors(
    batch: Batch,
    *,
    ids: ArrayLike | None = None,
    k: int = 10,
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    """The ``k`` wrong predictions made with the highest confidence.

    Binary: predicted positive iff ``score >= threshold`` (as the report), confidence the
    probability of the predicted class, ``p`` or ``1 − p`` (sigmoid of logits). Multiclass:
    predicted the argmax of the scores, confidence its probability (the largest). Rows of zero
    sample weight are not part of the evaluated data and never listed.

    Selection is O(n) with ``np.argpartition``; only the chosen rows are sorted.

    Parameters
    ----------
    batch : Batch
        A binary or multiclass batch.
    ids : array-like of shape (n,), optional
        Row identifiers to report (default: the row index).
    k : int >= 1, default 10
    threshold : float, optional
        Binary decision threshold (default 0.5 for probabilities, 0 for logits).

    Returns
    -------
    list of dict
        ``{"id", "row", "true", "predicted", "confidence"}``, by confidence descending, ties by
        row index; fewer than ``k`` when there are fewer errors.

    Raises
    ------
    InvalidInput
        A multilabel or regression batch (field ``task``), ``ids`` of the wrong length (field
        ``ids``), a bad ``k``.

    Examples
    --------
    >>> from app.core.batch import make_batch
    >>> b = make_batch("binary", [0, 1, 0, 1], [0.9, 0.2, 0.6, 0.8])
    >>> [(e["row"], e["predicted"], e["confidence"]) for e in most_confident_errors(b, k=2)]
    [(0, 1, 0.9), (1, 0, 0.8)]
    """
    if batch.task not in ("binary", "multiclass"):
        raise InvalidInput(
            f"most confident errors need a binary or multiclass batch, not {batch.task!r}",
            field="task",
        )
    k = _check_top(k, "k")
    id_list: list[Any] | None = None
    if ids is not None:
        id_arr = np.asarray(ids)
        if id_arr.ndim != 1 or id_arr.shape[0] != batch.n:
            raise InvalidInput(
                f"has shape {id_arr.shape} but the batch has {batch.n} rows", field="ids"
            )
        id_list = id_arr.tolist()
    ctx = EvalContext(batch, threshold=threshold)
    pred = np.asarray(ctx.y_pred)
    if batch.task == "binary":
        confidence = np.where(pred, batch.proba, 1.0 - batch.proba)
        true_idx, pred_idx = batch.y.astype(np.intp), pred.astype(np.intp)
    else:
        confidence = np.take_along_axis(batch.proba, pred[:, None], axis=1)[:, 0]
        true_idx, pred_idx = batch.y, pred
    wrong = true_idx != pred_idx
    if batch.sample_weight is not None:
        wrong &= batch.sample_weight > 0
    rows = np.flatnonzero(wrong)  # ascending: the tie order
    chosen = _top_k(confidence[rows], k)
    rows = rows[chosen]
    labels = batch.class_labels
    return [
        {
            "id": id_list[r] if id_list is not None else r,
            "row": r,
            "true": labels[true_idx[r]],
            "predicted": labels[pred_idx[r]],
            "confidence": float(confidence[r]),
        }
        for r in rows.tolist()
    ]


def _top_k(values: Float, k: int) -> NDArray[np.intp]:
    """Positions of the ``k`` largest values, descending, ties by position (smaller first).

    Examples
    --------
    >>> _top_k(np.array([0.5, 0.9, 0.5, 0.7, 0.5]), 3)
    array([1, 3, 0])
    """
    m = values.shape[0]
    if k < m:
        largest = np.argpartition(values, m - k)[m - k :]  # any k largest; [0] is the k-th
        kth = values[largest[0]]
        above = np.flatnonzero(values > kth)
        tied = np.flatnonzero(values == kth)[: k - above.shape[0]]  # first positions win
        candidates = np.concatenate((above, tied))
    else:
        candidates = np.arange(m)
    # lexsort: last key first; -value descending, then position ascending.
    return candidates[np.lexsort((candidates, -values[candidates]))]
