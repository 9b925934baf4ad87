"""Histogram binning (Zadrozny & Elkan 2001): each probability bin maps to its positive rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core.calibration._common import Float, ScoreType, check_fit_inputs, read_array
from app.core.calibration._ovr import OneVsRest
from app.errors import InvalidInput

Strategy = Literal["uniform", "quantile"]
STRATEGIES: Final[tuple[Strategy, ...]] = ("uniform", "quantile")


@dataclass(frozen=True, eq=False)
class HistogramMap:
    """Bin ``b`` holds probabilities in ``(edges[b], edges[b + 1]]`` (the first also holds
    ``edges[0]``), as ``sklearn.calibration.calibration_curve``, and maps them to ``values[b]``.
    """

    edges: Float
    values: Float

    def __call__(self, p: Float) -> Float:
        return self.values[np.searchsorted(self.edges[1:-1], p)]

    @classmethod
    def fit(
        cls,
        p: Float,
        y: NDArray[np.bool_],
        weight: Float | None,
        n_bins: int,
        strategy: Strategy,
    ) -> HistogramMap:
        """``values[b] = Σ_{i∈b} w_i y_i / Σ_{i∈b} w_i``; a bin without weight maps to its
        midpoint. Quantile edges are the (unweighted) quantiles of the rows of positive weight,
        with the outer edges set to 0 and 1; tied quantiles leave empty bins that no score
        reaches."""
        if strategy == "uniform":
            edges = np.linspace(0.0, 1.0, n_bins + 1)
        else:
            sample = p if weight is None else p[weight > 0]
            edges = np.quantile(sample, np.linspace(0.0, 1.0, n_bins + 1))
            edges[0], edges[-1] = 0.0, 1.0
        ids = np.searchsorted(edges[1:-1], p)
        w = np.ones_like(p) if weight is None else weight
        total = np.bincount(ids, weights=w, minlength=n_bins)
        positive = np.bincount(ids, weights=np.where(y, w, 0.0), minlength=n_bins)
        midpoint = (edges[:-1] + edges[1:]) / 2
        values = np.divide(positive, total, out=midpoint, where=total > 0)
        return cls(edges, values)

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HistogramMap:
        edges, values = read_array(d, "edges"), read_array(d, "values")
        if (
            edges.size != values.size + 1
            or (np.diff(edges) < 0).any()
            or ((values < 0) | (values > 1)).any()
        ):
            raise InvalidInput(
                "edges must not decrease and number one more than values, which lie in [0, 1]",
                field="calibrator",
            )
        return cls(edges, values)


@dataclass(frozen=True, eq=False)
class HistogramBinning(OneVsRest):
    """Histogram binning, binary or one-vs-rest multiclass, on probabilities.

    Scores become probabilities first (sigmoid / softmax of logits); each bin of the
    positive-class (or class-``k``) probability maps to the weighted rate of the outcome in it.
    Multiclass rows are renormalized as in :class:`IsotonicCalibration`.

    Examples
    --------
    >>> cal = HistogramBinning.fit([0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.9],
    ...                            score_type="probability", n_bins=2)
    >>> cal.columns[0].values
    array([0.333, 1.   ])
    >>> cal.apply([0.5, 0.51])
    array([0.333, 1.   ])
    """

    kind: ClassVar[str] = "histogram"
    _map: ClassVar[type[Any]] = HistogramMap
    _binary_probabilities: ClassVar[bool] = True

    @classmethod
    def fit(
        cls,
        y_true: ArrayLike,
        scores: ArrayLike,
        *,
        score_type: ScoreType,
        sample_weight: ArrayLike | None = None,
        n_bins: int = 10,
        strategy: Strategy = "uniform",
    ) -> HistogramBinning:
        """Fit on a validation batch.

        Parameters
        ----------
        y_true, scores, score_type, sample_weight
            As :meth:`IsotonicCalibration.fit`.
        n_bins : int >= 1, default 10
        strategy : {"uniform", "quantile"}, default "uniform"
            Equal-width bins on [0, 1], or equal-mass bins (quantiles of the scores).

        Raises
        ------
        InvalidInput
            Invalid inputs (see ``check_fit_inputs``); a single class (field ``y_true``); a bad
            ``n_bins`` or ``strategy``.
        """
        if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
            raise InvalidInput(f"is {n_bins!r}; must be an integer >= 1", field="n_bins")
        if strategy not in STRATEGIES:
            raise InvalidInput(
                f"is {strategy!r}; expected one of {list(STRATEGIES)}", field="strategy"
            )
        data = check_fit_inputs(y_true, scores, score_type, sample_weight)
        maps = tuple(
            HistogramMap.fit(p, t, data.weight, int(n_bins), strategy)
            for p, t in zip(
                cls._inputs(data.scores, data.score_type), cls._targets(data), strict=True
            )
        )
        return cls(data.task, data.n_classes, data.score_type, maps)
