"""Checkpoints of the fit loop: everything :func:`~app.training.loop.fit` needs to go on from an
epoch boundary as if it had never stopped.

A checkpoint is taken at the start of an epoch (so it holds the state after the last complete
one): model and optimizer state, the scheduler, early stopping's bookkeeping, and the RNG
states that the rest of the fit draws from (torch's global generator, which dropout uses, and
the shuffle generator). Resumed on the same device type and software, a fit ends with the same
weights as one that was never interrupted; on another device type the RNG states cannot be
restored and the remaining epochs shuffle differently (still from the checkpoint's weights).
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.errors import InvalidInput

#: Bumped when the layout changes; an unknown version is refused rather than misread.
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of a fit at the start of epoch ``epoch`` (0-based: ``epoch`` epochs done).

    Tensors may live on the training device until :meth:`to_bytes` moves them to the CPU.
    """

    epoch: int
    steps: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    rng: dict[str, Tensor]
    device_type: str
    best_value: float | None
    best_epoch: int | None
    wait: int
    best_state: dict[str, Tensor] | None
    best_logits: NDArray[np.float32] | None

    def to_bytes(self) -> bytes:
        """``torch.save`` of plain tensors and numbers (loadable with ``weights_only=True``)."""
        doc = {
            "version": FORMAT_VERSION,
            "epoch": self.epoch,
            "steps": self.steps,
            "model": _cpu(self.model),
            "optimizer": _cpu(self.optimizer),
            "scheduler": self.scheduler,
            "rng": _cpu(self.rng),
            "device_type": self.device_type,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_state": None if self.best_state is None else _cpu(self.best_state),
            "best_logits": None
            if self.best_logits is None
            else torch.from_numpy(np.array(self.best_logits, dtype=np.float32)),
        }
        buffer = io.BytesIO()
        torch.save(doc, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Read :meth:`to_bytes`' output (onto the CPU)."""
        doc = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise InvalidInput("is not a checkpoint of this version", field="checkpoint")
        logits = doc["best_logits"]
        return cls(
            epoch=int(doc["epoch"]),
            steps=int(doc["steps"]),
            model=doc["model"],
            optimizer=doc["optimizer"],
            scheduler=doc["scheduler"],
            rng=doc["rng"],
            device_type=str(doc["device_type"]),
            best_value=doc["best_value"],
            best_epoch=doc["best_epoch"],
            wait=int(doc["wait"]),
            best_state=doc["best_state"],
            best_logits=None if logits is None else logits.numpy(),
        )


def _cpu(obj: Any) -> Any:
    """``obj`` with every tensor copied to the CPU (dicts, lists and tuples walked)."""
    if isinstance(obj, Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_cpu(v) for v in obj)
    return obj


def capture(
    epoch: int,
    steps: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    shuffle_gen: torch.Generator,
    *,
    best: tuple[float | None, int | None, int],
    best_state: dict[str, Tensor] | None,
    best_logits: NDArray[np.float32] | None,
) -> Checkpoint:
    """Snapshot the fit now (device copies: no host sync, cheap for the loop's MLPs)."""
    device = shuffle_gen.device
    rng = {"torch": torch.get_rng_state(), "shuffle": shuffle_gen.get_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    best_value, best_epoch, wait = best
    return Checkpoint(
        epoch=epoch,
        steps=steps,
        model={k: v.detach().clone() for k, v in model.state_dict().items()},
        optimizer=copy.deepcopy(optimizer.state_dict()),
        scheduler=None if scheduler is None else copy.deepcopy(scheduler.state_dict()),
        rng=rng,
        device_type=device.type,
        best_value=best_value,
        best_epoch=best_epoch,
        wait=wait,
        best_state=best_state,  # already a private copy (see fit)
        best_logits=best_logits,
    )


def restore(
    checkpoint: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    shuffle_gen: torch.Generator,
) -> None:
    """Load a checkpoint into freshly built training objects (same spec and data shapes)."""
    try:
        model.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise InvalidInput(
            f"does not match the run's model or optimizer: {exc}", field="checkpoint"
        ) from None
    if scheduler is not None and checkpoint.scheduler is not None:
        scheduler.load_state_dict(checkpoint.scheduler)
    device = shuffle_gen.device
    if checkpoint.device_type != device.type:
        return  # another kind of device: its generator states do not apply here
    torch.set_rng_state(checkpoint.rng["torch"])
    shuffle_gen.set_state(checkpoint.rng["shuffle"])
    if device.type == "cuda" and "cuda" in checkpoint.rng:
        torch.cuda.set_rng_state(checkpoint.rng["cuda"], device)
