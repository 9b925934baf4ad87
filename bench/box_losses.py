"""Box regression losses on 1e6 box pairs: evalserve (numpy) vs a plain torch implementation.

torchvision cannot be installed beside the CPU build of torch here, so the reference is
torchvision's own code for ``generalized_box_iou_loss``, ``distance_box_iou_loss`` and
``complete_box_iou_loss`` (``torchvision/ops/{giou,diou,ciou}_loss.py`` and ``_utils.py``),
copied operation for operation into plain torch, float64 on the CPU; the IoU loss is
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


def _inter_union(b1: torch.Tensor, b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision.ops._utils._loss_inter_union."""
    x1, y1, x2, y2 = b1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = b2.unbind(dim=-1)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    return intsctk, unionk


def torch_iou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """``1 - box_iou(b1, b2).diag()``, pairwise (box_iou's arithmetic on the diagonal)."""
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = torch.max(b1[:, :2], b2[:, :2])
    rb = torch.min(b1[:, 2:], b2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return 1 - inter / (area1 + area2 - inter + eps)


def torch_giou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """torchvision.ops.generalized_box_iou_loss (reduction none)."""
    intsctk, unionk = _inter_union(b1, b2)
    iouk = intsctk / (unionk + eps)
    x1, y1, x2, y2 = b1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = b2.unbind(dim=-1)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    return 1 - (iouk - ((area_c - unionk) / (area_c + eps)))


def _diou_iou(
    b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision.ops.diou_loss._diou_iou_loss."""
    intsct, union = _inter_union(b1, b2)
    iou = intsct / (union + eps)
    x1, y1, x2, y2 = b1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = b2.unbind(dim=-1)
    xc1, yc1 = torch.min(x1, x1g), torch.min(y1, y1g)
    xc2, yc2 = torch.max(x2, x2g), torch.max(y2, y2g)
    diagonal_distance_squared = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    x_p, y_p = (x2 + x1) / 2, (y2 + y1) / 2
    x_g, y_g = (x1g + x2g) / 2, (y1g + y2g) / 2
    centers_distance_squared = ((x_p - x_g) ** 2) + ((y_p - y_g) ** 2)
    return 1 - iou + (centers_distance_squared / diagonal_distance_squared), iou


def torch_diou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    return _diou_iou(b1, b2, eps)[0]


def torch_ciou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """torchvision.ops.complete_box_iou_loss (reduction none)."""
    diou_loss, iou = _diou_iou(b1, b2, eps)
    x1, y1, x2, y2 = b1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = b2.unbind(dim=-1)
    w_pred, h_pred, w_gt, h_gt = x2 - x1, y2 - y1, x2g - x1g, y2g - y1g
    v = (4 / (torch.pi**2)) * torch.pow((torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou_loss + alpha * v


TORCH: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "iou": torch_iou,
    "giou": torch_giou,
    "diou": torch_diou,
    "ciou": torch_ciou,
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
