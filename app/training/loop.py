"""The fit loop: train an MLP from a :class:`~app.training.spec.TrainingSpec` on in-memory arrays.

Built for throughput on a GPU: the data is copied to the device once, each epoch shuffles it with
``torch.randperm`` on the device and slices batches out of the permutation (no ``DataLoader``, no
per-batch host-to-device copies), and nothing in the batch loop waits on the device. Per-batch
quantities (data loss, penalty, each layer's gradient norm) are written into one device buffer
and read back once per epoch (plus a finiteness check every :data:`CHECK_EVERY` batches, so a
diverged run stops within a bounded amount of wasted work).

Task metrics are not computed here: each epoch's validation logits go to the caller's
``metric_fn`` and ``on_epoch_end`` hook, so the service scores them with its own engine.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from app.core._checks import as_float_array, check_consistent_length
from app.errors import InvalidInput
from app.training.checkpoint import Checkpoint, capture, restore
from app.training.diagnostics import DEAD_UNIT_ROWS, dead_unit_fractions, gradient_stats
from app.training.models import MLP, build_loss, build_model, weight_penalty
from app.training.spec import LOOP_MONITORS, TrainingSpec

#: The batch loop checks the loss buffer for NaN/inf every this many batches (one device sync).
CHECK_EVERY = 64
#: Rows per forward pass when scoring validation data and in :func:`predict`.
EVAL_BATCH_SIZE = 16_384

MetricFn = Callable[[NDArray[np.floating[Any]], NDArray[Any]], Mapping[str, float | None]]


class NonFiniteLossError(FloatingPointError):
    """Training diverged: a loss or a gradient became NaN or ±inf.

    Attributes
    ----------
    epoch : int
        0-based epoch.
    batch : int or None
        0-based batch within the epoch; None when the validation loss is the non-finite one.
    layer : str or None
        The Linear layer (``"hidden0"``, ..., ``"output"``) whose weight gradient went
        non-finite first at that batch, in backpropagation order (the output side is
        differentiated first, and a non-finite gradient flows on to every layer below it);
        None if every gradient was finite.
    loss : float
        The loss value at that batch (data loss + penalty for training batches); it may be
        finite when only a gradient overflowed.
    """

    def __init__(self, epoch: int, batch: int | None, layer: str | None, *, loss: float) -> None:
        where = f"batch {batch}" if batch is not None else "the validation pass"
        what = f"loss ({loss!r})" if not math.isfinite(loss) else f"gradient (loss {loss!r})"
        msg = f"non-finite {what} at epoch {epoch}, {where}"
        if layer is not None:
            msg += f"; first non-finite gradient in layer {layer!r}"
        msg += (
            ": training diverged; lower the learning rate, set grad_clip_norm, "
            "or standardize the features"
        )
        super().__init__(msg)
        self.epoch, self.batch, self.layer, self.loss = epoch, batch, layer, loss

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of where training diverged (the loss as a string if not finite)."""
        loss: float | str = self.loss if math.isfinite(self.loss) else repr(self.loss)
        return {
            "kind": "non_finite",
            "epoch": self.epoch,
            "batch": self.batch,
            "layer": self.layer,
            "loss": loss,
        }


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """What one epoch did; passed to ``on_epoch_end`` and kept in :attr:`FitResult.history`.

    Attributes
    ----------
    epoch : int
        0-based.
    train_loss, train_penalty, train_total : float
        Mean data loss, mean penalty ``λ₁Σ|w| + λ₂Σw²`` and their sum over the epoch's batches,
        each batch weighted by its number of rows. Measured while training (dropout on, weights
        moving), i.e. the quantity the optimizer minimized, not a re-evaluation at epoch end.
    val_loss : float
        Data loss (no penalty) of the end-of-epoch weights on the whole validation set, in eval
        mode.
    metrics : dict of str to float or None
        What ``metric_fn`` returned; NaN/inf values are stored as None (undefined), never NaN.
    lr : float
        The learning rate used during this epoch (the scheduler steps after it).
    epoch_time_s, train_time_s : float
        Wall time of the whole epoch (training, validation, metrics) and of the training pass.
    samples_per_s : float
        Training rows per second of the training pass.
    n_batches : int
    grad_norms : dict of str to float
        Per Linear layer (``hidden0``, ..., ``output``): the L2 norm of the weight gradient,
        averaged over the epoch's batches (measured before gradient clipping).
    grad_norms_max : dict of str to float
        The largest of those per-batch norms.
    update_ratios : dict of str to float
        ``‖w_end - w_start‖ / ‖w_start‖`` per layer over the epoch (0 when ``w_start`` is 0).
    grad_means, grad_zero_fracs : dict of str to float
        Per layer: the mean entry of the weight gradient and its fraction of exact zeros, each
        averaged over the epoch's batches (before clipping, like ``grad_norms``).
    dead_fracs : dict of str to float
        Per ReLU hidden layer: the fraction of units that output 0 for every row of the first
        :data:`~app.training.diagnostics.DEAD_UNIT_ROWS` validation rows (end-of-epoch weights,
        eval mode). Empty for other activations.
    is_best : bool
        This epoch improved the monitored quantity (early stopping's ``monitor``, else
        ``val_loss``).
    val_logits : ndarray or None
        Validation outputs of the end-of-epoch weights: shape (n_val,) for binary (logits) and
        regression (values), (n_val, n_classes) for multiclass. None in ``history`` (kept only in
        the record handed to ``on_epoch_end``) so a long run does not hold every epoch's outputs.
    """

    epoch: int
    train_loss: float
    train_penalty: float
    train_total: float
    val_loss: float
    metrics: dict[str, float | None]
    lr: float
    epoch_time_s: float
    train_time_s: float
    samples_per_s: float
    n_batches: int
    grad_norms: dict[str, float]
    grad_norms_max: dict[str, float]
    update_ratios: dict[str, float]
    is_best: bool
    val_logits: NDArray[np.float32] | None = None
    grad_means: dict[str, float] = field(default_factory=dict)
    grad_zero_fracs: dict[str, float] = field(default_factory=dict)
    dead_fracs: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FitResult:
    """The outcome of :func:`fit`.

    Attributes
    ----------
    state_dict : dict of str to Tensor
        Final weights, on the CPU: the best epoch's when early stopping restored them.
    history : list of EpochRecord
        One per completed epoch (``val_logits`` dropped).
    best_epoch : int or None
        0-based epoch with the best monitored value; None if no epoch completed.
    best_value : float or None
    monitor : str
        The quantity that defined "best" (``val_loss`` without early stopping).
    val_logits : ndarray
        Validation outputs of the returned weights (shapes as in :class:`EpochRecord`).
    device : str
        Where training ran, e.g. ``"cpu"``, ``"cuda:0"``.
    cancelled : bool
        ``should_stop()`` returned True; the weights are those at that batch boundary (or the
        best epoch's, when early stopping restores them).
    stopped_early : bool
    restored_best : bool
        The returned weights are the best epoch's.
    epochs_completed, steps : int
        Full epochs run and optimizer steps taken (a cancelled epoch's steps included).
    total_time_s : float
    n_features, n_outputs : int
        What :func:`load_model` needs besides the spec.
    """

    state_dict: dict[str, Tensor]
    history: list[EpochRecord]
    best_epoch: int | None
    best_value: float | None
    monitor: str
    val_logits: NDArray[np.float32]
    device: str
    cancelled: bool
    stopped_early: bool
    restored_best: bool
    epochs_completed: int
    steps: int
    total_time_s: float
    n_features: int
    n_outputs: int
    #: With ``checkpoint_on_stop``, a stopped fit's state at the start of the epoch it stopped
    #: in (resume it with ``fit(..., resume=...)``); None otherwise.
    checkpoint: Checkpoint | None = None


