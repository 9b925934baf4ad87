"""Log loss, Brier score and calibration error against scikit-learn and torchmetrics' formula."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve

from app.core import probabilistic as prob
from app.errors import InvalidInput, UndefinedMetricError

SEEDS = range(30)


def sk(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def multiclass(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels, probabilities with exact zeros and ones (to exercise the clipping), weights."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    n = int(rng.choice([1, 4, 30, 300]))
    proba = rng.dirichlet(np.full(k, 0.4), n)
    if seed % 3 == 0:
        proba[0] = np.eye(k)[0]  # a certain prediction, right or wrong
    y = rng.integers(0, k, n)
    w = None
    if seed % 2:
        w = rng.exponential(size=n) * (rng.random(n) > 0.2)
        w[0] = 1.0
    return y, proba, w


# -- log loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_log_loss_matches_sklearn_for_multiclass_probabilities(seed: int) -> None:
    y, proba, w = multiclass(seed)
    ref = sk(skm.log_loss, y, proba, sample_weight=w, labels=range(proba.shape[1]))
    assert prob.log_loss(y, proba, w) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_log_loss_matches_sklearn_for_a_positive_class_column(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 100))
    y = rng.integers(0, 2, n)
    p = rng.random(n)
    p[: n // 4] = rng.choice([0.0, 1.0], n // 4)  # certain predictions are clipped
    w = rng.exponential(size=n) if seed % 2 else None
    ref = sk(skm.log_loss, y, p, sample_weight=w, labels=[0, 1])
    assert prob.log_loss(y, p, w) == pytest.approx(ref, rel=1e-12)
    assert prob.log_loss(y.astype(bool), p, w) == pytest.approx(ref, rel=1e-12)


def test_log_loss_clips_with_the_machine_epsilon_of_the_input_dtype() -> None:
    y = np.array([1, 0])
    p64 = np.array([0.0, 0.0])
    assert prob.log_loss(y, p64) == pytest.approx(-np.log(np.finfo(np.float64).eps) / 2)
    p32 = np.array([[1.0, 0.0], [0.3, 0.7]], dtype=np.float32)
    ref = sk(skm.log_loss, y, p32, labels=[0, 1])
    assert prob.log_loss(y, p32) == pytest.approx(ref, rel=1e-6)
    assert prob.log_loss(y, p32) == pytest.approx(
        (-np.log(np.finfo(np.float32).eps) - np.log(np.float32(0.3))) / 2, rel=1e-6
    )


@pytest.mark.parametrize("seed", range(10))
def test_multilabel_log_loss_is_the_mean_of_per_label_sklearn_log_losses(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(1, 50)), int(rng.integers(1, 5))
    y = rng.integers(0, 2, (n, n_labels))
    p = rng.random((n, n_labels))
    p[0, 0] = 1.0 - y[0, 0]  # a certain miss
    w = rng.exponential(size=n) if seed % 2 else None
    ref = np.mean(
        [
            sk(skm.log_loss, y[:, j], p[:, j], sample_weight=w, labels=[0, 1])
            for j in range(n_labels)
        ]
    )
    assert prob.log_loss_multilabel(y, p, w) == pytest.approx(ref, rel=1e-12)


# -- Brier score --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale_by_half", ["auto", True, False])
def test_brier_score_matches_sklearn_including_its_scaling(
    seed: int, scale_by_half: bool | str
) -> None:
    y, proba, w = multiclass(seed)
    k = proba.shape[1]
    ref = sk(
        skm.brier_score_loss,
        y,
        proba,
        sample_weight=w,
        labels=range(k),
        scale_by_half=scale_by_half,
    )
    ours = prob.brier_score(y, proba, w, scale_by_half=scale_by_half)  # type: ignore[arg-type]
    assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)
    if k == 2:  # the positive-class column alone gives the same score
        ref = sk(skm.brier_score_loss, y, proba[:, 1], sample_weight=w, scale_by_half=scale_by_half)
        one_column = prob.brier_score(y, proba[:, 1], w, scale_by_half=scale_by_half)  # type: ignore[arg-type]
        assert one_column == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_binary_brier_score_is_the_mean_squared_error_of_the_probability() -> None:
    y, p = np.array([True, False, True]), np.array([0.9, 0.4, 0.2])
    assert prob.brier_score(y, p) == pytest.approx(np.mean((y - p) ** 2), rel=1e-15)


def test_multilabel_brier_score_is_the_mean_of_per_label_sklearn_scores() -> None:
    rng = np.random.default_rng(4)
    y, p, w = rng.integers(0, 2, (40, 3)), rng.random((40, 3)), rng.exponential(size=40)
    ref = np.mean([skm.brier_score_loss(y[:, j], p[:, j], sample_weight=w) for j in range(3)])
    assert prob.brier_score_multilabel(y, p, w) == pytest.approx(ref, rel=1e-12)


def test_task_dispatch_picks_the_right_loss_and_refuses_regression() -> None:
    y, p = np.array([[1, 0], [0, 1]]), np.array([[0.8, 0.3], [0.4, 0.6]])
    assert prob.log_loss_for_task("multilabel", y, p) == prob.log_loss_multilabel(y, p)
    assert prob.brier_for_task("binary", y[:, 0], p[:, 0]) == prob.brier_score(y[:, 0], p[:, 0])
    for fn in (prob.log_loss_for_task, prob.brier_for_task):
        with pytest.raises(InvalidInput):
            fn("regression", y, p)


# -- reliability bins -----------------------------------------------------------------------------


def binary(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 5, 40, 500]))
    p = rng.beta(0.7, 0.7, n)
    if seed % 3 == 0:
        p[: n // 2] = np.round(p[: n // 2], 1)  # values on the uniform edges, and ties
    y = (rng.random(n) < p**1.3).astype(np.int64)  # miscalibrated on purpose
    return y, p


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_reliability_bins_equal_sklearn_calibration_curve(
    seed: int, strategy: str, n_bins: int
) -> None:
    y, p = binary(seed)
    bins = prob.reliability_bins(y, p, n_bins=n_bins, strategy=strategy)  # type: ignore[arg-type]
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    full = ~bins.empty
    np.testing.assert_array_equal(bins.observed_frequency[full], prob_true)
    np.testing.assert_array_equal(bins.mean_confidence[full], prob_pred)
    assert np.isnan(bins.mean_confidence[bins.empty]).all()
    assert bins.count.dtype == np.int64 and bins.count.sum() == len(y)
    # ECE from sklearn's curve and the bin counts.
    counts = bins.count[full]
    ref = np.sum(counts / len(y) * np.abs(prob_true - prob_pred))
    assert prob.expected_calibration_error(bins) == pytest.approx(ref, rel=1e-12, abs=1e-15)
    assert prob.max_calibration_error(bins) == pytest.approx(np.max(np.abs(prob_true - prob_pred)))


def test_a_confidence_on_an_inner_edge_falls_in_the_lower_bin_as_in_sklearn() -> None:
    bins = prob.reliability_bins(np.array([1, 0, 1]), np.array([0.0, 0.5, 1.0]), n_bins=2)
    np.testing.assert_array_equal(bins.count, [2, 1])


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_weighted_ece_and_mce_match_a_direct_numpy_computation(seed: int, strategy: str) -> None:
    y, p = binary(seed)
    rng = np.random.default_rng(seed + 100)
    w = rng.exponential(size=len(y)) * (rng.random(len(y)) > 0.3)
    w[0] = 1.0
    result = prob.binary_calibration_error(y, p, w, n_bins=8, strategy=strategy)  # type: ignore[arg-type]
    edges = result.bins.edges
    gaps, masses = [], []
    for b in range(8):
        lo_ok = p > edges[b] if b > 0 else p >= edges[0] - 1.0
        in_bin = lo_ok & ((p <= edges[b + 1]) if b < 7 else (p <= 2.0))
        mass = w[in_bin].sum()
        if mass > 0:
            observed, confidence = np.sum(w[in_bin] * y[in_bin]), np.sum(w[in_bin] * p[in_bin])
            gaps.append(abs(observed - confidence) / mass)
            masses.append(mass)
    assert result.ece == pytest.approx(np.dot(masses, gaps) / w.sum(), rel=1e-12, abs=1e-15)
    assert result.mce == pytest.approx(max(gaps), rel=1e-12)
    np.testing.assert_allclose(result.bins.weight.sum(), w.sum())


def test_integer_weights_equal_repeated_rows_for_uniform_bins() -> None:
    y, p = binary(7)
    reps = np.random.default_rng(0).integers(0, 4, len(y))
    reps[0] = 1
    weighted = prob.binary_calibration_error(y, p, reps.astype(np.float64), n_bins=10)
    repeated = prob.binary_calibration_error(np.repeat(y, reps), np.repeat(p, reps), n_bins=10)
    assert weighted.ece == pytest.approx(repeated.ece, rel=1e-12)
    assert weighted.mce == pytest.approx(repeated.mce, rel=1e-12)


def test_a_bin_of_zero_weight_rows_is_empty_and_left_out() -> None:
    y, p = np.array([1, 0, 1]), np.array([0.1, 0.9, 0.95])
    bins = prob.reliability_bins(y, p, np.array([0.0, 1.0, 1.0]), n_bins=2)
    np.testing.assert_array_equal(bins.count, [1, 2])
    np.testing.assert_array_equal(bins.empty, [True, False])
    assert prob.expected_calibration_error(bins) == pytest.approx(abs(0.5 - 0.925))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.sampled_from([0.0, 0.1, 0.5, 1.0]), st.floats(0, 1)), min_size=1, max_size=40
    ),
    n_bins=st.integers(1, 20),
)
def test_quantile_edges_from_presorted_scores_are_identical_to_np_percentile(
    values: list[float], n_bins: int
) -> None:
    p = np.array(values)
    y = (np.arange(len(p)) % 2).astype(np.int64)
    direct = prob.reliability_bins(y, p, n_bins=n_bins, strategy="quantile")
    presorted = prob.reliability_bins(
        y, p, n_bins=n_bins, strategy="quantile", sorted_confidence=np.sort(p)
    )
    np.testing.assert_array_equal(presorted.edges, direct.edges)
    np.testing.assert_array_equal(presorted.count, direct.count)


# -- torchmetrics' formula (torchmetrics itself is not installed) ---------------------------------


def torchmetrics_ce(conf: np.ndarray, acc: np.ndarray, n_bins: int, norm: str) -> float:
    """torchmetrics ``_ce_compute`` with ``_binning_bucketize``, transcribed."""
    c, a = torch.as_tensor(conf, dtype=torch.float64), torch.as_tensor(acc, dtype=torch.float64)
    bounds = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    acc_bin, conf_bin, count_bin = (torch.zeros(n_bins + 1, dtype=torch.float64) for _ in "abc")
    idx = torch.bucketize(c, bounds, right=True) - 1
    count_bin.scatter_add_(0, idx, torch.ones_like(c))
    conf_bin.scatter_add_(0, idx, c)
    conf_bin = torch.nan_to_num(conf_bin / count_bin)
    acc_bin.scatter_add_(0, idx, a)
    acc_bin = torch.nan_to_num(acc_bin / count_bin)
    if norm == "l1":
        return float(torch.sum(torch.abs(acc_bin - conf_bin) * count_bin / count_bin.sum()))
    return float(torch.max(torch.abs(acc_bin - conf_bin)))


def away_from_edges(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Rows whose confidence is not on (or within 1e-9 of) a bin edge, nor 1.0."""
    edges = np.linspace(0, 1, n_bins + 1)
    return np.min(np.abs(conf[:, None] - edges[None, :]), axis=1) > 1e-9


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("n_bins", [5, 15])
def test_top_label_calibration_error_matches_torchmetrics_away_from_bin_edges(
    seed: int, n_bins: int
) -> None:
    y, proba, _ = multiclass(seed + 1)
    keep = away_from_edges(proba.max(axis=1), n_bins)
    y, proba = y[keep], proba[keep]
    if len(y) == 0:
        return
    ours = prob.multiclass_calibration_error(y, proba, n_bins=n_bins)
    conf, pred = torch.as_tensor(proba).max(dim=1)
    acc = pred.eq(torch.as_tensor(y)).numpy()
    assert ours.ece == pytest.approx(torchmetrics_ce(conf.numpy(), acc, n_bins, "l1"), abs=1e-12)
    assert ours.mce == pytest.approx(torchmetrics_ce(conf.numpy(), acc, n_bins, "max"), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_binary_calibration_error_matches_torchmetrics_away_from_bin_edges(seed: int) -> None:
    y, p = binary(seed)
    keep = away_from_edges(p, 10)
    y, p = y[keep], p[keep]
    if len(y) == 0:
        return
    ours = prob.binary_calibration_error(y, p, n_bins=10)
    assert ours.ece == pytest.approx(torchmetrics_ce(p, y, 10, "l1"), abs=1e-12)
    assert ours.mce == pytest.approx(torchmetrics_ce(p, y, 10, "max"), abs=1e-12)


def test_top_label_ties_go_to_the_lowest_class_index() -> None:
    proba = np.array([[0.4, 0.4, 0.2]])  # predicted class 0 at confidence 0.4
    right = prob.multiclass_calibration_error(np.array([0]), proba, n_bins=2)
    wrong = prob.multiclass_calibration_error(np.array([1]), proba, n_bins=2)
    assert (right.ece, wrong.ece) == pytest.approx((0.6, 0.4))


# -- undefined and invalid ------------------------------------------------------------------------


def test_calibration_error_over_only_empty_bins_is_undefined() -> None:
    bins = prob.reliability_bins(np.array([1]), np.array([0.3]), np.array([0.0]), n_bins=3)
    with pytest.raises(UndefinedMetricError, match="every bin is empty"):
        prob.expected_calibration_error(bins)
    with pytest.raises(UndefinedMetricError, match="every bin is empty"):
        prob.max_calibration_error(bins)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"n_bins": 0}, "n_bins"), ({"n_bins": 2.5}, "n_bins"), ({"strategy": "kmeans"}, "strategy")],
)
def test_bad_binning_parameters_are_invalid_input(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        prob.reliability_bins(np.array([1, 0]), np.array([0.2, 0.7]), **kwargs)
    assert err.value.field == field
