"""Training throughput: :func:`app.training.fit` against two hand-written PyTorch loops.

(a) ``fit`` with per-epoch logging on (an ``on_epoch_end`` hook and a ``metric_fn``, so every epoch
    also scores a validation set); (b) a minimal loop: data on the device, ``randperm`` indexing,
    forward, loss, backward, Adam step; (c) the textbook ``DataLoader(TensorDataset)`` loop with a
    host-to-device copy per batch. Same MLP (n_features → 256 → 256 → 1), batch size, epochs and
    optimizer for all three. Prints training rows per second and the ratios to (b); the target is
    (a)/(b) >= 0.8.

    python -m bench.training_loop                      # 1e6 rows, CUDA when available
    python -m bench.training_loop --rows 100000 --epochs 2 --device cpu
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.training import EpochRecord, ModelSpec, OptimizerSpec, TrainingSpec, fit
from bench._timing import row

Loop = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mlp(n_features: int, hidden: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    ).to(device)


def make_loops(device: torch.device, hidden: int, batch_size: int, epochs: int) -> dict[str, Loop]:
    """The three contenders, each taking (X, y, X_val, y_val) and training to completion."""

    def with_fit(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> None:
        spec = TrainingSpec(
            task="binary",
            model=ModelSpec(hidden=(hidden, hidden)),
            optimizer=OptimizerSpec(name="adam", lr=1e-3),
            batch_size=batch_size,
            epochs=epochs,
            device=device.type,  # type: ignore[arg-type]
        )
        log: list[EpochRecord] = []

        def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
            return {"accuracy": float(np.mean((logits > 0) == labels))}

        fit(spec, X, y, X_val, y_val, metric_fn=accuracy, on_epoch_end=log.append)

    def minimal(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> None:
        model = _mlp(X.shape[1], hidden, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        X_t = torch.from_numpy(X).to(device)
        y_t = torch.from_numpy(y.astype(np.float32)).to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        n = X_t.shape[0]
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen, device=device)
            for lo in range(0, n, batch_size):
                idx = perm[lo : lo + batch_size]
                loss = F.binary_cross_entropy_with_logits(model(X_t[idx])[:, 0], y_t[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        _sync(device)

    def dataloader(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray) -> None:
        model = _mlp(X.shape[1], hidden, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        data = TensorDataset(torch.from_numpy(X), torch.from_numpy(y.astype(np.float32)))
        loader = DataLoader(
            data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
        )
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.binary_cross_entropy_with_logits(model(xb)[:, 0], yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        _sync(device)

    return {
        "(a) app.training.fit": with_fit,
        "(b) minimal loop": minimal,
        "(c) DataLoader loop": dataloader,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="training rows")
    parser.add_argument("--val-rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    rows = args.rows

    rng = np.random.default_rng(0)
    w = rng.normal(size=args.features)
    X = rng.normal(size=(rows + args.val_rows, args.features)).astype(np.float32)
    y = (X @ w + rng.normal(size=X.shape[0]) > 0).astype(np.int64)
    X_tr, y_tr, X_val, y_val = X[:rows], y[:rows], X[rows:], y[rows:]

    loops = make_loops(device, args.hidden, args.batch_size, args.epochs)
    names = list(loops)
    print(
        f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"rows={rows:,} val_rows={args.val_rows:,} features={args.features} "
        f"MLP {args.features}->{args.hidden}->{args.hidden}->1 batch={args.batch_size} "
        f"epochs={args.epochs} Adam; {args.repeat} interleaved rounds"
    )
    # warm-up (allocator, kernels, thread pools) on a small slice
    for loop in loops.values():
        loop(X_tr[: 4 * args.batch_size], y_tr[: 4 * args.batch_size], X_val, y_val)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeat):
        # rotate the order each round, so a noisy neighbour does not always hit the same loop
        for name in names[r % 3 :] + names[: r % 3]:
            start = time.perf_counter()
            loops[name](X_tr, y_tr, X_val, y_val)
            times[name].append(time.perf_counter() - start)

    work = rows * args.epochs
    ref = times["(b) minimal loop"]
    widths = (28, 10, 14, 13, 20)
    print(row("loop", "best s", "best rows/s", "best vs (b)", "median round ratio", widths=widths))
    for name in names:
        best = min(times[name])
        # ratio of rates within each round (same neighbours), then the median over rounds
        paired = float(np.median([b / t for t, b in zip(times[name], ref, strict=True)]))
        print(
            row(
                name,
                f"{best:.2f}",
                f"{work / best:,.0f}",
                f"{min(ref) / best:.2f}x",
                f"{paired:.2f}x",
                widths=widths,
            )
        )


if __name__ == "__main__":
    main()
