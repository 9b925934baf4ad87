"""Bootstrap intervals: fast paths against the generic fallback, the fallback against sklearn."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import bootstrap as bs
from app.core.batch import Batch, make_batch
from app.core.bootstrap import (
    bootstrap_intervals,
    bootstrap_replicates,
    resample_counts,
    vectorized_metrics,
)
from app.core.registry import REGISTRY, metric_key
from app.errors import InvalidInput


def sk(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def params_for(name: str) -> dict[str, Any]:
    return {"beta": 2.0} if name.startswith("fbeta") else {}


def all_metrics(task: str) -> list[tuple[str, dict[str, Any]]]:
    return [(n, params_for(n)) for n, s in REGISTRY.items() if task in s.tasks]


def binary_batch(seed: int, n: int = 200, *, weighted: bool = False, logit: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)  # rounding: many ties
    w = None
    if weighted:
        w = rng.exponential(size=n) * (rng.random(n) > 0.15)
        w[0] = 1.0
    if logit:
        logit = np.log(p + 0.01) - np.log(1.01 - p)
        return make_batch("binary", y, logit, score_type="logit", sample_weight=w)
    return make_batch("binary", y, p, sample_weight=w)


def multiclass_batch(seed: int, k: int, n: int = 200, *, weighted: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = np.round(rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y], 1)
    w = rng.exponential(size=n) if weighted else None
    return make_batch("multiclass", y, logits, score_type="logit", sample_weight=w)


def multilabel_batch(seed: int, n: int = 150, *, weighted: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, 3))
    p = np.round(np.clip(0.4 * y + 0.6 * rng.random((n, 3)), 0, 1), 2)
    w = rng.exponential(size=n) if weighted else None
    return make_batch("multilabel", y, p, sample_weight=w)


def regression_batch(seed: int, n: int = 200, *, outputs: int = 1, weighted: bool = False) -> Batch:
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, outputs)) * 3 + 50  # a large mean: the moments must not cancel
    p = t + rng.normal(size=(n, outputs))
    if outputs == 1:
        t, p = t[:, 0], p[:, 0]
    w = rng.exponential(size=n) * (rng.random(n) > 0.1) if weighted else None
    if w is not None:
        w[0] = 1.0
    return make_batch("regression", t, p, sample_weight=w)


BATCHES = {
    "binary": lambda: binary_batch(0),
    "binary-weighted": lambda: binary_batch(1, weighted=True),
    "binary-logit": lambda: binary_batch(2, logit=True),
    "multiclass-2": lambda: multiclass_batch(3, 2),
    "multiclass-4": lambda: multiclass_batch(4, 4),
    "multiclass-4-weighted": lambda: multiclass_batch(5, 4, weighted=True),
    "multilabel": lambda: multilabel_batch(6),
    "multilabel-weighted": lambda: multilabel_batch(7, weighted=True),
    "regression": lambda: regression_batch(8),
    "regression-2d-weighted": lambda: regression_batch(9, outputs=2, weighted=True),
}


def assert_fast_equals_generic(
    batch: Batch, metrics: list[tuple[str, dict[str, Any]]], **kw: Any
) -> None:
    fast = bootstrap_replicates(batch, metrics, n_resamples=25, seed=3, **kw)
    slow = bootstrap_replicates(batch, metrics, n_resamples=25, seed=3, vectorized=False, **kw)
    for key, rep in fast.items():
        assert not slow[key].vectorized
        np.testing.assert_allclose(
            rep.values, slow[key].values, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key
        )
        assert (rep.reason is None) == (slow[key].reason is None), key


@pytest.mark.parametrize("case", BATCHES)
def test_fast_paths_equal_the_generic_fallback_resample_by_resample(case: str) -> None:
    batch = BATCHES[case]()
    metrics = all_metrics(batch.task)
    assert_fast_equals_generic(batch, metrics)
    flags = bootstrap_replicates(batch, metrics, n_resamples=10)
    fast = vectorized_metrics(batch.task)
    for name, params in metrics:
        expected = name in fast and not (name == "top_k_accuracy" and batch.score.shape[1] < 3)
        assert flags[metric_key(name, params)].vectorized == expected, name


@pytest.mark.parametrize("case", ["binary", "multiclass-4", "multilabel-weighted"])
def test_calibration_fast_path_with_quantile_bins(case: str) -> None:
    batch = BATCHES[case]()
    assert_fast_equals_generic(batch, [("ece", {}), ("mce", {})], binning="quantile", n_bins=7)


@pytest.mark.parametrize(
    "batch",
    [
        make_batch("binary", [0, 1, 1], [0.2, 0.6, 0.9]),
        make_batch("binary", [0, 1, 1, 0], [0.5, 0.5, 0.9, 0.1], sample_weight=[1, 0, 2.5, 0]),
        make_batch("multiclass", [0, 1, 2, 2], np.eye(3)[[0, 2, 2, 1]] * 0.8 + 0.2 / 3),
        make_batch("regression", [1.0, 1.0, 2.0], [1.0, 1.5, 2.0]),
        make_batch("regression", [1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 2.0, 3.0]),
        make_batch("regression", [1.0, 1.0, 2.0], [1.0, 1.5, 2.0], sample_weight=[1, 2, 0]),
    ],
    ids=["binary-3", "binary-zero-weights", "multiclass-4", "regression-3", "perfect", "zero-w"],
)
def test_fast_paths_agree_on_tiny_batches_with_undefined_resamples(batch: Batch) -> None:
    """Resamples with one class, constant targets, perfect predictions, zero-weight rows."""
    assert_fast_equals_generic(batch, all_metrics(batch.task))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    seed=st.integers(0, 2**16),
    n_scores=st.integers(1, 6),
    weighted=st.booleans(),
)
def test_binary_fast_paths_agree_with_ties_and_zero_weights(
    n: int, seed: int, n_scores: int, weighted: bool
) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = rng.integers(0, n_scores, n) / max(n_scores - 1, 1)  # few distinct scores: ties
    w = None
    if weighted:
        w = rng.choice([0.0, 0.5, 1.0, 3.0], n)
        w[0] = 1.0
    batch = make_batch("binary", y, p, sample_weight=w, labels=[0, 1])
    assert_fast_equals_generic(batch, all_metrics("binary"))


# -- the weights interpretation: resample b is the batch with its rows repeated c_b times ------


def repeated(batch: Batch, counts: np.ndarray) -> tuple[Any, Any, Any]:
    w = None if batch.sample_weight is None else np.repeat(batch.sample_weight, counts)
    return np.repeat(batch.y, counts, axis=0), np.repeat(batch.score, counts, axis=0), w


SKLEARN = {
    "binary": {
        "roc_auc": lambda y, s, w: skm.roc_auc_score(y, s, sample_weight=w),
        "average_precision": lambda y, s, w: skm.average_precision_score(y, s, sample_weight=w),
        "f1": lambda y, s, w: skm.f1_score(y, s >= 0.5, sample_weight=w),
        "accuracy": lambda y, s, w: skm.accuracy_score(y, s >= 0.5, sample_weight=w),
        "matthews_corrcoef": lambda y, s, w: skm.matthews_corrcoef(y, s >= 0.5, sample_weight=w),
        "log_loss": lambda y, s, w: skm.log_loss(y, s, sample_weight=w, labels=[0, 1]),
        "brier": lambda y, s, w: skm.brier_score_loss(y, s, sample_weight=w, labels=[0, 1]),
    },
    "multiclass": {
        "f1_macro": lambda y, s, w: skm.f1_score(
            y, s.argmax(1), average="macro", labels=range(4), sample_weight=w
        ),
        "cohen_kappa": lambda y, s, w: skm.cohen_kappa_score(
            y, s.argmax(1), labels=range(4), sample_weight=w
        ),
        "roc_auc_ovr": lambda y, s, w: skm.roc_auc_score(
            y, s, multi_class="ovr", labels=range(4), sample_weight=w
        ),
        "log_loss": lambda y, s, w: skm.log_loss(y, s, labels=range(4), sample_weight=w),
        "top_k_accuracy": lambda y, s, w: skm.top_k_accuracy_score(
            y, s, k=2, labels=range(4), sample_weight=w
        ),
    },
    "regression": {
        "mean_squared_error": lambda y, s, w: skm.mean_squared_error(y, s, sample_weight=w),
        "mean_absolute_error": lambda y, s, w: skm.mean_absolute_error(y, s, sample_weight=w),
        "r2": lambda y, s, w: skm.r2_score(y, s, sample_weight=w),
        "median_absolute_error": lambda y, s, w: skm.median_absolute_error(y, s, sample_weight=w),
    },
}


@pytest.mark.parametrize(
    "batch",
    [
        binary_batch(10),
        binary_batch(11, weighted=True),
        make_batch(
            "multiclass",
            (rng := np.random.default_rng(12)).integers(0, 4, 120),
            rng.dirichlet(np.ones(4), 120),
        ),
        regression_batch(13),
        regression_batch(14, weighted=True),
    ],
    ids=["binary", "binary-weighted", "multiclass", "regression", "regression-weighted"],
)
def test_fallback_resample_equals_sklearn_on_repeated_rows(batch: Batch) -> None:
    refs = SKLEARN[batch.task]
    metrics = [(name, {}) for name in refs]
    generic = bootstrap_replicates(batch, metrics, n_resamples=12, seed=5, vectorized=False)
    fast = bootstrap_replicates(batch, metrics, n_resamples=12, seed=5)
    counts = np.concatenate(list(resample_counts(batch.n, 12, seed=5)))
    for b in (0, 4, 11):
        y, s, w = repeated(batch, counts[b])
        for name, ref in refs.items():
            expected = sk(ref, y, s, w)
            assert generic[name].values[b] == pytest.approx(expected, rel=1e-10, abs=1e-12), name
            assert fast[name].values[b] == pytest.approx(expected, rel=1e-10, abs=1e-12), name


def test_resample_counts_are_multinomial_draws_of_n_rows() -> None:
    counts = np.concatenate(list(resample_counts(50, 400, seed=0)))
    assert counts.shape == (400, 50)
    assert (counts.sum(axis=1) == 50).all()
    assert counts.dtype == np.int64
    # Each count is Binomial(n, 1/n): mean 1, variance 1 - 1/n.
    assert counts.mean() == pytest.approx(1.0)
    assert counts.var() == pytest.approx(1 - 1 / 50, rel=0.05)


# -- intervals ---------------------------------------------------------------------------------


def exponential_mean_batch(n: int, seed: int) -> Batch:
    """MAE against zero predictions: the mean of Exp(1) draws, standard error 1/√n."""
    y = np.random.default_rng(seed).exponential(size=n)
    return make_batch("regression", y, np.zeros(n))


def test_interval_contains_the_point_and_shrinks_like_one_over_root_n() -> None:
    widths = []
    for n in (500, 2000, 8000):
        iv = bootstrap_intervals(exponential_mean_batch(n, n), [("mean_absolute_error", {})])
        r = iv["mean_absolute_error"]
        assert r.low is not None and r.high is not None and r.std is not None
        assert r.low < r.point < r.high
        assert r.n_valid == 1000 and r.reason is None
        assert r.std == pytest.approx(1 / np.sqrt(n), rel=0.15)  # sd of Exp(1) is 1
        assert r.high - r.low == pytest.approx(2 * 1.96 * r.std, rel=0.15)
        widths.append(r.high - r.low)
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=0.2)
    assert widths[1] / widths[2] == pytest.approx(2.0, rel=0.2)


def test_wider_confidence_gives_a_wider_interval() -> None:
    batch = binary_batch(20, n=400)
    narrow = bootstrap_intervals(batch, [("roc_auc", {})], confidence=0.5)["roc_auc"]
    wide = bootstrap_intervals(batch, [("roc_auc", {})], confidence=0.99)["roc_auc"]
    assert wide.low < narrow.low < narrow.high < wide.high
    assert narrow.point == wide.point


def test_point_is_the_metric_on_the_full_batch() -> None:
    batch = binary_batch(21)
    iv = bootstrap_intervals(batch, None, n_resamples=20)
    y, s = batch.y, batch.score
    assert iv["roc_auc"].point == pytest.approx(skm.roc_auc_score(y, s))
    assert iv["accuracy"].point == pytest.approx(skm.accuracy_score(y, s >= 0.5))
    assert set(iv) == {n for n, spec in REGISTRY.items() if "binary" in spec.tasks and spec.default}


def test_same_seed_gives_identical_intervals_and_blocking_does_not_matter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = binary_batch(22, weighted=True)
    metrics = [("roc_auc", {}), ("f1", {}), ("log_loss", {}), ("ece", {}), ("brier", {})]
    first = bootstrap_intervals(batch, metrics, n_resamples=50, seed=7)
    assert bootstrap_intervals(batch, metrics, n_resamples=50, seed=7) == first
    assert bootstrap_intervals(batch, metrics, n_resamples=50, seed=8) != first
    monkeypatch.setattr(bs, "_BLOCK_CELLS", 3 * batch.n)  # blocks of 3 resamples, last of 2
    assert bootstrap_intervals(batch, metrics, n_resamples=50, seed=7) == first


def test_mostly_undefined_resamples_give_no_interval_and_say_why() -> None:
    # Classes 1..4 have one row each: a resample holds all four with probability ~(1 - 1/e)^4.
    y = np.zeros(40, dtype=int)
    y[[5, 15, 25, 35]] = [1, 2, 3, 4]
    proba = np.random.default_rng(0).dirichlet(np.ones(5), 40)
    batch = make_batch("multiclass", y, proba)
    r = bootstrap_intervals(batch, [("roc_auc_ovr", {})], n_resamples=200)["roc_auc_ovr"]
    assert r.point is not None
    assert 0 < r.n_valid < 100
    assert r.low is None and r.high is None and r.std is None
    assert r.reason is not None
    assert r.reason.startswith(f"only {r.n_valid} of 200 resamples give a defined roc_auc_ovr")
    assert "no samples" in r.reason
    # One class only: undefined everywhere, the point too.
    one_class = make_batch("binary", np.zeros(20, dtype=int), np.linspace(0, 1, 20))
    r = bootstrap_intervals(one_class, [("roc_auc", {})], n_resamples=20)["roc_auc"]
    assert r.point is None and r.low is None and r.n_valid == 0
    assert r.reason is not None and "only 0 of 20 resamples" in r.reason


def test_a_few_undefined_resamples_are_dropped() -> None:
    y = np.zeros(40, dtype=int)
    y[:8] = 1
    batch = make_batch("binary", y, np.linspace(0, 1, 40))
    rep = bootstrap_replicates(batch, [("precision", {})], n_resamples=200, threshold=0.99)
    values = rep["precision"].values
    assert np.isnan(values).any() and not np.isnan(values).all()
    assert rep["precision"].reason is not None
    iv = bootstrap_intervals(batch, [("precision", {})], n_resamples=200, threshold=0.99)
    assert iv["precision"].n_valid == int(np.isfinite(values).sum()) > 100
    assert iv["precision"].low is not None and iv["precision"].reason is None


@pytest.mark.parametrize("n_resamples", [9, 100_001, True, 10.5, "100"])
def test_resample_count_is_validated(n_resamples: Any) -> None:
    with pytest.raises(InvalidInput) as exc:
        bootstrap_intervals(binary_batch(0), [("roc_auc", {})], n_resamples=n_resamples)
    assert exc.value.field == "bootstrap.n"


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, float("nan"), "0.9", True])
def test_confidence_is_validated(confidence: Any) -> None:
    with pytest.raises(InvalidInput) as exc:
        bootstrap_intervals(binary_batch(0), [("roc_auc", {})], confidence=confidence)
    assert exc.value.field == "bootstrap.confidence"


def test_seed_and_metrics_are_validated() -> None:
    with pytest.raises(InvalidInput) as exc:
        bootstrap_intervals(binary_batch(0), [("roc_auc", {})], seed=-1)
    assert exc.value.field == "bootstrap.seed"
    with pytest.raises(InvalidInput) as exc:
        bootstrap_intervals(binary_batch(0), [("r2", {})])
    assert exc.value.field == "metrics"


def test_vectorized_metrics_cover_the_benchmarked_ones() -> None:
    assert {"roc_auc", "f1", "log_loss", "accuracy", "average_precision"} <= vectorized_metrics(
        "binary"
    )
    assert "roc_auc_ovo" not in vectorized_metrics("multiclass")
    assert "r2" in vectorized_metrics("regression")
    with pytest.raises(InvalidInput):
        vectorized_metrics("ranking")  # type: ignore[arg-type]


def test_performance_smoke_vectorized_is_much_faster_than_the_fallback() -> None:
    """Small sizes; the real figures (1000 × 1e5) come from ``python -m bench.bootstrap``."""
    batch = binary_batch(30, n=20_000)
    metrics = [("roc_auc", {}), ("f1", {}), ("log_loss", {}), ("accuracy", {})]
    start = time.perf_counter()
    fast = bootstrap_intervals(batch, metrics, n_resamples=200)
    elapsed = time.perf_counter() - start
    assert all(r.n_valid == 200 for r in fast.values())
    assert elapsed < 30  # typically well under a second
    start = time.perf_counter()
    bootstrap_replicates(batch, metrics, n_resamples=10, vectorized=False)
    per_resample_generic = (time.perf_counter() - start) / 10
    assert elapsed / 200 < per_resample_generic
