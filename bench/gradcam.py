"""Grad-CAM on 1e3 images: evalserve's batched pass vs the textbook per-image hook loop.

(a) naive: one image at a time, a forward hook on the block's activation that registers a
    gradient hook, a full forward and backward pass (parameter gradients included) per image —
    what most Grad-CAM code does (:func:`app.training.gradcam.gradcam_per_image`);
(b) evalserve: :func:`app.training.gradcam.gradcam` — the activations of a whole batch without
    autograd, then one backward pass through only the layers above the block for all images.

Both give the same maps (max |difference| printed). Also timed: the PNG overlays of the
service's answer (64 per request). The model is a CNN of the size of a small image run
(untrained weights: timing does not depend on them).

    python -m bench.gradcam                       # 1000 images 3×32×32, CUDA if present
                                                  # (also the last part of bench.inspection)
    python -m bench.gradcam --images 200 --shape 1,28,28 --device cpu
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from app.image_plots import overlay_png
from app.training.cnn import CNN
from app.training.gradcam import gradcam, gradcam_per_image
from app.training.spec import CNNSpec
from bench._timing import row


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_gradcam(
    images: int, shape: tuple[int, int, int], classes: int, device: torch.device, repeat: int
) -> None:
    """Time (a) and (b) on ``images`` random images and print the table."""
    c, h, w = shape
    spec = CNNSpec(
        blocks=[{"channels": 32}, {"channels": 64}, {"channels": 64, "pool": "none"}],
        head=(128,),
        input_shape=(c, h, w),
    )
    torch.manual_seed(0)
    model = CNN(spec, classes).to(device).eval()
    X = np.random.default_rng(0).normal(size=(images, c, h, w)).astype(np.float32)
    Xt = torch.as_tensor(X, device=device)
    print(
        f"Grad-CAM of {images} images {c}×{h}×{w}, {classes} classes, last conv "
        f"block, on {device} (torch threads: {torch.get_num_threads()})"
    )
    t_naive, naive = _timed(
        lambda: gradcam_per_image(model, Xt, task="multiclass"), device, max(1, repeat - 2)
    )
    t_fast, fast = _timed(lambda: gradcam(model, Xt, task="multiclass"), device, repeat)
    diff = float(np.abs(naive.maps - fast.maps).max())
    same = bool((naive.targets == fast.targets).all())
    n_png = min(64, images)
    t_png, _ = _timed(
        lambda: [overlay_png(X[i], fast.maps[i]) for i in range(n_png)], device, repeat
    )
    print(row("path", "seconds", "images/s", "vs naive", widths=(44, 10, 12, 10)))
    for name, t in (
        ("(a) naive: per image, hooks, full backward", t_naive),
        ("(b) evalserve: batched, backward above block", t_fast),
    ):
        print(
            row(
                name,
                f"{t:.3f}",
                f"{images / t:,.0f}",
                f"{t_naive / t:.1f}x",
                widths=(44, 10, 12, 10),
            )
        )
    print(f"same classes: {same}; max |map difference| = {diff:.2e}")
    print(f"PNG overlays: {n_png} in {t_png:.3f} s ({t_png / n_png * 1e3:.2f} ms each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--shape", default="3,32,32", help="C,H,W")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    c, h, w = (int(v) for v in args.shape.split(","))
    bench_gradcam(args.images, (c, h, w), args.classes, device, args.repeat)


if __name__ == "__main__":
    main()
