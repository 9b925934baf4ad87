"""Per-layer training diagnostics measured on the device, for the fit loop to record each epoch.

Nothing here reads a value back to the host: the loop stacks these tensors into its per-batch
buffer (gradient statistics) or its end-of-epoch read-back (dead units), so the batch loop still
never waits on the device. The verdicts drawn from the recorded series live in
:mod:`app.core.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

#: Validation rows in the batch on which dead ReLU units are counted (the first rows).
DEAD_UNIT_ROWS = 1024


def gradient_stats(grads: list[Tensor]) -> list[Tensor]:
    """Per-layer signed gradient sums, then nonzero counts: ``2 * len(grads)`` scalars.

    Divided by each tensor's size (on the host, once per epoch) they give the gradient's mean
    and its fraction of exact zeros. Two small reductions per layer, queued on the device with
    no host sync: the sums, and ``_foreach_norm(ord=0)`` (the L0 "norm" counts nonzero
    entries; one launch on the CPU, one per tensor on CUDA, whose fused kernel covers only
    the 1, 2 and inf norms).

    Examples
    --------
    >>> g = [torch.tensor([[0.0, 1.0], [0.0, -3.0]]), torch.tensor([2.0])]
    >>> [float(t) for t in gradient_stats(g)]
    [-2.0, 2.0, 2.0, 1.0]
    """
    sums = [g.sum() for g in grads]
    nonzero = torch._foreach_norm(grads, 0)
    return [*sums, *nonzero]


@torch.no_grad()
def dead_unit_fractions(
    model: nn.Module, layers: Sequence[tuple[str, nn.Module]], X: Tensor
) -> dict[str, Tensor]:
    """Fraction of the units after each ReLU that output 0 for every row of ``X``, in eval mode.

    A unit that is 0 on a whole batch passes no gradient for any of those rows: it has stopped
    learning ("dead ReLU"). For a convolution a unit is a channel (0 at every position of every
    row). Only ReLUs are measured: smooth activations (GELU, SiLU, tanh) are almost never
    exactly 0, so the count would say nothing about them.

    Parameters
    ----------
    model : nn.Module
        Modules registered in the order they run (an ``nn.Sequential`` such as
        :class:`~app.training.models.MLP`): each ReLU is credited to the last of ``layers``
        registered before it.
    layers : sequence of (str, nn.Module)
        The named weight layers whose diagnostics the loop records (``hidden0``, ...).
    X : Tensor of shape (n_rows, ...)
        The batch, on the model's device (the loop passes the first :data:`DEAD_UNIT_ROWS`
        validation rows).

    Returns
    -------
    dict of str to Tensor
        Layer name to a 0-d tensor on the device; empty when the model has no ReLU or ``X`` has
        no rows.

    Examples
    --------
    >>> from app.training.models import MLP
    >>> _ = torch.manual_seed(0)
    >>> m = MLP(2, (3,), 1, "relu", 0.0)
    >>> _ = m.hidden0.bias.data.copy_(torch.tensor([-100.0, 100.0, 100.0]))
    >>> round(float(dead_unit_fractions(m, m.linear_layers(), torch.randn(8, 2))["hidden0"]), 4)
    0.3333
    """
    if X.shape[0] == 0:
        return {}
    by_id = {id(module): name for name, module in layers}
    out: dict[str, Tensor] = {}

    def hook_for(name: str) -> Callable[[nn.Module, object, Tensor], None]:
        def hook(_module: nn.Module, _inputs: object, h: Tensor) -> None:
            alive = (h > 0).transpose(0, 1).reshape(h.shape[1], -1).any(dim=1)
            out[name] = 1.0 - alive.float().mean()

        return hook

    handles = []
    current: str | None = None
    for module in model.modules():
        if id(module) in by_id:
            current = by_id[id(module)]
        elif isinstance(module, nn.ReLU) and current is not None:
            handles.append(module.register_forward_hook(hook_for(current)))
    if not handles:
        return {}
    was_training = model.training
    model.eval()
    try:
        model(X)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return out
