"""app.core.domains: the summary over held-out domains and time-split masks."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.domains import (
    GREATER_IS_BETTER,
    TASK_METRICS,
    aggregate_domains,
    random_split_gap,
    time_masks,
    weighted_mean,
)
from app.core.registry import REGISTRY
from app.errors import InvalidInput


def test_weighted_mean_weights_by_support_and_skips_undefined_domains() -> None:
    rng = np.random.default_rng(0)
    values, weights = rng.uniform(size=7), rng.integers(1, 100, size=7)
    assert weighted_mean(values.tolist(), weights.tolist()) == pytest.approx(
        np.average(values, weights=weights), rel=1e-15
    )
    with_none = [*values.tolist(), None]
    assert weighted_mean(with_none, [*weights.tolist(), 10_000]) == pytest.approx(
        np.average(values, weights=weights), rel=1e-15
    )
    assert weighted_mean([None, None], [1, 2]) is None


def test_the_worst_domain_is_the_lowest_score_or_the_highest_error() -> None:
    domains = [
        {"domain": "a", "n_val": 10, "metrics": {"roc_auc": 0.9, "log_loss": 0.7, "ece": 0.1}},
        {"domain": "b", "n_val": 30, "metrics": {"roc_auc": 0.6, "log_loss": 0.2, "ece": None}},
        {"domain": "c", "n_val": 20, "metrics": {"roc_auc": None, "log_loss": 0.4, "ece": 0.3}},
    ]
    out = aggregate_domains("binary", domains, metrics=["roc_auc", "log_loss", "ece"])
    assert out["worst_domain"] == {"domain": "b", "metric": "roc_auc", "value": 0.6}
    assert out["worst"]["log_loss"] == {"domain": "a", "value": 0.7}
    assert out["worst"]["ece"] == {"domain": "c", "value": 0.3}
    assert out["weighted_mean"]["roc_auc"] == pytest.approx((10 * 0.9 + 30 * 0.6) / 40)
    assert out["mean"]["log_loss"] == pytest.approx(np.mean([0.7, 0.2, 0.4]))
    assert out["undefined"] == {"roc_auc": ["c"], "ece": ["b"]}
    assert out["ece_by_domain"] == {"a": 0.1, "b": None, "c": 0.3}


def test_metric_directions_agree_with_the_engine_registry() -> None:
    engine_names = {"rmse": "root_mean_squared_error", "mae": "mean_absolute_error"}
    for names in TASK_METRICS.values():
        for name in names:
            spec = REGISTRY[engine_names.get(name, name)]
            assert spec.greater_is_better == GREATER_IS_BETTER[name], name


def test_the_random_split_gap_says_which_way_overestimates() -> None:
    gap, over = random_split_gap(
        {"accuracy": 0.9, "rmse": 1.0, "r2": None}, {"accuracy": 0.95, "rmse": 2.0, "r2": 0.5}
    )
    assert gap == {"accuracy": pytest.approx(-0.05), "rmse": -1.0, "r2": None}
    assert over == {"accuracy": False, "rmse": True, "r2": None}


def test_time_masks_compare_instants_across_offsets_and_dates() -> None:
    values = ["2024-01-01", "2024-01-01T00:30:00+01:00", "2023-12-31T23:59:59Z", "2024-06-01"]
    past, future = time_masks(values, "2024-01-01T00:00:00Z")
    # 00:30+01:00 is 23:30 UTC the day before: the past
    assert past.tolist() == [False, True, True, False]
    assert (past ^ future).all()
    assert time_masks(np.array([1.0, 2.0, 3.0]), 2)[1].tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("values", "cutoff", "words"),
    [
        ([1.0, 2.0], "2024-01-01", "must be a number"),
        (["2024-01-01"], 5.0, "ISO-8601 string"),
        (["yesterday"], "2024-01-01", "not an ISO-8601"),
        ([1.0, np.nan], 1.0, "NaN"),
    ],
)
def test_time_masks_refuse_mismatched_cutoffs_and_bad_times(
    values: list[object], cutoff: float | str, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words):
        time_masks(np.asarray(values), cutoff)
