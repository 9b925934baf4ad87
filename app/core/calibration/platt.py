"""Platt scaling (sigmoid calibration): a logistic regression on the logit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from app.core.calibration._common import (
    FitInputs,
    Float,
    ScoreType,
    Task,
    check_apply_scores,
    check_fit_inputs,
    header,
    logit,
    read_float,
    read_header,
)
from app.core.calibration._logistic import fit_logistic
from app.errors import InvalidInput


@dataclass(frozen=True)
class PlattScaling:
    """Platt scaling, binary: ``p = σ(a·z + b)`` on the logit ``z`` of the score.

    ``z`` is the posted logit, or ``logit(p)`` of a posted probability clipped to
    ``[eps, 1 − eps]``. ``(a, b)`` maximize the weighted likelihood

    .. math:: \\sum_i w_i \\bigl[t_i \\log σ(a z_i + b) + (1 − t_i) \\log σ(−a z_i − b)\\bigr]

    with ``t_i = y_i`` (the default: the plain MLE, equal to scikit-learn's
    ``LogisticRegression(C=np.inf)`` on the feature ``z``), or Platt's smoothed targets
    ``t⁺ = (N⁺ + 1)/(N⁺ + 2)``, ``t⁻ = 1/(N⁻ + 2)`` (``N^±``: total weight of each class)
    with ``smooth_targets=True``, as scikit-learn's ``_sigmoid_calibration``.

    Attributes
    ----------
    task : "binary"
    n_classes : 2
    score_type : {"probability", "logit"}
    a, b : float
        Slope and intercept; ``a < 0`` when the scores rank the classes backwards.
    smooth_targets : bool
        Whether the fit used Platt's targets (recorded; :meth:`apply` needs only ``a, b``).

    Notes
    -----
    scikit-learn's ``CalibratedClassifierCV(method="sigmoid")`` on ``predict_proba`` output
    regresses on ``p`` itself, not on ``logit(p)``, and always smooths the targets; its sign
    convention is ``σ(−(A f + B))``, i.e. ``A = −a``, ``B = −b``.

    Examples
    --------
    >>> cal = PlattScaling.fit([0, 1, 0, 1, 1], [-2.0, -1.0, 0.0, 1.0, 2.0], score_type="logit")
    >>> round(cal.a, 4), round(cal.b, 4)
    (1.0904, 0.6227)
    >>> cal.apply([0.0]).round(4)
    array([0.6508])
    """

    task: Task
    n_classes: int
    score_type: ScoreType
    a: float
    b: float
    smooth_targets: bool = False
    kind: ClassVar[str] = "platt"

    @classmethod
    def fit(
        cls,
        y_true: ArrayLike,
        scores: ArrayLike,
        *,
        score_type: ScoreType,
        sample_weight: ArrayLike | None = None,
        smooth_targets: bool = False,
    ) -> PlattScaling:
        """Fit ``(a, b)`` on a validation batch.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            0/1 or bool.
        scores : array-like of shape (n_samples,)
            Positive-class probability or logit.
        score_type : {"probability", "logit"}
        sample_weight : array-like of shape (n_samples,), optional
        smooth_targets : bool, default False
            Platt's smoothed targets instead of the labels.

        Raises
        ------
        InvalidInput
            Invalid inputs (see ``check_fit_inputs``); multiclass scores, fewer than two
            distinct logits, or — without ``smooth_targets`` — logits that separate the classes,
            where the MLE does not exist (field ``y_score``); a single class (field ``y_true``).
        """
        if not isinstance(smooth_targets, bool | np.bool_):
            raise InvalidInput(f"is {smooth_targets!r}; must be a boolean", field="smooth_targets")
        data = check_fit_inputs(y_true, scores, score_type, sample_weight)
        z = binary_feature(data, "Platt scaling")
        check_distinct(z, data.weight, 2, "Platt scaling")
        if smooth_targets:
            target = platt_targets(data.y, data.weight)
        else:
            if any(separation(z, data)):
                raise separated_error("Platt scaling", "pass smooth_targets=true")
            target = data.y.astype(np.float64)
        fit = fit_logistic(z[:, None], target, data.weight)
        return cls("binary", 2, data.score_type, float(fit.coef[0]), fit.intercept, smooth_targets)

    def apply(self, scores: ArrayLike) -> Float:
        """Calibrated positive-class probabilities, shape (n,)."""
        s = check_apply_scores(scores, self.score_type, self.task, self.n_classes)
        z = logit(s) if self.score_type == "probability" else s.astype(np.float64)
        return expit(self.a * z + self.b)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the common keys plus ``a``, ``b`` and ``smooth_targets``."""
        d = header(self.kind, self.task, self.n_classes, self.score_type)
        d.update(a=float(self.a), b=float(self.b), smooth_targets=bool(self.smooth_targets))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattScaling:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        InvalidInput
            A malformed dict (field ``calibrator``).
        """
        task, n_classes, score_type = read_header(d, cls.kind)
        if task != "binary":
            raise InvalidInput("a Platt calibrator is binary", field="calibrator")
        smooth = d.get("smooth_targets", False)
        if not isinstance(smooth, bool):
            raise InvalidInput(f"smooth_targets is {smooth!r}", field="calibrator")
        return cls(task, n_classes, score_type, read_float(d, "a"), read_float(d, "b"), smooth)


# -- helpers shared with beta calibration -------------------------------------------------------


def binary_feature(data: FitInputs, method: str) -> Float:
    """The logit of each binary score; refuses multiclass scores."""
    if data.task != "binary":
        raise InvalidInput(
            f"has shape {data.scores.shape}: {method} is binary (one positive-class score per "
            "row); calibrate multiclass scores with 'temperature', 'isotonic' or 'histogram'",
            field="y_score",
        )
    s = data.scores
    return logit(s) if data.score_type == "probability" else s.astype(np.float64)


def check_distinct(feature: Float, weight: Float | None, need: int, method: str) -> None:
    """At least ``need`` distinct feature values among rows of positive weight."""
    values = feature if weight is None else feature[weight > 0]
    if np.unique(values).size < need:
        raise InvalidInput(
            f"has fewer than {need} distinct scores (after clipping probabilities to "
            f"[eps, 1 - eps], among rows with positive weight): {method} is not identifiable",
            field="y_score",
        )


def separation(feature: Float, data: FitInputs) -> tuple[bool, bool]:
    """``(forwards, backwards)``: every positive scores at least as high as every negative
    (forwards), or at most as high (backwards), among rows of positive weight."""
    keep = slice(None) if data.weight is None else data.weight > 0
    x, y = feature[keep], data.y[keep]
    pos, neg = x[y == 1], x[y == 0]
    return bool(pos.min() >= neg.max()), bool(pos.max() <= neg.min())


def separated_error(method: str, hint: str) -> InvalidInput:
    return InvalidInput(
        f"separates the classes perfectly, so the maximum-likelihood {method} fit does not "
        f"exist (its slope diverges); {hint}, or use isotonic calibration",
        field="y_score",
    )


def platt_targets(y: NDArray[np.intp], weight: Float | None) -> Float:
    """Platt's targets ``(N⁺ + 1)/(N⁺ + 2)`` for positives, ``1/(N⁻ + 2)`` for negatives."""
    w = np.ones(y.shape[0]) if weight is None else weight
    n_pos = float(w[y == 1].sum())
    n_neg = float(w[y == 0].sum())
    return np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
