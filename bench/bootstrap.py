"""Bootstrap intervals: evalserve's vectorized resampling vs a loop of scikit-learn calls.

(a) evalserve: ``bootstrap_intervals`` with 1000 resamples of 1e5 rows, one metric at a time
    and the four together (the resample counts are drawn once per call, shared by the metrics);
(b) the naive bootstrap: per resample, ``np.repeat`` the rows by their counts and call the
    scikit-learn metric; timed on the first ``B_naive`` resamples and extrapolated to 1000.

Checks that (a)'s value on each of those resamples equals (b)'s to 1e-9, then prints seconds and
the extrapolated ratio b/a. Run: ``python -m bench.bootstrap [n [n_resamples [B_naive]]]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm

from app.core.batch import make_batch
from app.core.bootstrap import bootstrap_intervals, bootstrap_replicates, resample_counts
from bench._timing import best_of, row

SKLEARN: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": skm.roc_auc_score,
    "f1": lambda y, p: skm.f1_score(y, p >= 0.5),
    "log_loss": lambda y, p: skm.log_loss(y, p, labels=[0, 1]),
    "accuracy": lambda y, p: skm.accuracy_score(y, p >= 0.5),
}


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = np.clip(rng.beta(2, 5, n) + 0.35 * y, 0.0, 1.0)
    return y, p


def naive(
    y: np.ndarray, p: np.ndarray, name: str, n_resamples: int, seed: int = 0
) -> tuple[float, np.ndarray]:
    """Seconds and values of the textbook loop on the same resamples as evalserve."""
    rows = np.arange(y.shape[0])
    values = []
    start = time.perf_counter()
    for block in resample_counts(y.shape[0], n_resamples, seed=seed):
        for counts in block:
            take = np.repeat(rows, counts)
            values.append(SKLEARN[name](y[take], p[take]))
    return time.perf_counter() - start, np.array(values)


def main(n: int = 100_000, n_resamples: int = 1000, n_naive: int = 20) -> None:
    y, p = make_data(n)
    batch = make_batch("binary", y, p)
    print(f"bootstrap, binary, n = {n:,}, {n_resamples} resamples; naive loop on {n_naive}")
    print(row("metric", "evalserve s", "naive s*", "ratio", "max |diff|"))
    results: dict[str, Any] = {}
    for name in SKLEARN:
        seconds, result = best_of(
            lambda name=name: bootstrap_intervals(batch, [(name, {})], n_resamples=n_resamples),
            repeat=2,
        )
        results[name] = result[name]
        naive_s, reference = naive(y, p, name, n_naive)
        ours = bootstrap_replicates(batch, [(name, {})], n_resamples=max(n_naive, 10))
        diff = float(np.max(np.abs(ours[name].values[:n_naive] - reference)))
        assert diff < 1e-9, (name, diff)
        slow = naive_s * n_resamples / n_naive
        cells = (f"{seconds:.2f}", f"{slow:.1f}", f"{slow / seconds:.0f}x", f"{diff:.1e}")
        print(row(name, *cells))
    together, _ = best_of(
        lambda: bootstrap_intervals(batch, [(m, {}) for m in SKLEARN], n_resamples=n_resamples),
        repeat=2,
    )
    print(row("all four, one call", f"{together:.2f}"))
    print("* extrapolated from the naive loop's first resamples")
    for name, iv in results.items():
        print(f"  {name}: {iv.point:.5f} [{iv.low:.5f}, {iv.high:.5f}] (std {iv.std:.5f})")


if __name__ == "__main__":
    args = [int(float(a)) for a in sys.argv[1:]]
    main(*args)
