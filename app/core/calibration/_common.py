"""Shared plumbing of the calibrators: input checks, score transforms and one-vs-rest.

Every calibrator validates its inputs here, once, and then trusts them. Binary inputs are one
positive-class score per row; multiclass inputs are ``(n_samples, n_classes)`` matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, softmax

from app.core._checks import (
    as_float_array,
    check_consistent_length,
    check_probabilities,
    check_sample_weight,
)
from app.errors import InvalidInput

Task = Literal["binary", "multiclass"]
ScoreType = Literal["probability", "logit"]
Float = NDArray[np.float64]

TASKS: Final[tuple[Task, ...]] = ("binary", "multiclass")
SCORE_TYPES: Final[tuple[ScoreType, ...]] = ("probability", "logit")

#: Version of the dict format written by ``to_dict``; ``from_dict`` refuses other versions.
FORMAT_VERSION: Final[int] = 1

#: Probabilities are clipped to ``[PROBABILITY_EPS, 1 - PROBABILITY_EPS]`` before a log or a
#: logit (float64 machine epsilon, as scikit-learn's ``log_loss``): a logit then lies within
#: about ±36.04.
PROBABILITY_EPS: Final[float] = float(np.finfo(np.float64).eps)

#: Logits beyond ±MAX_ABS_LOGIT are rejected: no model emits them, and every fit stays clear of
#: overflow in its float64 sums (squares of logits included).
MAX_ABS_LOGIT: Final[float] = 1e12


@dataclass(frozen=True, eq=False)
class FitInputs:
    """A validated calibration batch.

    Attributes
    ----------
    y : intp ndarray of shape (n_samples,)
        binary: 0/1; multiclass: class indices in ``[0, n_classes)``.
    scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        As posted (float32 stays float32).
    weight : float64 ndarray of shape (n_samples,) or None
    task, n_classes, score_type
    """

    y: NDArray[np.intp]
    scores: NDArray[np.floating[Any]]
    weight: Float | None
    task: Task
    n_classes: int
    score_type: ScoreType


def check_score_type(score_type: object) -> ScoreType:
    if score_type == "probability":
        return "probability"
    if score_type == "logit":
        return "logit"
    raise InvalidInput(
        f"is {score_type!r}; expected one of {list(SCORE_TYPES)}", field="score_type"
    )


def check_scores(
    scores: ArrayLike, score_type: ScoreType, field: str = "y_score"
) -> NDArray[np.floating[Any]]:
    """Finite scores of shape (n,) or (n, K >= 2); probabilities in [0, 1], rows summing to 1."""
    s = as_float_array(scores, field, ndim=(1, 2))
    if s.ndim == 2 and s.shape[1] < 2:
        raise InvalidInput(
            f"has shape {s.shape}: send one score per row (binary) or one column per class "
            "(at least 2)",
            field=field,
        )
    if score_type == "probability":
        check_probabilities(s, field, simplex=s.ndim == 2)
    elif s.max() > MAX_ABS_LOGIT or s.min() < -MAX_ABS_LOGIT:  # max/min: no temporaries
        idx = np.unravel_index(int(np.argmax(np.abs(s) > MAX_ABS_LOGIT)), s.shape)
        where = field + "".join(f"[{int(i)}]" for i in idx)
        raise InvalidInput(
            f"{where} is {float(s[idx])!r}: logits must lie within ±{MAX_ABS_LOGIT:g}",
            field=field,
        )
    return s


def check_labels(y_true: ArrayLike, task: Task, n_classes: int) -> NDArray[np.intp]:
    """0/1 (or bool) labels for a binary task, class indices in ``[0, n_classes)`` otherwise."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise InvalidInput(f"must be 1-D, got shape {y.shape}", field="y_true")
    if y.size == 0:
        raise InvalidInput("is empty: the batch needs at least one row", field="y_true")
    if y.dtype.kind == "b":
        return y.astype(np.intp)
    if y.dtype.kind not in "iuf":
        want = "0/1 or booleans" if task == "binary" else "integer class indices"
        raise InvalidInput(f"labels must be {want}, got dtype {y.dtype}", field="y_true")
    if task == "binary":
        bad = (y != 0) & (y != 1)
        rule = "binary labels must be 0 or 1 (or booleans)"
    else:
        bad = ~((y >= 0) & (y < n_classes))  # NaN is bad too
        if y.dtype.kind == "f":
            bad |= y != np.floor(y)
        rule = f"class indices must be integers in [0, {n_classes})"
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInput(f"y_true[{i}] is {y[i].item()!r}: {rule}", field="y_true")
    return y.astype(np.intp)


def check_fit_inputs(
    y_true: ArrayLike,
    scores: ArrayLike,
    score_type: object,
    sample_weight: ArrayLike | None,
) -> FitInputs:
    """Validate a calibration batch; the task follows the scores' shape.

    Raises
    ------
    InvalidInput
        Bad ``score_type``; NaN/inf; probabilities outside [0, 1] or rows not summing to 1;
        labels that are not 0/1 (binary) or not class indices (multiclass); a length mismatch;
        negative or all-zero weights; fewer than two classes with positive weight.
    """
    st = check_score_type(score_type)
    s = check_scores(scores, st)
    task: Task = "binary" if s.ndim == 1 else "multiclass"
    n_classes = 2 if task == "binary" else int(s.shape[1])
    y = check_labels(y_true, task, n_classes)
    check_consistent_length(y.shape[0], y_score=s)
    w = check_sample_weight(sample_weight, y.shape[0])
    present = np.bincount(y if w is None else y[w > 0], minlength=n_classes)
    if np.count_nonzero(present) < 2:
        raise InvalidInput(
            "holds a single class (among rows with positive weight): calibration needs "
            "at least two",
            field="y_true",
        )
    return FitInputs(y, s, w, task, n_classes, st)


