"""Calibration fits side by side with their references.

- temperature scaling on 1e5x10 and 1e6x100 logits: evalserve (float64 L-BFGS on log T with a
  Newton finish) vs the widely copied reference loop (L-BFGS from T=1.5, lr=0.01, 50 iters),
  with the NLL each reaches;
- isotonic regression on 1e6 rows: evalserve vs sklearn.isotonic.IsotonicRegression.
Run: ``python -m bench.calibration [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.isotonic import IsotonicRegression

from app.core.calibration import IsotonicCalibration, TemperatureScaling
from bench._timing import best_of


def logits(n: int, k: int, t_star: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)).astype(np.float32) * 2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return y, (z * t_star).astype(np.float32)


def reference_temperature(y: np.ndarray, z: np.ndarray, device: str) -> float:
    """The usual snippet: nn.Parameter T=1.5, LBFGS(lr=0.01, max_iter=50)."""
    zt = torch.from_numpy(z).to(device)
    yt = torch.from_numpy(y).to(device)
    t = torch.nn.Parameter(torch.ones(1, device=device) * 1.5)
    opt = torch.optim.LBFGS([t], lr=0.01, max_iter=50)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(zt / t, yt)
        loss.backward()
        return loss

    opt.step(closure)
    return float(t.item())


def nll(y: np.ndarray, z: np.ndarray, t: float) -> float:
    return float(F.cross_entropy(torch.from_numpy(z).double() / t, torch.from_numpy(y)).item())


def bench_temperature(n: int, k: int, device: str) -> None:
    y, z = logits(n, k)
    t_ours, cal = best_of(
        partial(TemperatureScaling.fit, y, z, score_type="logit", device=device), repeat=2
    )
    t_ref, ref_t = best_of(partial(reference_temperature, y, z, device), repeat=2)
    print(
        f"temperature {n:.0e}x{k}: evalserve {t_ours:7.3f} s (T={cal.temperature:.4f}, "
        f"NLL {nll(y, z, cal.temperature):.6f}) | reference loop {t_ref:7.3f} s "
        f"(T={ref_t:.4f}, NLL {nll(y, z, ref_t):.6f}) | time ratio {t_ref / t_ours:.2f}"
    )


def bench_isotonic(n: int) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    w = rng.random(n)
    t_ours, cal = best_of(
        partial(IsotonicCalibration.fit, y, p, score_type="probability", sample_weight=w)
    )
    t_ref, ref = best_of(
        partial(IsotonicRegression(out_of_bounds="clip").fit, p, y, sample_weight=w)
    )
    new = rng.random(10_000)
    gap = float(np.max(np.abs(cal.apply(new) - ref.predict(new))))
    print(
        f"isotonic {n:.0e} rows (weighted): evalserve {t_ours:.3f} s | sklearn {t_ref:.3f} s | "
        f"sklearn/evalserve {t_ref / t_ours:.2f} | max |difference| {gap:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"device: {args.device}")
    bench_temperature(100_000, 10, args.device)
    bench_temperature(1_000_000, 100, args.device)
    bench_isotonic(1_000_000)


if __name__ == "__main__":
    main()
