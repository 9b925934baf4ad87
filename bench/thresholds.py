"""Max-F1 threshold search: evalserve vs a scikit-learn ``precision_recall_curve`` search.

(a) evalserve: ``recommend_threshold`` (validation + one ranking sort + the vectorized search
    + the operating-point table);
(b) scikit-learn: ``precision_recall_curve``, F1 = 2PR / (P + R) at every threshold, and the
    same documented tie-break (values within 1e-12 of the best are tied; the highest threshold
    wins);
(s) the search alone, on a ranking already built (the part that is O(number of thresholds)).

Checks that (a) and (b) pick the same threshold, then prints the timings and b/a.
Run: ``python -m bench.thresholds [n ...]`` (default 1e6 rows).
"""

from __future__ import annotations

import sys
from functools import partial

import numpy as np
from sklearn.metrics import precision_recall_curve

from app.core.curves import rank_binary
from app.core.thresholds import TIE_TOLERANCE, recommend_from_ranking, recommend_threshold
from bench._timing import best_of, row


def make_data(n: int, seed: int = 0, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = np.clip(rng.beta(2, 5, n) + 0.35 * y, 0.0, 1.0)
    return y, p if decimals is None else np.round(p, decimals)


def sklearn_max_f1(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = np.flatnonzero(f1 >= f1.max() - TIE_TOLERANCE)[-1]  # thresholds increase
    return float(thresholds[best]), float(f1[best])


def main(sizes: list[int]) -> None:
    print(row("max-F1 threshold", "evalserve", "sklearn", "sklearn/ev", "search only"))
    for n in sizes:
        for label, decimals in (("continuous", None), ("3-decimal ties", 3)):
            y, p = make_data(n, decimals=decimals)
            t_ev, rec = best_of(partial(recommend_threshold, y, p, objective="f1"))
            t_sk, (thr, f1) = best_of(partial(sklearn_max_f1, y, p))
            t_search, _ = best_of(partial(recommend_from_ranking, rank_binary(y, p), "f1"))
            assert rec.threshold == thr, (rec.threshold, thr)
            assert rec.value is not None and abs(rec.value - f1) <= 1e-12, (rec.value, f1)
            print(
                row(
                    f"n={n:.0e} {label}",
                    f"{t_ev * 1e3:.1f} ms",
                    f"{t_sk * 1e3:.1f} ms",
                    f"{t_sk / t_ev:.2f}x",
                    f"{t_search * 1e3:.2f} ms",
                )
            )
            print(f"  same threshold {thr!r}, F1 {f1:.6f}, {rec.n_candidates} candidates")


if __name__ == "__main__":
    main([int(float(a)) for a in sys.argv[1:]] or [1_000_000])