def check_apply_scores(
    scores: ArrayLike, score_type: ScoreType, task: Task, n_classes: int
) -> NDArray[np.floating[Any]]:
    """Scores of the shape the calibrator was fitted on."""
    s = check_scores(scores, score_type)
    if task == "binary" and s.ndim != 1:
        raise InvalidInput(
            f"has shape {s.shape}, but this calibrator is binary: send one positive-class "
            "score per row",
            field="y_score",
        )
    if task == "multiclass" and (s.ndim != 2 or s.shape[1] != n_classes):
        raise InvalidInput(
            f"has shape {s.shape}, but this calibrator is multiclass with {n_classes} classes: "
            f"send an (n_samples, {n_classes}) matrix",
            field="y_score",
        )
    return s


def clip_probability(p: NDArray[np.floating[Any]]) -> Float:
    """``p`` in float64, clipped to ``[PROBABILITY_EPS, 1 - PROBABILITY_EPS]``."""
    return np.clip(np.asarray(p, dtype=np.float64), PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)


def logit(p: NDArray[np.floating[Any]]) -> Float:
    """``ln(p / (1 − p))`` of the clipped probability (finite, within about ±36.04)."""
    q = clip_probability(p)
    return np.log(q) - np.log1p(-q)


def probabilities(scores: NDArray[np.floating[Any]], score_type: ScoreType) -> Float:
    """float64 probabilities: as posted, or sigmoid (1-D) / softmax (2-D) of the logits."""
    s = np.asarray(scores, dtype=np.float64)
    if score_type == "probability":
        return s
    return expit(s) if s.ndim == 1 else softmax(s, axis=1)


def one_vs_rest_columns(scores: NDArray[np.floating[Any]], score_type: ScoreType) -> list[Float]:
    """The per-class probability columns a one-vs-rest calibrator works on.

    Multiclass logits become softmax probabilities first: a row's logits are defined up to an
    additive constant, their probabilities are not.
    """
    proba = probabilities(scores, score_type)
    return [np.ascontiguousarray(proba[:, k]) for k in range(proba.shape[1])]


def normalize_one_vs_rest(columns: list[Float]) -> Float:
    """Stack calibrated one-vs-rest columns and renormalize each row to sum to 1.

    As scikit-learn's ``CalibratedClassifierCV`` (``_CalibratedClassifier.predict_proba``): a
    row whose columns are all 0 becomes uniform ``1/K``, and values above 1 by at most 1e-5
    (rounding) are set to 1.
    """
    proba = np.column_stack(columns)
    total = proba.sum(axis=1, keepdims=True)
    out = np.full_like(proba, 1.0 / proba.shape[1])
    np.divide(proba, total, out=out, where=total != 0)
    out[(out > 1.0) & (out <= 1.0 + 1e-5)] = 1.0
    return out


# -- dict format ---------------------------------------------------------------------------------


def header(kind: str, task: Task, n_classes: int, score_type: ScoreType) -> dict[str, Any]:
    return {
        "kind": kind,
        "version": FORMAT_VERSION,
        "task": task,
        "n_classes": int(n_classes),
        "score_type": score_type,
    }


def read_header(d: Any, kind: str) -> tuple[Task, int, ScoreType]:
    """Check the common keys of a stored calibrator and return ``(task, n_classes, score_type)``."""
    if not isinstance(d, dict):
        raise InvalidInput(f"must be an object, got {type(d).__name__}", field="calibrator")
    if d.get("kind") != kind:
        raise InvalidInput(f"kind is {d.get('kind')!r}, expected {kind!r}", field="calibrator")
    if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise InvalidInput(
            f"format version {d.get('version')!r} is not supported (expected {FORMAT_VERSION})",
            field="calibrator",
        )
    task = d.get("task")
    if task not in TASKS:
        raise InvalidInput(f"task is {task!r}; expected one of {list(TASKS)}", field="calibrator")
    n_classes = d.get("n_classes")
    if (
        isinstance(n_classes, bool)
        or not isinstance(n_classes, int)
        or n_classes < 2
        or (task == "binary" and n_classes != 2)
    ):
        raise InvalidInput(f"n_classes is {n_classes!r}", field="calibrator")
    score_type = d.get("score_type")
    if score_type not in SCORE_TYPES:
        raise InvalidInput(
            f"score_type is {score_type!r}; expected one of {list(SCORE_TYPES)}",
            field="calibrator",
        )
    return task, n_classes, score_type


def read_float(d: dict[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise InvalidInput(f"{key} is {v!r}: must be a finite number", field="calibrator")
    return float(v)


def read_array(d: dict[str, Any], key: str) -> Float:
    v = d.get(key)
    if not isinstance(v, list) or not v:
        raise InvalidInput(f"{key} must be a non-empty list of numbers", field="calibrator")
    return as_float_array(v, "calibrator", ndim=1, dtype=np.float64).astype(np.float64)
