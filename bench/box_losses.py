"""Box regression losses on 1e6 box pairs: evalserve (numpy) vs a plain torch implementation.

torchvision cannot be installed beside the CPU build of torch here, so the reference is
torchvision's own code for ``generalized_box_iou_loss``, ``distance_box_iou_loss`` and
``complete_box_iou_loss`` (``torchvision/ops/{giou,diou,ciou}_loss.py`` and ``_utils.py``),
copied operation for operation into plain torch in ``tests/core/test_losses_boxes.py`` (the
tests check it against the torchvision fixture), float64 on the CPU; the IoU loss is
``1 - box_iou(pred, true).diag()`` computed pairwise (``box_iou`` itself builds the n x n matrix).

(a) evalserve: ``app.core.losses.boxes.{iou,giou,diou,ciou}`` with validation (finite, x2 >= x1)
    and the mean reduction, as ``/v1/losses`` runs them;
(b) torch: the same losses, no validation, on torch's default threads and on one thread (numpy
    runs on one).

Checks (a) == (b) to 1e-9 per box, then prints the times and b/a (above 1: evalserve faster).
Run: ``python -m bench.box_losses [n_pairs]`` (default 1e6).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from app.core.losses import boxes
from bench._timing import best_of, row
from tests.core.test_losses_boxes import (  # torchvision's code, operation for operation
    tv_complete_box_iou_loss,
    tv_distance_box_iou_loss,
    tv_generalized_box_iou_loss,
)


def make_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Target and predicted ``xyxy`` boxes: overlapping, disjoint and nested pairs."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(1, 200, (n, 2))
    true = np.hstack([xy, xy + wh])
    shift = rng.normal(0, 0.5, (n, 2)) * wh
    scale = np.exp(rng.normal(0, 0.3, (n, 2)))
    p_xy = xy + shift
    pred = np.hstack([p_xy, p_xy + wh * scale])
    return true, pred


def torch_iou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """``1 - box_iou(b1, b2).diag()``, pairwise (box_iou's arithmetic on the diagonal)."""
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = torch.max(b1[:, :2], b2[:, :2])
    rb = torch.min(b1[:, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return 1 - inter / (area1 + area2 - inter + eps)


TORCH: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "iou": torch_iou,
    "giou": tv_generalized_box_iou_loss,
    "diou": tv_distance_box_iou_loss,
    "ciou": tv_complete_box_iou_loss,
}


def main(n: int) -> None:
    true, pred = make_pairs(n)
    tt, tp = torch.from_numpy(true), torch.from_numpy(pred)
    print(f"{n:.0e} box pairs, float64, torch {torch.__version__} on {torch.get_num_threads()} "
          "threads (numpy: one)")  # fmt: skip
    threads = torch.get_num_threads()
    widths = (8, 13, 10, 10, 14, 12, 12)
    print(row("loss", "evalserve s", "torch s", "torch/ev", "torch 1-thr s", "torch1/ev",
              "max |diff|", widths=widths))  # fmt: skip
    for name, ref in TORCH.items():
        ours_fn = getattr(boxes, name)
        t_ev, mean = best_of(partial(ours_fn, true, pred), repeat=3)
        t_torch, ref_mean = best_of(lambda ref=ref: ref(tp, tt).mean(), repeat=3)  # type: ignore[misc]
        torch.set_num_threads(1)
        try:
            t_one, _ = best_of(lambda ref=ref: ref(tp, tt).mean(), repeat=3)  # type: ignore[misc]
        finally:
            torch.set_num_threads(threads)
        per_box = np.asarray(ours_fn(true, pred, reduction="none"))
        diff = float(np.max(np.abs(per_box - ref(tp, tt).numpy())))
        assert diff <= 1e-9 and abs(float(mean) - float(ref_mean)) <= 1e-9, (name, diff)
        print(row(name, f"{t_ev:.3f}", f"{t_torch:.3f}", f"{t_torch / t_ev:.2f}", f"{t_one:.3f}",
                  f"{t_one / t_ev:.2f}", f"{diff:.1e}", widths=widths))  # fmt: skip


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 1_000_000)
