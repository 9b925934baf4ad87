"""A prediction batch, checked and put in the engine's canonical form.

This is the "format" stage of the engine: labels of any kind become indices or booleans, scores
become float arrays of the task's shape, logits get their probabilities, and every later function
can trust its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, softmax

from app.core._checks import (
    as_float_array,
    check_consistent_length,
    check_probabilities,
    check_sample_weight,
    encode_labels,
)
from app.errors import InvalidInput

Task = Literal["binary", "multiclass", "multilabel", "regression"]
ScoreType = Literal["probability", "logit"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "multilabel", "regression")

# Label sets whose positive class needs no ``pos_label``, as in scikit-learn.
_IMPLICIT_BINARY = ({0, 1}, {-1, 1}, {0}, {1}, {-1})


@dataclass(frozen=True, eq=False)
class Batch:
    """A validated batch.

    Attributes
    ----------
    task : {"binary", "multiclass", "multilabel", "regression"}
    y : ndarray
        binary: bool (n,); multiclass: class indices (n,); multilabel: bool (n, L);
        regression: float (n,) or (n, D).
    score : ndarray
        As posted: binary (n,); multiclass (n, K); multilabel (n, L); regression predictions.
    score_type : {"probability", "logit", "value"}
        "value" for regression.
    classes : ndarray or None
        binary: ``[negative, positive]``; multiclass: the K labels in column order; multilabel:
        the L label names; regression: None.
    sample_weight : ndarray of shape (n,) or None
    """

    task: Task
    y: NDArray[Any]
    score: NDArray[np.floating[Any]]
    score_type: Literal["probability", "logit", "value"]
    classes: NDArray[Any] | None
    sample_weight: NDArray[np.float64] | None = field(default=None)

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @cached_property
    def proba(self) -> NDArray[np.float64]:
        """Probabilities in float64: the posted ones, or sigmoid/softmax of the logits."""
        if self.score_type == "value":
            raise InvalidInput("regression predictions are not probabilities", field="task")
        s = self.score.astype(np.float64, copy=False)
        if self.score_type == "probability":
            return s
        if self.task == "multiclass":
            return softmax(s, axis=1)
        return expit(s)

    @property
    def class_labels(self) -> list[Any]:
        return [] if self.classes is None else self.classes.tolist()


def make_batch(
    task: Task,
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    score_type: ScoreType = "probability",
    sample_weight: ArrayLike | None = None,
    labels: list[Any] | None = None,
    pos_label: Any = None,
    score_field: str = "y_score",
) -> Batch:
    """Check a batch and return it in canonical form.

    Raises
    ------
    InvalidInput
        Length or shape mismatch, NaN/inf, probabilities outside [0, 1] or rows not summing to 1,
        labels outside ``labels``, an ambiguous positive class, an empty batch.
    """
    if task == "regression":
        return _regression(y_true, y_score, sample_weight, score_field)
    score = make_scores(task, y_score, score_type, score_field)
    y: NDArray[Any]
    classes: NDArray[Any]
    if task == "binary":
        y, classes = _binary_labels(y_true, labels, pos_label)
    elif task == "multiclass":
        classes, y = _multiclass_labels(y_true, labels, score.shape[1])
    else:
        y, classes = _multilabel_labels(y_true, labels, score.shape)
    check_consistent_length(y.shape[0], **{score_field: score})
    weight = check_sample_weight(sample_weight, y.shape[0])
    return Batch(task, y, score, score_type, classes, weight)


def _regression(
    y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None, score_field: str
) -> Batch:
    y = as_float_array(y_true, "y_true", ndim=(1, 2))
    pred = as_float_array(y_pred, score_field, ndim=(1, 2))
    check_consistent_length(y.shape[0], **{score_field: pred})
    if y.shape != pred.shape:
        raise InvalidInput(
            f"has shape {pred.shape} but y_true has shape {y.shape}", field=score_field
        )
    weight = check_sample_weight(sample_weight, y.shape[0])
    return Batch("regression", y, pred, "value", None, weight)


def make_scores(
    task: Task, y_score: ArrayLike, score_type: ScoreType, score_field: str = "y_score"
) -> NDArray[np.floating[Any]]:
    """Check a classification score array and return it in the task's canonical shape.

    binary: (n,) (two columns become the positive class's probability or log-odds);
    multiclass and multilabel: (n, K). Probabilities must lie in [0, 1], multiclass rows must
    sum to 1.
    """
    if task == "binary":
        return _binary_scores(y_score, score_type, score_field)
    if task not in ("multiclass", "multilabel"):
        raise InvalidInput(f"unknown task {task!r}; use one of {list(TASKS)}", field="task")
    score = as_float_array(y_score, score_field, ndim=2)
    if score_type == "probability":
        check_probabilities(score, score_field, simplex=task == "multiclass")
    return score


def _binary_scores(
    y_score: ArrayLike, score_type: ScoreType, score_field: str
) -> NDArray[np.floating[Any]]:
    score = as_float_array(y_score, score_field, ndim=(1, 2))
    if score.ndim == 2:
        # Two columns (negative, positive) as many classifiers emit them.
        if score.shape[1] != 2:
            raise InvalidInput(
                f"a binary task takes one score per row or two columns, got {score.shape[1]}",
                field=score_field,
            )
        if score_type == "probability":
            check_probabilities(score, score_field, simplex=True)
            return score[:, 1].copy()
        return score[:, 1] - score[:, 0]  # log-odds of the positive class
    if score_type == "probability":
        check_probabilities(score, score_field, simplex=False)
    return score


def _binary_labels(
    y_true: ArrayLike, labels: list[Any] | None, pos_label: Any
) -> tuple[NDArray[np.bool_], NDArray[Any]]:
    if labels is not None and len(labels) != 2:
        raise InvalidInput(
            f"a binary task takes exactly 2 labels [negative, positive], got {len(labels)}",
            field="labels",
        )
    classes, idx = encode_labels(y_true, labels)
    if labels is not None:
        pos = labels[1] if pos_label is None else pos_label
        if pos not in labels:
            raise InvalidInput(
                f"pos_label={pos!r} is not one of labels {labels}", field="pos_label"
            )
        positive = classes[idx] == np.asarray(pos, dtype=classes.dtype)
        neg = labels[0] if labels[1] == pos else labels[1]
        return positive, np.asarray([neg, pos], dtype=object)
    present = classes.tolist()
    if len(present) > 2:
        raise InvalidInput(
            f"a binary task takes 2 classes, y_true has {len(present)}: {present[:10]}",
            field="y_true",
        )
    if pos_label is None:
        if not any(set(present) <= s for s in _IMPLICIT_BINARY) or classes.dtype.kind in "US":
            raise InvalidInput(
                f"labels {present} do not say which class is positive: send pos_label "
                "(or labels=[negative, positive])",
                field="pos_label",
            )
        pos_label = 1
    kind_ok = isinstance(pos_label, str) == (classes.dtype.kind in "US")
    if not kind_ok or (len(present) == 2 and pos_label not in present):
        raise InvalidInput(
            f"pos_label={pos_label!r} is not a valid label; y_true has {present}",
            field="pos_label",
        )
    positive = classes[idx] == pos_label
    others = [c for c in present if c != pos_label]
    # With one class present the negative label is unknown; 0 is sklearn's implicit one.
    neg = others[0] if others else (None if isinstance(pos_label, str) else 0)
    return positive, np.asarray([neg, pos_label], dtype=object)


def _multiclass_labels(
    y_true: ArrayLike, labels: list[Any] | None, n_columns: int
) -> tuple[NDArray[Any], NDArray[np.intp]]:
    if labels is None:
        y = np.asarray(y_true)
        if y.dtype.kind in "iu" or (
            y.dtype.kind == "O" and all(isinstance(v, int) for v in y.tolist()[:1])
        ):
            labels = list(range(n_columns))
    if labels is not None and len(labels) != n_columns:
        raise InvalidInput(
            f"{len(labels)} labels but y_score has {n_columns} columns", field="labels"
        )
    classes, idx = encode_labels(y_true, labels)
    if len(classes) != n_columns:
        raise InvalidInput(
            f"y_true has {len(classes)} distinct labels but y_score has {n_columns} columns: "
            "send labels in column order",
            field="labels",
        )
    if n_columns < 2:
        raise InvalidInput("a multiclass task needs at least 2 columns", field="y_score")
    return classes, idx


def _multilabel_labels(
    y_true: ArrayLike, labels: list[Any] | None, shape: tuple[int, ...]
) -> tuple[NDArray[np.bool_], NDArray[Any]]:
    y = as_float_array(y_true, "y_true", ndim=2)
    if y.shape[1] != shape[1]:
        raise InvalidInput(f"has {y.shape[1]} columns but y_score has {shape[1]}", field="y_true")
    bad = (y != 0) & (y != 1)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidInput(
            f"y_true[{i}][{j}] is {y[i, j]!r}: multilabel targets must be 0 or 1", field="y_true"
        )
    if labels is not None and len(labels) != shape[1]:
        raise InvalidInput(
            f"{len(labels)} labels but y_score has {shape[1]} columns", field="labels"
        )
    names = np.asarray(labels if labels is not None else list(range(shape[1])), dtype=object)
    return y.astype(bool), names
