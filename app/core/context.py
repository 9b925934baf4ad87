"""Per-request evaluation state: every intermediate result computed at most once.

The binary ranking (one sort of the score column), the confusion matrix at the decision
threshold, the one-vs-rest rankings of multiclass and multilabel columns and the calibration bins
are cached here, so every metric, curve and operating point of a request reuses them.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from app.core import classification as clf
from app.core import probabilistic as prob
from app.core import ranking
from app.core.batch import Batch
from app.core.ranking import BinaryRanking

Binning = Literal["uniform", "quantile"]


class EvalContext:
    """Lazily computed intermediates of one batch.

    Parameters
    ----------
    batch : Batch
    threshold : float, optional
        Decision threshold on the posted score for binary and multilabel predictions
        (predicted positive iff ``score >= threshold``). Default 0.5 for probabilities, 0 for
        logits.
    n_bins, binning
        Calibration bins for ECE/MCE and the reliability diagram.
    """

    def __init__(
        self,
        batch: Batch,
        *,
        threshold: float | None = None,
        n_bins: int = 15,
        binning: Binning = "uniform",
    ) -> None:
        self.batch = batch
        default = 0.0 if batch.score_type == "logit" else 0.5
        self.threshold = default if threshold is None else float(threshold)
        self.n_bins = n_bins
        self.binning: Binning = binning

    @property
    def weight(self) -> NDArray[np.float64] | None:
        return self.batch.sample_weight

    # -- rankings: one sort per binary (or one-vs-rest) column -------------------------------
    @cached_property
    def ranking(self) -> BinaryRanking:
        """The binary column sorted once."""
        return ranking.rank_binary(self.batch.y, self.batch.score, self.weight)

    @cached_property
    def column_rankings(self) -> list[BinaryRanking]:
        """One ranking per class (multiclass, on probabilities) or label (multilabel)."""
        b = self.batch
        if b.task == "multiclass":
            proba = b.proba
            return [
                ranking.rank_binary(b.y == k, proba[:, k], self.weight)
                for k in range(proba.shape[1])
            ]
        return [
            ranking.rank_binary(b.y[:, j], b.score[:, j], self.weight)
            for j in range(b.score.shape[1])
        ]

    # -- predictions and confusion counts -----------------------------------------------------
    @cached_property
    def y_pred(self) -> NDArray[Any]:
        """binary/multilabel: ``score >= threshold``; multiclass: the argmax class index."""
        b = self.batch
        if b.task == "multiclass":
            return np.argmax(b.score, axis=1)
        return b.score >= self.threshold

    @cached_property
    def confusion(self) -> NDArray[Any]:
        """(K, K) confusion matrix, rows true and columns predicted; (L, 2, 2) for multilabel.

        The binary matrix is read off the ranking at the threshold: no second pass over the
        data.
        """
        b = self.batch
        if b.task == "binary":
            tp, fp, tn, fn = ranking.counts_at_threshold(self.ranking, self.threshold)
            return clf.binary_confusion_from_counts(tp, fp, tn, fn)
        if b.task == "multiclass":
            return clf.confusion_matrix(b.y, self.y_pred, b.score.shape[1], self.weight)
        return clf.multilabel_confusion(b.y, self.y_pred, self.weight)

    # -- calibration ----------------------------------------------------------------------------
    @cached_property
    def calibration(self) -> prob.CalibrationError:
        """ECE, MCE and the reliability bins for the batch's probabilities."""
        b = self.batch
        if b.task == "binary":
            presorted = None
            if self.binning == "quantile":
                # Equal-mass edges come from the ranking's sort: no second sort of the column.
                ascending = self.ranking.scores[::-1].astype(np.float64)
                presorted = expit(ascending) if b.score_type == "logit" else ascending
            return prob.binary_calibration_error(
                b.y,
                b.proba,
                self.weight,
                n_bins=self.n_bins,
                strategy=self.binning,
                sorted_confidence=presorted,
            )
        if b.task == "multiclass":
            return prob.multiclass_calibration_error(
                b.y, b.proba, self.weight, n_bins=self.n_bins, strategy=self.binning
            )
        # Multilabel: every (row, label) cell is one binary prediction.
        w = None if self.weight is None else np.repeat(self.weight, b.y.shape[1])
        return prob.binary_calibration_error(
            b.y.ravel(), b.proba.ravel(), w, n_bins=self.n_bins, strategy=self.binning
        )
