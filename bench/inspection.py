"""Inspections: permutation importance against scikit-learn, and integrated gradients.

(a') scikit-learn's ``permutation_importance`` as its users run it: the trained MLP wrapped as
     a classifier (:func:`app.training.inspect.as_estimator`) and ``scoring="roc_auc"``, so
     its own scorer and ``roc_auc_score``: one forward pass and one scoring per (feature,
     repeat). The issue's reference; the target is (a')/(c) >= 5.
(a)  the same loop scored by the engine's scorer, the stricter comparison: only the way the
     network is run and the scoring is batched differ;
(b)  :func:`app.core.importance.permutation_importance` with the repeats of a feature stacked
     into one full forward pass (:func:`~app.core.importance.stacked_predict`);
(c)  the same with the first-layer shortcut (:class:`app.training.inspect.FirstLayerPermuted`:
     ``X W₁ᵀ`` once, a rank-1 update per permuted copy, the rest of the network on blocks of
     rows × all repeats), the repeats scored in parallel threads — what the service runs.

All give the same importances (checked, max |difference| to (a) printed). On a CPU (c) is
bound by the matrix products after the first layer, which no batching removes: with two
hidden layers of 64 that is 4224 of the 7360 multiply-adds per row of a full pass. Then
integrated gradients (64 steps, training-mean baseline) on ``--ig-rows`` rows beside the
textbook Riemann sum, and Grad-CAM on ``--gradcam-images`` images (:mod:`bench.gradcam`).

    python -m bench.inspection                          # 1e5 x 50, 10 repeats; CUDA if present
    python -m bench.inspection --rows 20000 --device cpu
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch
from sklearn.inspection import permutation_importance as sk_permutation_importance

from app.core.importance import engine_scorer, permutation_importance, stacked_predict
from app.training.inspect import (
    FirstLayerPermuted,
    TorchEstimator,
    as_estimator,
    attributions,
    outputs,
)
from app.training.models import MLP
from bench._timing import row
from bench.gradcam import bench_gradcam


def _model(n_features: int, hidden: tuple[int, ...], device: torch.device) -> MLP:
    torch.manual_seed(0)
    return MLP(n_features, hidden, 1, "relu", 0.0).to(device).eval()


def _timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_importance(
    X: np.ndarray, y: np.ndarray, hidden: tuple[int, ...], args: argparse.Namespace
) -> None:
    device = torch.device(args.device)
    model = _model(X.shape[1], hidden, device)
    scorer, _ = engine_scorer("binary", args.metric, None, y, 1)
    base = outputs(model, X, "binary")
    kw = {"n_repeats": args.repeats, "seed": 0}
    arch = "-".join(map(str, (X.shape[1], *hidden, 1)))
    print(f"\nMLP {arch}, metric {args.metric}")
    print(row("contender", "seconds", "x sklearn", "max |diff|"))

    def sk_scorer(estimator: Any, X_: np.ndarray, y_: np.ndarray) -> float:
        return scorer(estimator.decision_function(X_))

    t_sk, ref = _timed(
        lambda: sk_permutation_importance(
            TorchEstimator(model, "binary"),
            X,
            y,
            scoring=sk_scorer,
            n_repeats=args.repeats,
            random_state=0,
        )
    )
    print(row("(a) sklearn, same scorer", f"{t_sk:.2f}", "1.00", "-"))
    if args.metric == "roc_auc":
        # What a user of scikit-learn runs: its own scorer by name on the wrapped classifier.
        t_own, own = _timed(
            lambda: sk_permutation_importance(
                as_estimator(model, "binary"),
                X,
                y,
                scoring="roc_auc",
                n_repeats=args.repeats,
                random_state=0,
            )
        )
        diff_own = float(np.abs(own.importances - ref.importances).max())
        print(
            row(
                "(a') sklearn, scoring='roc_auc'",
                f"{t_own:.2f}",
                f"{t_sk / t_own:.2f}",
                f"{diff_own:.1e}",
            )
        )
    if not args.skip_stacked:
        stacked = stacked_predict(lambda A: outputs(model, A, "binary"), X)
        t_st, res_st = _timed(lambda: permutation_importance(stacked, X, scorer, base, **kw))
        diff_st = float(np.abs(res_st.importances - ref.importances).max())
        print(row("(b) stacked copies", f"{t_st:.2f}", f"{t_sk / t_st:.2f}", f"{diff_st:.1e}"))
    fast = FirstLayerPermuted(model, X, "binary")
    t_fa, res_fa = _timed(lambda: permutation_importance(fast, X, scorer, base, **kw))
    diff_fa = float(np.abs(res_fa.importances - ref.importances).max())
    print(row("(c) stacked + first layer", f"{t_fa:.2f}", f"{t_sk / t_fa:.2f}", f"{diff_fa:.1e}"))
    if args.metric == "roc_auc":
        print(f"    (a')/(c): {t_own / t_fa:.2f}")
    n_scores = X.shape[1] * args.repeats
    t_score, _ = _timed(lambda: [scorer(base) for _ in range(n_scores)])
    print(f"    of which scoring alone ({n_scores} x {args.metric}): {t_score:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--hidden", nargs="*", default=["64,64", "64"], help="architectures, e.g. 64,64 64"
    )
    parser.add_argument("--metric", default="roc_auc")
    parser.add_argument("--ig-rows", type=int, default=10_000)
    parser.add_argument("--ig-steps", type=int, default=64)
    parser.add_argument("--gradcam-images", type=int, default=1000, help="0: leave out")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-stacked", action="store_true", help="leave out (b)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] + rng.normal(size=args.rows) > 0).astype(np.int64)
    print(
        f"permutation importance: {args.rows} rows x {args.features} features, "
        f"{args.repeats} repeats; device {args.device}, torch threads {args.threads}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    hiddens = [tuple(int(h) for h in spec.split(",") if h) for spec in args.hidden]
    for hidden in hiddens:
        bench_importance(X, y, hidden, args)

    bench_attributions(X, hiddens[0], args)
    if args.gradcam_images:
        print()
        device = torch.device(args.device)
        bench_gradcam(args.gradcam_images, (3, 32, 32), 10, device, repeat=3)


def textbook_integrated_gradients(
    model: MLP, X: np.ndarray, baseline: np.ndarray, steps: int
) -> np.ndarray:
    """The paper's right Riemann sum in the model's float32, one batched backward per step:
    ``(x - x') · (1/m) Σ_k ∇f(x' + k/m (x - x'))`` — the hand-written reference."""
    p = next(model.parameters())
    Xt = torch.as_tensor(X, dtype=p.dtype, device=p.device)
    base = torch.as_tensor(baseline, dtype=p.dtype, device=p.device)
    total = torch.zeros_like(Xt)
    for k in range(1, steps + 1):
        point = (base + (k / steps) * (Xt - base)).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(point)[:, 0].sum(), point)
        total += grad
    return ((Xt - base) * total / steps).detach().cpu().numpy()


def bench_attributions(X: np.ndarray, hidden: tuple[int, ...], args: argparse.Namespace) -> None:
    model = _model(args.features, hidden, torch.device(args.device))
    Xi, baseline = X[: args.ig_rows], X.mean(axis=0)
    t_ref, ref = _timed(lambda: textbook_integrated_gradients(model, Xi, baseline, args.ig_steps))
    t_ig, res = _timed(
        lambda: attributions(
            model,
            Xi,
            task="binary",
            baseline=baseline,
            target=np.ones(len(Xi), dtype=np.int64),
            steps=args.ig_steps,
        )
    )
    delta = res["output"] - res["baseline_output"]
    keep = np.abs(delta) > 1e-3

    def worst_gap(attr: np.ndarray) -> tuple[float, float]:
        rel = np.abs(attr.sum(axis=1)[keep] - delta[keep]) / np.abs(delta[keep])
        return float(rel.max()), float(np.mean(rel <= 0.01))

    refined = float(np.mean(res["steps_used"] > args.ig_steps))
    arch = "-".join(map(str, (args.features, *hidden, 1)))
    print(f"\nintegrated gradients, MLP {arch}: {len(Xi)} rows, {args.ig_steps} steps")
    print(row("contender", "seconds", "rows/s", "max gap", "<= 1%"))
    for name, t, attr in (
        ("textbook: Riemann sum, float32", t_ref, ref),
        ("evalserve: float64, kinks, refined", t_ig, res["attributions"]),
    ):
        gap, within = worst_gap(attr)
        print(row(name, f"{t:.2f}", f"{len(Xi) / t:,.0f}", f"{gap:.1e}", f"{within:.1%}"))
    print(f"    completeness gap relative to |f(x) - f(x')|; {refined:.1%} rows refined")


if __name__ == "__main__":
    main()
