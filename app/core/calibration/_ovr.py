"""One-vs-rest calibrators: one monotone or binned map per class column.

Binary scores get one map (the positive class). Multiclass scores get one map per class, fitted
on ``(p_k, y == k)``; the calibrated columns are renormalized to sum to 1, as scikit-learn's
``CalibratedClassifierCV`` does. Multiclass logits are turned into softmax probabilities first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from app.core.calibration._common import (
    FitInputs,
    Float,
    ScoreType,
    Task,
    check_apply_scores,
    header,
    normalize_one_vs_rest,
    one_vs_rest_columns,
    probabilities,
    read_header,
)
from app.errors import InvalidInput


class ColumnMap(Protocol):
    """A fitted map of one score column to probabilities."""

    def __call__(self, x: Float) -> Float: ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self: ...


@dataclass(frozen=True, eq=False)
class OneVsRest:
    """Common state and behaviour of the one-vs-rest calibrators.

    Attributes
    ----------
    task : {"binary", "multiclass"}
    n_classes : int
    score_type : {"probability", "logit"}
    columns : tuple of maps
        One map for binary (the positive class), ``n_classes`` for multiclass.
    """

    task: Task
    n_classes: int
    score_type: ScoreType
    columns: tuple[Any, ...]

    kind: ClassVar[str]
    _map: ClassVar[type[Any]]
    #: Binary scores enter the map as posted (False) or as probabilities (True).
    _binary_probabilities: ClassVar[bool]

    @classmethod
    def _inputs(cls, scores: NDArray[np.floating[Any]], score_type: ScoreType) -> list[Float]:
        if scores.ndim == 2:
            return one_vs_rest_columns(scores, score_type)
        if cls._binary_probabilities:
            return [probabilities(scores, score_type)]
        return [scores.astype(np.float64)]

    @classmethod
    def _targets(cls, data: FitInputs) -> list[NDArray[np.bool_]]:
        if data.task == "binary":
            return [data.y == 1]
        return [data.y == k for k in range(data.n_classes)]

    def apply(self, scores: ArrayLike) -> Float:
        """Calibrated probabilities: (n,) positive-class for binary, (n, K) rows for multiclass.

        Raises
        ------
        InvalidInput
            Scores of the wrong shape for this calibrator, NaN/inf, probabilities outside [0, 1].
        """
        s = check_apply_scores(scores, self.score_type, self.task, self.n_classes)
        out = [m(x) for m, x in zip(self.columns, self._inputs(s, self.score_type), strict=True)]
        return out[0] if self.task == "binary" else normalize_one_vs_rest(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the common keys plus ``"columns"``, one object per map."""
        d = header(self.kind, self.task, self.n_classes, self.score_type)
        d["columns"] = [m.to_dict() for m in self.columns]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        InvalidInput
            A malformed dict (field ``calibrator``).
        """
        task, n_classes, score_type = read_header(d, cls.kind)
        cols = d.get("columns")
        want = 1 if task == "binary" else n_classes
        if not isinstance(cols, list) or len(cols) != want:
            raise InvalidInput(f"columns must be a list of {want} objects", field="calibrator")
        maps = []
        for c in cols:
            if not isinstance(c, dict):
                raise InvalidInput("each column must be an object", field="calibrator")
            maps.append(cls._map.from_dict(c))
        return cls(task, n_classes, score_type, tuple(maps))
