"""Beta calibration (Kull, Silva Filho & Flach 2017): a logistic regression on ``ln p`` and
``−ln(1 − p)`` with non-negative slopes, so the map is monotone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, log_expit

from app.core.calibration._common import (
    FitInputs,
    Float,
    ScoreType,
    Task,
    check_apply_scores,
    check_fit_inputs,
    clip_probability,
    header,
    read_float,
    read_header,
)
from app.core.calibration._logistic import LogisticFit, NoMaximumLikelihood, fit_logistic
from app.core.calibration.platt import (
    binary_feature,
    check_distinct,
    separated_error,
    separation,
)
from app.errors import InvalidInput


@dataclass(frozen=True)
class BetaCalibration:
    """Beta calibration, binary: ``p' = σ(a·ln p − b·ln(1 − p) + c)`` with ``a, b ≥ 0``.

    The map is the likelihood ratio of two beta densities; it contains the identity
    (``a = b = 1, c = 0``) and, unlike Platt scaling on the logit (``a = b``), allows
    asymmetric corrections. Probabilities are clipped to ``[eps, 1 − eps]``; logits enter
    exactly, as ``ln p = −log(1 + e^{−z})`` and ``−ln(1 − p) = log(1 + e^{z})``.

    Fit: the weighted maximum-likelihood ``(a, b, c)`` subject to ``a, b ≥ 0``. The
    unconstrained fit is a logistic regression on the features ``[ln p, −ln(1 − p)]`` (equal to
    ``LogisticRegression(C=np.inf)`` on them); when it has a negative slope, the constrained
    optimum lies on a face ``a = 0``, ``b = 0`` or ``a = b = 0``, each a smaller logistic
    regression, and the best feasible one is taken. (Kull et al.'s reference code refits
    without the feature of the first negative slope without comparing faces.)

    Attributes
    ----------
    task : "binary"
    n_classes : 2
    score_type : {"probability", "logit"}
    a, b, c : float

    Examples
    --------
    >>> p = [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    >>> cal = BetaCalibration.fit([0, 0, 1, 0, 1, 0, 1, 1], p, score_type="probability")
    >>> round(cal.a, 4), round(cal.b, 4), round(cal.c, 4)
    (1.5213, 0.8775, -0.212)
    >>> cal.apply([0.5]).round(4)
    array([0.3411])
    """

    task: Task
    n_classes: int
    score_type: ScoreType
    a: float
    b: float
    c: float
    kind: ClassVar[str] = "beta"

    @classmethod
    def fit(
        cls,
        y_true: ArrayLike,
        scores: ArrayLike,
        *,
        score_type: ScoreType,
        sample_weight: ArrayLike | None = None,
    ) -> BetaCalibration:
        """Fit ``(a, b, c)`` on a validation batch.

        Raises
        ------
        InvalidInput
            Invalid inputs (see ``check_fit_inputs``); multiclass scores, fewer than two
            distinct scores, or scores that separate the classes (positives all score at least
            as high as negatives: the slopes diverge) (field ``y_score``); a single class
            (field ``y_true``).
        """
        data = check_fit_inputs(y_true, scores, score_type, sample_weight)
        z = binary_feature(data, "beta calibration")
        check_distinct(z, data.weight, 2, "beta calibration")
        forwards, backwards = separation(z, data)
        if forwards:
            raise separated_error("beta calibration", "use Platt scaling with smooth_targets")
        a, b, c = _constrained_fit(z, data, backwards=backwards)
        return cls("binary", 2, data.score_type, a, b, c)

    def apply(self, scores: ArrayLike) -> Float:
        """Calibrated positive-class probabilities, shape (n,)."""
        s = check_apply_scores(scores, self.score_type, self.task, self.n_classes)
        x = _feature_matrix(s, self.score_type)
        return expit(self.a * x[:, 0] + self.b * x[:, 1] + self.c)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the common keys plus ``a``, ``b``, ``c``."""
        d = header(self.kind, self.task, self.n_classes, self.score_type)
        d.update(a=float(self.a), b=float(self.b), c=float(self.c))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BetaCalibration:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        InvalidInput
            A malformed dict (field ``calibrator``).
        """
        task, n_classes, score_type = read_header(d, cls.kind)
        if task != "binary":
            raise InvalidInput("a beta calibrator is binary", field="calibrator")
        a, b, c = (read_float(d, k) for k in ("a", "b", "c"))
        if a < 0 or b < 0:
            raise InvalidInput(f"a={a!r}, b={b!r}: slopes must be >= 0", field="calibrator")
        return cls(task, n_classes, score_type, a, b, c)


def _feature_matrix(s: Any, score_type: ScoreType) -> Float:
    """``[ln p, −ln(1 − p)]`` per row."""
    if score_type == "probability":
        p = clip_probability(s)
        return np.column_stack([np.log(p), -np.log1p(-p)])
    z = np.asarray(s, dtype=np.float64)
    return np.column_stack([log_expit(z), -log_expit(-z)])


def _constrained_fit(z: Float, data: FitInputs, *, backwards: bool) -> tuple[float, float, float]:
    """The MLE over ``a, b ≥ 0``: the best feasible optimum among the faces of the orthant.

    The NLL is convex, so its constrained minimizer is the unconstrained minimizer of the face
    it lies on; that point is feasible, and no feasible face optimum does better. With
    ``backwards`` (negatives all score at least as high as positives) the one-slope faces have
    no finite optimum, and their infimum lies along a negative slope: they are skipped.
    """
    x = _feature_matrix(data.scores, data.score_type)
    y = data.y.astype(np.float64)
    w = data.weight
    distinct = np.unique(z if w is None else z[w > 0]).size
    if distinct >= 3:  # with two distinct scores, the three parameters are not identifiable
        try:
            full = fit_logistic(x, y, w)
        except NoMaximumLikelihood:
            full = None
        if full is not None and (full.coef >= 0).all():
            return float(full.coef[0]), float(full.coef[1]), full.intercept
    candidates: list[tuple[float, float, float, float]] = []
    if not backwards:
        for j in (0, 1):
            try:
                face: LogisticFit = fit_logistic(x[:, [j]], y, w)
            except NoMaximumLikelihood:
                continue
            if face.coef[0] >= 0:
                slope = float(face.coef[0])
                ab = (slope, 0.0) if j == 0 else (0.0, slope)
                candidates.append((face.nll, *ab, face.intercept))
    rate = float(np.average(y, weights=w))
    c = float(np.log(rate) - np.log1p(-rate))
    candidates.append((float(_constant_nll(rate, y, w)), 0.0, 0.0, c))
    _, a, b, c = min(candidates, key=lambda t: t[0])
    return a, b, c


def _constant_nll(rate: float, y: Float, w: Float | None) -> float:
    return float(-np.average(y * np.log(rate) + (1 - y) * np.log1p(-rate), weights=w))
