"""Isotonic calibration: the weighted least-squares non-decreasing fit of the labels.

Equal to scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` (same breakpoints
``X_thresholds_`` / ``y_thresholds_``, same interpolation), and to its multiclass one-vs-rest use
in ``CalibratedClassifierCV(method="isotonic")``. The pool-adjacent-violators step is SciPy's, as
in scikit-learn; the grouping of tied scores is a sort plus ``np.add.reduceat`` instead of a
lexicographic sort and a Python-level loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import isotonic_regression

from app.core.calibration._common import Float, ScoreType, check_fit_inputs, read_array
from app.core.calibration._ovr import OneVsRest
from app.errors import InvalidInput

#: Scores closer than this to the first score of a group of ties join it: scikit-learn's
#: ``_make_unique`` tolerance (float64 ``resolution``), reproduced for identical breakpoints.
TIE_RESOLUTION: Final[float] = float(np.finfo(np.float64).resolution)


@dataclass(frozen=True, eq=False)
class IsotonicMap:
    """A non-decreasing piecewise-linear map through ``(x_thresholds, y_thresholds)``.

    Scores outside ``[x_thresholds[0], x_thresholds[-1]]`` take the end values
    (``out_of_bounds="clip"``); a single breakpoint is a constant map.
    """

    x_thresholds: Float
    y_thresholds: Float

    def __call__(self, x: Float) -> Float:
        return np.interp(x, self.x_thresholds, self.y_thresholds)

    @classmethod
    def fit(cls, x: Float, y: NDArray[np.bool_], weight: Float | None) -> IsotonicMap:
        """Fit on scores ``x``, outcomes ``y`` and weights (rows of weight 0 are ignored).

        The solution minimizes ``Σ_g W_g (ȳ_g − f_g)²`` over non-decreasing ``f`` on the
        distinct scores ``g`` (``W_g``: total weight, ``ȳ_g``: weighted mean outcome), then keeps
        only the first and last point of each run of equal ``f`` (interpolation is unchanged).
        """
        if weight is not None:
            keep = weight > 0
            if not keep.all():
                x, y, weight = x[keep], y[keep], weight[keep]
        order = np.argsort(x)
        xs = x[order]
        starts = _group_starts(xs)
        hits = y[order]
        if weight is None:
            total = np.diff(np.append(starts, xs.size)).astype(np.float64)
            positive = np.add.reduceat(hits.astype(np.float64), starts)
        else:
            ws = weight[order]
            total = np.add.reduceat(ws, starts)
            positive = np.add.reduceat(np.where(hits, ws, 0.0), starts)
        ux = xs[starts]
        fitted = np.asarray(isotonic_regression(positive / total, weights=total).x)
        keep = np.ones(fitted.size, dtype=bool)
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return cls(ux[keep], fitted[keep])

    def to_dict(self) -> dict[str, Any]:
        return {
            "x_thresholds": self.x_thresholds.tolist(),
            "y_thresholds": self.y_thresholds.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IsotonicMap:
        x, y = read_array(d, "x_thresholds"), read_array(d, "y_thresholds")
        if x.shape != y.shape or (np.diff(x) <= 0).any() or (np.diff(y) < 0).any():
            raise InvalidInput(
                "x_thresholds must increase, y_thresholds must not decrease, with equal lengths",
                field="calibrator",
            )
        return cls(x, y)


def _group_starts(xs: Float) -> NDArray[np.intp]:
    """Start index of each group of tied values in the sorted ``xs``.

    A value starts a new group when it exceeds the group's first value by at least
    ``TIE_RESOLUTION`` (scikit-learn's rule), so distinct values closer than that are tied.
    """
    new = np.empty(xs.size, dtype=bool)
    new[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    if starts.size > 1:
        ux = xs[starts]
        near = np.flatnonzero(np.diff(ux) < TIE_RESOLUTION)
        if near.size:
            starts = starts[_merge_near(ux.tolist(), near.tolist())]
    return starts


def _merge_near(ux: list[float], near: list[int]) -> NDArray[np.bool_]:
    """Which distinct values still start a group, given the gaps ``ux[i + 1] − ux[i]`` below
    ``TIE_RESOLUTION``. Sequential (the rule depends on the group's first value), but only over
    those rare gaps."""
    keep = np.ones(len(ux), dtype=bool)
    first = 0.0
    last = -2
    for i in near:
        if i != last + 1:
            first = ux[i]  # preceded by a wide gap: starts its group
        if ux[i + 1] - first >= TIE_RESOLUTION:
            first = ux[i + 1]
        else:
            keep[i + 1] = False
        last = i
    return keep


@dataclass(frozen=True, eq=False)
class IsotonicCalibration(OneVsRest):
    """Isotonic calibration, binary or one-vs-rest multiclass.

    Binary: a non-decreasing piecewise-linear map of the score as posted (probability or
    logit). Multiclass: one map per class on the probability column ``p_k`` (softmax of logits),
    then each row is divided by its sum (uniform ``1/K`` where every map gives 0).

    Attributes
    ----------
    task, n_classes, score_type
        As in every calibrator.
    columns : tuple of IsotonicMap
        ``x_thresholds`` / ``y_thresholds`` of each map equal scikit-learn's attributes of the
        same names.

    Examples
    --------
    >>> cal = IsotonicCalibration.fit([0, 1, 0, 1], [0.1, 0.3, 0.6, 0.9],
    ...                               score_type="probability")
    >>> cal.columns[0].x_thresholds, cal.columns[0].y_thresholds
    (array([0.1, 0.3, 0.6, 0.9]), array([0. , 0.5, 0.5, 1. ]))
    >>> cal.apply([0.0, 0.2, 0.95])
    array([0.  , 0.25, 1.  ])
    """

    kind: ClassVar[str] = "isotonic"
    _map: ClassVar[type[Any]] = IsotonicMap
    _binary_probabilities: ClassVar[bool] = False

    @classmethod
    def fit(
        cls,
        y_true: ArrayLike,
        scores: ArrayLike,
        *,
        score_type: ScoreType,
        sample_weight: ArrayLike | None = None,
    ) -> IsotonicCalibration:
        """Fit on a validation batch.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            binary: 0/1 or bool; multiclass: class indices.
        scores : array-like of shape (n_samples,) or (n_samples, n_classes)
        score_type : {"probability", "logit"}
        sample_weight : array-like of shape (n_samples,), optional
            Rows of weight 0 are dropped, as in scikit-learn.

        Raises
        ------
        InvalidInput
            Invalid inputs (see ``check_fit_inputs``); a single class (field ``y_true``); fewer
            than two distinct scores among rows of positive weight — in every column for
            multiclass (field ``y_score``).
        """
        data = check_fit_inputs(y_true, scores, score_type, sample_weight)
        maps = tuple(
            IsotonicMap.fit(x, t, data.weight)
            for x, t in zip(
                cls._inputs(data.scores, data.score_type), cls._targets(data), strict=True
            )
        )
        if all(m.x_thresholds.size < 2 for m in maps):
            raise InvalidInput(
                "has fewer than two distinct scores (among rows with positive weight): "
                "isotonic calibration would be a constant",
                field="y_score",
            )
        return cls(data.task, data.n_classes, data.score_type, maps)