# -- setup --------------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    """``auto`` → ``cuda`` if available, else ``cpu``; ``cuda`` without a GPU is an input error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("is 'cuda' but no CUDA device is available", field="device")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs (all devices), as Lightning does.

    Global state on purpose: weight initialization and dropout draw from torch's default
    generator, and a user ``metric_fn`` may draw from numpy's. The shuffles use their own
    generator (see :func:`fit`).
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global RNG is what "seed numpy" means
    torch.manual_seed(seed)


def _targets(spec: TrainingSpec, y: ArrayLike, n: int, field: str) -> NDArray[Any]:
    """Validated targets in their natural numpy form: float64 values, or int64 labels."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # a column vector is a common and harmless shape for one target
    vals = as_float_array(arr, field, ndim=1, dtype=np.float64)
    check_consistent_length(n, **{field: vals})
    if spec.task == "regression":
        return vals
    bad = vals != np.round(vals)
    bad |= (vals < 0) | (
        (vals > 1) if spec.task == "binary" else (vals >= (spec.n_classes or np.inf))
    )
    if bad.any():
        i = int(np.argmax(bad))
        want = "0 or 1" if spec.task == "binary" else f"class indices in [0, {spec.n_classes})"
        raise InvalidInput(f"{field}[{i}] is {vals[i]!r}: labels must be {want}", field=field)
    return vals.astype(np.int64)


def _to_device(arr: NDArray[Any], dtype: torch.dtype, device: torch.device) -> Tensor:
    # from_numpy shares memory (no copy on CPU) but warns on read-only arrays: copy those
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, order="C")
    return torch.from_numpy(arr).to(device=device, dtype=dtype)


def _optimizer(spec: TrainingSpec, model: MLP, device: torch.device) -> torch.optim.Optimizer:
    weights = [layer.weight for _, layer in model.linear_layers()]
    others = [p for p in model.parameters() if all(p is not w for w in weights)]
    wd = spec.regularization.weight_decay
    # biases are not decayed, for the same reason they are not penalized (see RegularizationSpec)
    groups: list[dict[str, Any]] = [
        {"params": weights, "weight_decay": wd},
        {"params": others, "weight_decay": 0.0},
    ]
    opt = spec.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)
    # on CUDA the fused kernel does the whole Adam update in one launch instead of one per
    # foreach op; the CPU keeps PyTorch's default implementation
    fused = True if device.type == "cuda" else None
    cls = torch.optim.Adam if opt.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=opt.lr, fused=fused)


def _scheduler(
    spec: TrainingSpec, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    s = spec.schedule
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=spec.epochs, eta_min=s.min_lr
        )
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    return None


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each batch: every row once, the last batch possibly shorter.

    >>> batch_bounds(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    return [(lo, min(lo + batch_size, n)) for lo in range(0, n, batch_size)]


# -- helpers of the epoch -----------------------------------------------------------------------
def _raise_if_nonfinite(
    rows: NDArray[np.floating[Any]], first: int, epoch: int, names: list[str]
) -> None:
    """``rows`` are batches ``first, first + 1, ...``: columns loss, penalty, one gradient norm
    per layer of ``names`` (input side first), then further per-layer statistics."""
    bad = ~np.isfinite(rows)
    if not bad.any():
        return
    r = int(np.argmax(bad.any(axis=1)))
    layer_bad = bad[r, 2 : 2 + len(names)]
    # backpropagation reaches the output layer first: the last bad column is where it started
    layer = names[len(names) - 1 - int(np.argmax(layer_bad[::-1]))] if layer_bad.any() else None
    raise NonFiniteLossError(epoch, first + r, layer, loss=float(rows[r, 0] + rows[r, 1]))


@torch.no_grad()
def _outputs(model: nn.Module, X: Tensor, batch_size: int = EVAL_BATCH_SIZE) -> Tensor:
    """Eval-mode outputs of shape (n, n_outputs), in batches to bound activation memory."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(X[lo:hi]) for lo, hi in batch_bounds(X.shape[0], batch_size)])
    finally:
        model.train(was_training)


