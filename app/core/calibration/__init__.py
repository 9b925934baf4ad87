"""Probability calibration: fit a map from a model's scores to calibrated probabilities on
held-out validation data, store it as JSON, apply it later.

Methods (``METHODS``): temperature scaling (binary and multiclass), isotonic regression and
histogram binning (binary, and multiclass one-vs-rest with renormalization), Platt scaling and
beta calibration (binary). Every calibrator is a frozen dataclass with a ``fit`` classmethod,
``apply(scores) -> probabilities``, ``to_dict()`` and ``from_dict()``; the dict holds ``kind``,
``version``, ``task``, ``n_classes``, ``score_type`` and the method's parameters.

Inputs: ``y_true`` is 0/1 (or bool) for binary scores of shape (n,), class indices for
multiclass scores of shape (n, K); ``score_type`` says whether the scores are probabilities or
logits, and :meth:`apply` expects the same kind. Fit on data the model was not trained on, and
judge the calibrated probabilities on yet other data.
"""

from __future__ import annotations

from typing import Any, Final

from numpy.typing import ArrayLike

from app.core.calibration._common import (
    FORMAT_VERSION,
    MAX_ABS_LOGIT,
    PROBABILITY_EPS,
    SCORE_TYPES,
    ScoreType,
    Task,
)
from app.core.calibration.beta import BetaCalibration
from app.core.calibration.binning import HistogramBinning, HistogramMap
from app.core.calibration.isotonic import IsotonicCalibration, IsotonicMap
from app.core.calibration.platt import PlattScaling
from app.core.calibration.temperature import T_MAX, T_MIN, TemperatureScaling
from app.errors import InvalidInput

__all__ = [
    "CALIBRATORS",
    "FORMAT_VERSION",
    "MAX_ABS_LOGIT",
    "METHODS",
    "PROBABILITY_EPS",
    "SCORE_TYPES",
    "T_MAX",
    "T_MIN",
    "BetaCalibration",
    "Calibrator",
    "HistogramBinning",
    "HistogramMap",
    "IsotonicCalibration",
    "IsotonicMap",
    "PlattScaling",
    "ScoreType",
    "Task",
    "TemperatureScaling",
    "calibrator_from_dict",
    "fit_calibrator",
]

Calibrator = (
    TemperatureScaling | IsotonicCalibration | PlattScaling | BetaCalibration | HistogramBinning
)

#: Method name -> calibrator class.
CALIBRATORS: Final[dict[str, Any]] = {
    "temperature": TemperatureScaling,
    "isotonic": IsotonicCalibration,
    "platt": PlattScaling,
    "beta": BetaCalibration,
    "histogram": HistogramBinning,
}
METHODS: Final[tuple[str, ...]] = tuple(CALIBRATORS)

#: Keyword parameters each method's ``fit`` takes besides the data.
_PARAMS: Final[dict[str, tuple[str, ...]]] = {
    "temperature": ("device",),
    "isotonic": (),
    "platt": ("smooth_targets",),
    "beta": (),
    "histogram": ("n_bins", "strategy"),
}


def _method_class(method: object, field: str) -> Any:
    if not isinstance(method, str) or method not in CALIBRATORS:
        raise InvalidInput(f"is {method!r}; expected one of {list(METHODS)}", field=field)
    return CALIBRATORS[method]


def fit_calibrator(
    method: str,
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    score_type: ScoreType,
    sample_weight: ArrayLike | None = None,
    **params: Any,
) -> Calibrator:
    """Fit the calibrator named ``method`` on a validation batch.

    Parameters
    ----------
    method : {"temperature", "isotonic", "platt", "beta", "histogram"}
    y_true : array-like of shape (n_samples,)
        0/1 or bool for binary scores; class indices in ``[0, K)`` for multiclass scores.
    scores : array-like of shape (n_samples,) or (n_samples, K)
    score_type : {"probability", "logit"}
    sample_weight : array-like of shape (n_samples,), optional
    **params
        temperature: ``device``; platt: ``smooth_targets``; histogram: ``n_bins``,
        ``strategy``. The others take none.

    Raises
    ------
    InvalidInput
        An unknown method (field ``method``) or parameter (field: its name), and every error
        of the method's ``fit``.

    Examples
    --------
    >>> cal = fit_calibrator("isotonic", [0, 0, 1, 1], [0.2, 0.4, 0.3, 0.9],
    ...                      score_type="probability")
    >>> cal.apply([0.35])
    array([0.5])
    >>> calibrator_from_dict(cal.to_dict()).apply([0.35])
    array([0.5])
    """
    cls = _method_class(method, "method")
    for name in params:
        if name not in _PARAMS[method]:
            allowed = ", ".join(_PARAMS[method]) or "none"
            raise InvalidInput(
                f"is not a parameter of {method!r} calibration (allowed: {allowed})", field=name
            )
    result: Calibrator = cls.fit(
        y_true, scores, score_type=score_type, sample_weight=sample_weight, **params
    )
    return result


def calibrator_from_dict(d: dict[str, Any]) -> Calibrator:
    """Rebuild a stored calibrator, dispatching on ``d["kind"]``.

    Raises
    ------
    InvalidInput
        An unknown kind or a malformed dict (field ``calibrator``).
    """
    if not isinstance(d, dict):
        raise InvalidInput(f"must be an object, got {type(d).__name__}", field="calibrator")
    result: Calibrator = _method_class(d.get("kind"), "calibrator").from_dict(d)
    return result
