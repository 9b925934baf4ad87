"""The full binary report: evalserve's core vs scikit-learn one call at a time vs one argsort.

(a) evalserve: validation + every default binary metric + ROC and PR curves + confusion matrix
    + ECE/MCE, from one sort;
(b) the same values through the scikit-learn functions a user would call one by one;
(c) one ``np.argsort(kind="stable")`` of the scores: the floor for anything that ranks.

Checks (a) == (b) to 1e-9, then prints b/a (target >= 10) and a/c (target <= 1.5).
Run: ``python -m bench.binary_report [n ...]`` (default 1e6 and 1e7 rows).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np
from sklearn import calibration as skc
from sklearn import metrics as skm

from app.core.batch import make_batch
from app.core.report import ReportOptions, evaluate
from bench._timing import best_of, row

N_BINS = 15


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    # A realistic classifier: scores in (0, 1) with some overlap, float64.
    p = np.clip(rng.beta(2, 5, n) + 0.35 * y, 0.0, 1.0)
    return y, p


def evalserve_report(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    batch = make_batch("binary", y, p)
    return evaluate(batch, ReportOptions(curves=("roc", "pr"), n_bins=N_BINS, losses=[]))


def sklearn_report(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    pred = (p >= 0.5).astype(np.int64)
    prob_true, prob_pred = skc.calibration_curve(y, p, n_bins=N_BINS)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, N_BINS + 1)[1:-1], p), minlength=N_BINS)
    gaps = np.abs(prob_true - prob_pred)
    nonempty = counts[counts > 0]
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "specificity": skm.recall_score(y, pred, pos_label=0),
        "npv": skm.precision_score(y, pred, pos_label=0),
        "jaccard": skm.jaccard_score(y, pred),
        "matthews_corrcoef": skm.matthews_corrcoef(y, pred),
        "cohen_kappa": skm.cohen_kappa_score(y, pred),
        "hamming_loss": skm.hamming_loss(y, pred),
        "roc_auc": skm.roc_auc_score(y, p),
        "average_precision": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, p),
        "brier": skm.brier_score_loss(y, p),
        "ece": float(np.sum(nonempty / len(p) * gaps)),
        "mce": float(gaps.max()),
    }
    for avg in ("macro", "micro", "weighted"):
        out[f"precision_{avg}"] = skm.precision_score(y, pred, average=avg)
        out[f"recall_{avg}"] = skm.recall_score(y, pred, average=avg)
        out[f"f1_{avg}"] = skm.f1_score(y, pred, average=avg)
        out[f"jaccard_{avg}"] = skm.jaccard_score(y, pred, average=avg)
    out["confusion_matrix"] = skm.confusion_matrix(y, pred)
    out["roc_curve"] = skm.roc_curve(y, p)
    out["pr_curve"] = skm.precision_recall_curve(y, p)
    return out


def check_equal(ours: dict[str, Any], ref: dict[str, Any]) -> int:
    """Compare every scalar the reference has; returns how many were compared."""
    metrics = ours["metrics"]
    compared = 0
    for name, value in ref.items():
        if name in ("confusion_matrix", "roc_curve", "pr_curve"):
            continue
        if name in ("specificity_macro", "npv_macro"):
            continue
        got = metrics[name]
        assert got is not None and abs(got - value) <= 1e-9 * max(1.0, abs(value)), (
            name,
            got,
            value,
        )
        compared += 1
    assert np.array_equal(np.asarray(ours["confusion_matrix"]["counts"]), ref["confusion_matrix"])
    roc = ours["curves"]["roc"]["1"]
    assert abs(roc["auc"] - ref["roc_auc"]) <= 1e-9
    return compared + 1


def main(sizes: list[int]) -> None:
    print(
        row(
            "rows",
            "evalserve s",
            "sklearn s",
            "argsort s",
            "b/a",
            "a/c",
            widths=(12, 14, 12, 12, 8, 8),
        )
    )
    for n in sizes:
        y, p = make_data(n)
        t_a, ours = best_of(partial(evalserve_report, y, p), repeat=3)
        t_b, ref = best_of(partial(sklearn_report, y, p), repeat=1)
        t_c, _ = best_of(partial(np.argsort, p, kind="stable"), repeat=3)
        compared = check_equal(ours, ref)
        print(
            row(
                f"{n:.0e}",
                f"{t_a:.3f}",
                f"{t_b:.3f}",
                f"{t_c:.3f}",
                f"{t_b / t_a:.1f}",
                f"{t_a / t_c:.2f}",
                widths=(12, 14, 12, 12, 8, 8),
            )
        )
        print(f"  {compared} values equal to scikit-learn within 1e-9")


if __name__ == "__main__":
    args = [int(float(a)) for a in sys.argv[1:]] or [1_000_000, 10_000_000]
    main(args)