def _logits_numpy(out: Tensor, task: str) -> NDArray[np.float32]:
    out = out if task == "multiclass" else out[:, 0]
    return out.detach().to("cpu", torch.float32).numpy()


def _metrics(
    metric_fn: MetricFn | None, logits: NDArray[Any], y: NDArray[Any]
) -> dict[str, float | None]:
    if metric_fn is None:
        return {}
    raw = metric_fn(logits, y)
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"metric_fn must return a mapping of name to float, got {type(raw).__name__}"
        )
    out: dict[str, float | None] = {}
    for key, value in raw.items():
        x = None if value is None else float(value)
        # an undefined metric (one class in the batch, ...) is reported as null, never NaN
        out[str(key)] = x if x is not None and math.isfinite(x) else None
    return out


def _improved(value: float | None, best: float | None, mode: str, min_delta: float) -> bool:
    if value is None:
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


# -- the loop -----------------------------------------------------------------------------------
def fit(
    spec: TrainingSpec,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    *,
    metric_fn: MetricFn | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    checkpoint_on_stop: bool = False,
) -> FitResult:
    """Train the spec's MLP; return its weights, per-epoch history and validation outputs.

    Parameters
    ----------
    spec : TrainingSpec
    X_train : array-like of shape (n_train, n_features)
    y_train : array-like of shape (n_train,)
        0/1 labels (binary), class indices in ``[0, n_classes)`` (multiclass), values
        (regression). A single column of shape (n, 1) is accepted.
    X_val : array-like of shape (n_val, n_features)
    y_val : array-like of shape (n_val,)
    metric_fn : callable, optional
        ``metric_fn(val_logits, y_val) -> {name: value}``, called once per epoch with numpy
        arrays (logits as in :attr:`EpochRecord.val_logits`; labels as int64, regression
        targets as float64). Its keys may be monitored by early stopping.
    on_epoch_end : callable, optional
        Receives each :class:`EpochRecord` (with ``val_logits``), e.g. to persist metrics.
    should_stop : callable, optional
        Polled before every batch; when it returns True the run stops at that batch boundary
        and the result says ``cancelled``. It is called once per batch, so it must be cheap
        (read a flag, not a database).
    resume : Checkpoint, optional
        Go on from :attr:`FitResult.checkpoint` of an earlier, stopped fit of the same spec and
        data: training starts at epoch ``resume.epoch`` (records keep their absolute epoch
        numbers; ``history`` holds the new epochs only, ``epochs_completed`` and ``steps``
        count all of them). On the same device type the result equals an uninterrupted fit.
    checkpoint_on_stop : bool
        Snapshot the state at the start of every epoch (device copies of model and optimizer
        state), so a fit stopped by ``should_stop`` returns a resumable checkpoint; the stopped
        epoch's partial work is dropped and redone on resume.

    Returns
    -------
    FitResult

    Raises
    ------
    InvalidInput
        Bad arrays (non-finite, wrong shapes, labels out of range), ``device="cuda"`` without a
        GPU, or an early-stopping ``monitor`` that neither the loop nor ``metric_fn`` provides.
    NonFiniteLossError
        A training or validation loss, or a weight gradient, became NaN or ±inf.

    Notes
    -----
    Seeds Python's, numpy's and torch's global RNGs with ``spec.seed``; shuffles draw from a
    separate generator on the training device seeded the same way, so a run is reproducible on
    the same hardware and software.
    """
    t_start = time.perf_counter()
    Xtr = as_float_array(X_train, "X_train", ndim=2, dtype=np.float32)
    Xva = as_float_array(X_val, "X_val", ndim=2, dtype=np.float32)
    if Xva.shape[1] != Xtr.shape[1]:
        raise InvalidInput(
            f"has {Xva.shape[1]} features but X_train has {Xtr.shape[1]}", field="X_val"
        )
    ytr = _targets(spec, y_train, Xtr.shape[0], "y_train")
    yva = _targets(spec, y_val, Xva.shape[0], "y_val")
    n_outputs = spec.n_outputs or max(2, int(max(ytr.max(), yva.max())) + 1)
    es = spec.early_stopping
    monitor, mode = (es.monitor, es.mode or "min") if es is not None else ("val_loss", "min")
    if monitor not in LOOP_MONITORS and metric_fn is None:
        raise InvalidInput(
            f"is {monitor!r}, a metric, but no metric_fn computes metrics",
            field="early_stopping.monitor",
        )

    device = resolve_device(spec.device)
    seed_everything(spec.seed)
    model = build_model(spec, Xtr.shape[1], n_outputs).to(device)
    target_dtype = torch.int64 if spec.task == "multiclass" else torch.float32
    X_t, y_t = _to_device(Xtr, torch.float32, device), _to_device(ytr, target_dtype, device)
    X_v, y_v = _to_device(Xva, torch.float32, device), _to_device(yva, target_dtype, device)
    loss_fn = build_loss(spec.loss, device)
    optimizer = _optimizer(spec, model, device)
    scheduler = _scheduler(spec, optimizer)
    shuffle_gen = torch.Generator(device=device)
    shuffle_gen.manual_seed(spec.seed)

    layers = model.linear_layers()
    names = [name for name, _ in layers]
    weights = [layer.weight for _, layer in layers]
    l1, l2 = spec.regularization.l1, spec.regularization.l2
    params = list(model.parameters())
    clip = spec.grad_clip_norm
    n = Xtr.shape[0]
    bounds = batch_bounds(n, spec.batch_size)
    sizes = np.array([hi - lo for lo, hi in bounds], dtype=np.float64)
    # one row per batch: data loss, penalty, each layer's weight-gradient norm, then each
    # layer's gradient sum and nonzero count (see app.training.diagnostics)
    n_layers = len(layers)
    stats = torch.empty((len(bounds), 2 + 3 * n_layers), device=device)
    numels = np.array([w.numel() for w in weights], dtype=np.float64)
    X_dead = X_v[:DEAD_UNIT_ROWS]
    zero = torch.zeros((), device=device)

    history: list[EpochRecord] = []
    best_value: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, Tensor] | None = None
    best_logits: NDArray[np.float32] | None = None
    last_logits: NDArray[np.float32] | None = None
    cancelled = stopped_early = False
    steps = wait = start_epoch = 0
    snapshot: Checkpoint | None = None
    if resume is not None:
        if not 0 <= resume.epoch < spec.epochs:
            raise InvalidInput(f"is at epoch {resume.epoch} of {spec.epochs}", field="checkpoint")
        restore(resume, model, optimizer, scheduler, shuffle_gen)
        start_epoch, steps, wait = resume.epoch, resume.steps, resume.wait
        best_value, best_epoch = resume.best_value, resume.best_epoch
        best_state, best_logits = resume.best_state, resume.best_logits

    for epoch in range(start_epoch, spec.epochs):
        if checkpoint_on_stop:
            snapshot = capture(
                epoch,
                steps,
                model,
                optimizer,
                scheduler,
                shuffle_gen,
                best=(best_value, best_epoch, wait),
                best_state=best_state,
                best_logits=best_logits,
            )
        t0 = time.perf_counter()
        model.train()
        w_start = [w.detach().clone() for w in weights]
        perm = torch.randperm(n, generator=shuffle_gen, device=device)
        checked = 0
        for b, (lo, hi) in enumerate(bounds):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            idx = perm[lo:hi]
            out = model(X_t.index_select(0, idx))
            data_loss = loss_fn(out, y_t.index_select(0, idx))
            pen = weight_penalty(weights, l1=l1, l2=l2)
            total = data_loss if pen is None else data_loss + pen
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            # torch._foreach_norm: the per-tensor norms in one fused launch (what clip_grad_norm_
            # uses); written straight into this batch's row, with no host sync.
            grads: list[Tensor] = [w.grad for w in weights]  # type: ignore[misc]
            norms = torch._foreach_norm(grads)
            pen_value = zero if pen is None else pen.detach()
            extra = gradient_stats(grads)
            torch.stack([data_loss.detach(), pen_value, *norms, *extra], out=stats[b])
            if clip is not None:
                nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            steps += 1
            if b + 1 - checked >= CHECK_EVERY:
                _raise_if_nonfinite(stats[checked : b + 1].cpu().numpy(), checked, epoch, names)
                checked = b + 1
        if cancelled:
            # never hand back weights that a NaN step of this partial epoch corrupted
            _raise_if_nonfinite(stats[checked:b].cpu().numpy(), checked, epoch, names)
            break

        rows = stats.cpu().numpy().astype(np.float64)  # the epoch's one read-back of the buffer
        _raise_if_nonfinite(rows[checked:], checked, epoch, names)
        with torch.no_grad():
            moved = torch.stack(
                [torch.linalg.vector_norm(w - w0) for w, w0 in zip(weights, w_start, strict=True)]
            )
            start = torch.stack([torch.linalg.vector_norm(w0) for w0 in w_start])
            ratios_t = torch.where(start > 0, moved / start, torch.zeros_like(start))
            dead_t = dead_unit_fractions(model, layers, X_dead)
            # ratios and dead-unit fractions come back in one read
            both = torch.cat([ratios_t, *(v.reshape(1) for v in dead_t.values())]).tolist()
            ratios, dead = both[:n_layers], dict(zip(dead_t, both[n_layers:], strict=True))
        train_time = time.perf_counter() - t0

        val_out = _outputs(model, X_v)
        val_loss = float(loss_fn(val_out, y_v))
        if not math.isfinite(val_loss):
            raise NonFiniteLossError(epoch, None, None, loss=val_loss)
        last_logits = _logits_numpy(val_out, spec.task)
        metrics = _metrics(metric_fn, last_logits, yva)
        train_loss = float(rows[:, 0] @ sizes / n)
        train_penalty = float(rows[:, 1] @ sizes / n)
        loop_values = {
            "val_loss": val_loss,
            "train_loss": train_loss,
            "train_total": train_loss + train_penalty,
        }
        if monitor in loop_values:
            value: float | None = loop_values[monitor]
        elif monitor in metrics:
            value = metrics[monitor]
        else:
            raise InvalidInput(
                f"is {monitor!r} but metric_fn returned {sorted(metrics)}",
                field="early_stopping.monitor",
            )
        is_best = _improved(value, best_value, mode, es.min_delta if es is not None else 0.0)
        if is_best:
            best_value, best_epoch, best_logits = value, epoch, last_logits
            if es is not None and es.restore_best:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            wait = 0
        else:
            wait += 1

        norm_cols = rows[:, 2 : 2 + n_layers]
        sum_cols = rows[:, 2 + n_layers : 2 + 2 * n_layers]
        nonzero_cols = rows[:, 2 + 2 * n_layers :]
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_penalty=train_penalty,
            train_total=train_loss + train_penalty,
            val_loss=val_loss,
            metrics=metrics,
            lr=float(optimizer.param_groups[0]["lr"]),
            epoch_time_s=time.perf_counter() - t0,
            train_time_s=train_time,
            samples_per_s=n / max(train_time, 1e-9),  # finite even on a coarse clock
            n_batches=len(bounds),
            grad_norms=dict(zip(names, norm_cols.mean(axis=0).tolist(), strict=True)),
            grad_norms_max=dict(zip(names, norm_cols.max(axis=0).tolist(), strict=True)),
            update_ratios=dict(zip(names, ratios, strict=True)),
            is_best=is_best,
            val_logits=last_logits,
            grad_means=dict(zip(names, (sum_cols / numels).mean(axis=0).tolist(), strict=True)),
            grad_zero_fracs=dict(
                zip(names, (1.0 - nonzero_cols / numels).mean(axis=0).tolist(), strict=True)
            ),
            dead_fracs=dead,
        )
        if on_epoch_end is not None:
            on_epoch_end(record)
        history.append(replace(record, val_logits=None))
        if scheduler is not None:
            scheduler.step()
        if es is not None and wait >= es.patience:
            stopped_early = True
            break

    restored = best_state is not None
    if best_state is not None:
        model.load_state_dict(best_state)
        final_logits = best_logits
    elif cancelled or last_logits is None:
        # weights moved since the last validation pass (or there was none): score them now
        final_logits = _logits_numpy(_outputs(model, X_v), spec.task)
    else:
        final_logits = last_logits
    assert final_logits is not None  # every branch above sets it
    return FitResult(
        state_dict={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        history=history,
        best_epoch=best_epoch,
        best_value=best_value,
        monitor=monitor,
        val_logits=final_logits,
        device=str(X_t.device),
        cancelled=cancelled,
        stopped_early=stopped_early,
        restored_best=restored,
        epochs_completed=start_epoch + len(history),
        steps=steps,
        total_time_s=time.perf_counter() - t_start,
        n_features=Xtr.shape[1],
        n_outputs=n_outputs,
        checkpoint=snapshot if cancelled else None,
    )


# -- inference ----------------------------------------------------------------------------------
def load_model(spec: TrainingSpec, n_features: int, state_dict: Mapping[str, Tensor]) -> MLP:
    """Rebuild the spec's MLP on the CPU from saved weights, in eval mode.

    The number of outputs is read from the state dict (``output.weight``), so a multiclass spec
    whose ``n_classes`` was inferred at fit time loads too.

    Raises
    ------
    InvalidInput
        The weights do not fit the spec's architecture or ``n_features`` (field ``state_dict``).
    """
    out_w = state_dict.get("output.weight")
    if out_w is None:
        raise InvalidInput("has no 'output.weight': not an MLP of this package", field="state_dict")
    model = build_model(spec, n_features, int(out_w.shape[0]))
    try:
        model.load_state_dict(dict(state_dict))
    except RuntimeError as exc:
        raise InvalidInput(f"does not match the spec's model: {exc}", field="state_dict") from None
    return model.eval()


def predict(
    model_or_state: nn.Module | Mapping[str, Tensor],
    spec: TrainingSpec,
    X: ArrayLike,
    *,
    batch_size: int = EVAL_BATCH_SIZE,
) -> NDArray[np.float32]:
    """Outputs of a trained model: logits (binary, multiclass) or values (regression).

    Parameters
    ----------
    model_or_state : nn.Module or state dict
        A model (used on its own device) or the weights of :attr:`FitResult.state_dict` (run on
        the CPU).
    spec : TrainingSpec
    X : array-like of shape (n_samples, n_features)
    batch_size : int
        Rows per forward pass.

    Returns
    -------
    ndarray of shape (n_samples,), or (n_samples, n_classes) for multiclass
    """
    Xa = as_float_array(X, "X", ndim=2, dtype=np.float32)
    if isinstance(model_or_state, nn.Module):
        model = model_or_state
    else:
        model = load_model(spec, Xa.shape[1], model_or_state)
    device = next(model.parameters()).device
    out = _outputs(model, _to_device(Xa, torch.float32, device), batch_size)
    return _logits_numpy(out, spec.task)
