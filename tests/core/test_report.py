"""The full report: one sort per column, every section consistent with the engine's parts."""

from __future__ import annotations

import numpy as np
import pytest

from app.core import curves, probabilistic
from app.core.batch import make_batch
from app.core.registry import REGISTRY, resolve
from app.core.report import ReportOptions, evaluate


def binary(n: int = 2000, seed: int = 0, logit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 1e-3, 1 - 1e-3), 3)
    return y, (np.log(p / (1 - p)) if logit else p)


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_a_binary_report_sorts_the_scores_once(
    monkeypatch: pytest.MonkeyPatch, binning: str
) -> None:
    calls = []
    real = curves.rank_binary

    def counting(*args: object, **kwargs: object) -> curves.BinaryRanking:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(curves, "rank_binary", counting)
    monkeypatch.setattr("app.core.ranking.rank_binary", counting)
    sorts = []
    real_sort = np.argsort

    def counting_argsort(a: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        if np.ndim(a) == 1 and len(a) == 2000:
            sorts.append(1)
        return real_sort(a, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(np, "argsort", counting_argsort)
    y, p = binary()
    w = np.random.default_rng(1).random(2000)
    report = evaluate(
        make_batch("binary", y, p, sample_weight=w),
        ReportOptions(curves=("roc", "pr", "reliability"), binning=binning),  # type: ignore[arg-type]
    )
    assert report["metrics"]["roc_auc"] is not None
    assert len(calls) == 1
    assert len(sorts) <= 1


def test_quantile_ece_from_the_shared_sort_equals_a_direct_computation() -> None:
    for logit in (False, True):
        y, s = binary(seed=3, logit=logit)
        batch = make_batch("binary", y, s, score_type="logit" if logit else "probability")
        report = evaluate(batch, ReportOptions(binning="quantile", n_bins=7, losses=[]))
        direct = probabilistic.binary_calibration_error(
            batch.y, batch.proba, None, n_bins=7, strategy="quantile"
        )
        assert report["metrics"]["ece"] == pytest.approx(direct.ece, rel=1e-12)
        assert report["metrics"]["mce"] == pytest.approx(direct.mce, rel=1e-12)


def test_logits_and_probabilities_give_the_same_ranking_and_threshold_metrics() -> None:
    y, p = binary(seed=4)
    z = np.log(p / (1 - p))
    a = evaluate(make_batch("binary", y, p))["metrics"]
    b = evaluate(make_batch("binary", y, z, score_type="logit"))["metrics"]
    for name in ("roc_auc", "average_precision", "f1", "accuracy", "matthews_corrcoef"):
        assert a[name] == pytest.approx(b[name], rel=1e-12), name
    assert a["log_loss"] == pytest.approx(b["log_loss"], rel=1e-9)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "regression"])
def test_every_default_metric_has_a_finite_value_on_a_healthy_batch(task: str) -> None:
    rng = np.random.default_rng(5)
    n = 500
    if task == "binary":
        y, s = binary(n)
    elif task == "multiclass":
        y = rng.integers(0, 4, n)
        s = rng.dirichlet(np.ones(4), n)
        s = 0.5 * s + 0.5 * np.eye(4)[y]
    elif task == "multilabel":
        y = rng.integers(0, 2, (n, 3))
        s = np.clip(0.4 * y + 0.6 * rng.random((n, 3)), 0, 1)
    else:
        y = rng.normal(size=n)
        s = y + rng.normal(size=n)
    report = evaluate(
        make_batch(task, y, s, score_field="y_pred" if task == "regression" else "y_score")
    )  # type: ignore[arg-type]
    expected = {spec.name for spec, _ in resolve(task, None)}  # type: ignore[arg-type]
    assert set(report["metrics"]) == expected
    assert all(v is not None and np.isfinite(v) for v in report["metrics"].values()), report[
        "warnings"
    ]
    assert report["warnings"] == []


def test_every_registered_metric_names_its_direction_and_tasks() -> None:
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.tasks and spec.summary
        lower_is_better = name.endswith(("_error", "_loss", "loss")) or name in (
            "brier",
            "ece",
            "mce",
            "mean_squared_error",
        )
        assert spec.greater_is_better is not lower_is_better, name


def test_confusion_normalizations_have_null_for_empty_rows() -> None:
    batch = make_batch("multiclass", [0, 0, 1], [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    cm = evaluate(batch)["confusion_matrix"]
    assert np.array_equal(cm["counts"], [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert cm["normalized"]["true"][2] == [None, None, None]
    assert cm["normalized"]["true"][0] == [0.5, 0.5, 0.0]


def test_parametrised_metrics_use_their_defaults_when_named_alone() -> None:
    y, p = binary(seed=6)
    report = evaluate(
        make_batch("binary", y, p), ReportOptions(metrics=[("fbeta", {}), ("f1", {})])
    )
    assert report["metrics"]["fbeta"] == report["metrics"]["f1"]
    report = evaluate(make_batch("binary", y, p), ReportOptions(metrics=[("fbeta", {"beta": 2})]))
    assert report["metrics"]["fbeta[beta=2]"] != pytest.approx(
        evaluate(make_batch("binary", y, p))["metrics"]["f1"]
    )
