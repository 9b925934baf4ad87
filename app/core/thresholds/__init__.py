"""Decision-threshold recommendations: the threshold that optimizes an objective on labelled data.

From one :class:`~app.core.curves.BinaryRanking` (one sort of the scores) the objective is
evaluated at every candidate threshold at once and the best is picked in O(m), m the number of
distinct scores. Objectives (:class:`ThresholdObjective`, names in :data:`OBJECTIVES`): F1,
F-beta, Youden's J, accuracy, MCC, expected cost, and "maximize X subject to Y" (precision at a
minimum recall, recall at a minimum precision, TPR at a maximum FPR, recall at a maximum
predicted-positive rate).

- :func:`recommend_from_ranking`: from a ranking already built (e.g. the request's cached one).
- :func:`recommend_threshold`: from arrays (validated here).
- :func:`recommend_by_group`: one threshold per group of rows.
- :func:`recommend_per_class`: one per class (multiclass one-vs-rest) or label (multilabel).

A recommended threshold is a score of the batch: predicting positive iff ``score >= threshold``
reproduces the reported counts. "Predict none" is a candidate too, reported with ``threshold =
inf`` and ``predict_none=True`` (``to_dict()`` turns it into ``threshold: null``). Candidates,
tie-breaks and infeasible constraints are documented on :func:`recommend_from_ranking`.
"""

from app.core.thresholds._objectives import (
    OBJECTIVE_PARAMETERS,
    OBJECTIVES,
    ObjectiveName,
    ThresholdObjective,
)
from app.core.thresholds._search import (
    CONSTRAINT_SLACK,
    TIE_TOLERANCE,
    OperatingPoint,
    ThresholdRecommendation,
    recommend_from_ranking,
)
from app.core.thresholds._slices import (
    recommend_by_group,
    recommend_per_class,
    recommend_threshold,
)

__all__ = [
    "CONSTRAINT_SLACK",
    "OBJECTIVES",
    "OBJECTIVE_PARAMETERS",
    "TIE_TOLERANCE",
    "ObjectiveName",
    "OperatingPoint",
    "ThresholdObjective",
    "ThresholdRecommendation",
    "recommend_by_group",
    "recommend_from_ranking",
    "recommend_per_class",
    "recommend_threshold",
]
