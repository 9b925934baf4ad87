"""What a training run is: plain frozen dataclasses, validated on construction.

The API layer maps its pydantic request schema onto :class:`TrainingSpec`; the worker stores
:meth:`TrainingSpec.to_dict` with the run and rebuilds the spec with :meth:`TrainingSpec.from_dict`.
Every range check raises :class:`app.errors.InvalidInput` naming the dotted field
(``model.hidden``, ``optimizer.lr``, ...), so the API can point at the offending request field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Any, Literal, get_args

import numpy as np

from app.errors import InvalidInput

Task = Literal["binary", "multiclass", "regression"]
Activation = Literal["relu", "gelu", "tanh", "silu"]
LossName = Literal["bce_with_logits", "cross_entropy", "mse", "huber", "focal"]
OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["none", "cosine", "step"]
Mode = Literal["min", "max"]
Device = Literal["auto", "cpu", "cuda"]

#: The loss used when ``LossSpec.name`` is left out, and the losses each task accepts.
DEFAULT_LOSS: dict[str, LossName] = {
    "binary": "bce_with_logits",
    "multiclass": "cross_entropy",
    "regression": "mse",
}
TASK_LOSSES: dict[str, frozenset[str]] = {
    "binary": frozenset({"bce_with_logits", "focal"}),
    "multiclass": frozenset({"cross_entropy"}),
    "regression": frozenset({"mse", "huber"}),
}
#: Quantities the loop itself produces; anything else must come from the caller's ``metric_fn``.
LOOP_MONITORS: dict[str, Mode] = {"val_loss": "min", "train_loss": "min", "train_total": "min"}

# Bounds that stop a typo (hidden=[1_000_000]) from exhausting the worker, not tuning advice.
MAX_WIDTH = 65_536
MAX_DEPTH = 64
MAX_BATCH_SIZE = 1 << 24
MAX_EPOCHS = 100_000
MAX_SEED = 2**32 - 1  # numpy's legacy global seed accepts no more


# -- checks -------------------------------------------------------------------------------------
def _real(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    # bool is an int subclass: dropout=True is a client bug, not the number 1
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise InvalidInput(f"is {value!r}: must be a real number", field=name)
    x = float(value)
    lo_ok = low is None or (x > low if low_open else x >= low)
    hi_ok = high is None or (x < high if high_open else x <= high)
    if not np.isfinite(x) or not (lo_ok and hi_ok):
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise InvalidInput(f"is {value!r}: must be finite and in {lo}, {hi}", field=name)
    return x


def _int(value: object, name: str, *, low: int, high: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise InvalidInput(f"is {value!r}: must be an integer", field=name)
    if not low <= int(value) <= high:
        raise InvalidInput(f"is {value!r}: must be in [{low}, {high}]", field=name)
    return int(value)


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput(f"is {value!r}: must be one of {list(allowed)}", field=name)


def _flag(value: object, name: str) -> None:
    if not isinstance(value, bool | np.bool_):
        raise InvalidInput(f"is {value!r}: must be true or false", field=name)


def _set(obj: object, name: str, value: object) -> None:
    # frozen dataclasses: normalizing a field (list -> tuple, int -> float) in __post_init__
    object.__setattr__(obj, name, value)


# -- the parts of a run -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A multilayer perceptron.

    Parameters
    ----------
    hidden : tuple of int, default (64, 64)
        Widths of the hidden layers, input side first; ``()`` is a linear model.
    activation : {"relu", "gelu", "tanh", "silu"}, default "relu"
    dropout : float in [0, 1), default 0.0
        Dropout probability after every hidden activation (not on the input or the output).
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: Activation = "relu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.hidden, str | bytes) or not isinstance(self.hidden, tuple | list):
            raise InvalidInput(
                f"is {self.hidden!r}: must be a list of widths", field="model.hidden"
            )
        if len(self.hidden) > MAX_DEPTH:
            raise InvalidInput(
                f"has {len(self.hidden)} layers: at most {MAX_DEPTH}", field="model.hidden"
            )
        widths = tuple(
            _int(w, f"model.hidden[{i}]", low=1, high=MAX_WIDTH) for i, w in enumerate(self.hidden)
        )
        _set(self, "hidden", widths)
        _choice(self.activation, "model.activation", get_args(Activation))
        _set(
            self, "dropout", _real(self.dropout, "model.dropout", low=0.0, high=1.0, high_open=True)
        )


# -- image models (model.type "cnn") ------------------------------------------------------------
Pooling = Literal["max", "avg", "none"]
HeadPooling = Literal["flatten", "avg"]
MAX_KERNEL = 31
MAX_POOL = 8
MAX_IMAGE_SIDE = 8192


@dataclass(frozen=True, slots=True)
class ConvBlockSpec:
    """One convolution block: Conv2d ("same" padding) → [BatchNorm2d] → activation → pooling.

    Parameters
    ----------
    channels : int in [1, 65536], default 16
        Output channels of the convolution.
    kernel : odd int in [1, 31], default 3
    pool : {"max", "avg", "none"}, default "max"
    pool_size : int in [1, 8], default 2
        Pooling window and stride (``H -> H // pool_size``).
    """

    channels: int = 16
    kernel: int = 3
    pool: Pooling = "max"
    pool_size: int = 2

    def __post_init__(self) -> None:
        # "model.blocks[]" is completed with the block's index by CNNSpec
        _int(self.channels, "model.blocks[].channels", low=1, high=MAX_WIDTH)
        _int(self.kernel, "model.blocks[].kernel", low=1, high=MAX_KERNEL)
        if self.kernel % 2 == 0:
            raise InvalidInput(
                f"is {self.kernel}: must be odd (same padding)", field="model.blocks[].kernel"
            )
        _choice(self.pool, "model.blocks[].pool", get_args(Pooling))
        _int(self.pool_size, "model.blocks[].pool_size", low=1, high=MAX_POOL)


@dataclass(frozen=True, slots=True)
class CNNSpec:
    """A small convolutional network for images of shape C×H×W (``model: {type: "cnn"}``).

    Conv blocks (:class:`ConvBlockSpec`), then the head: the last feature maps flattened (or
    averaged over space with ``head_pool="avg"``), hidden Linear layers of widths ``head`` with
    the activation and dropout, and the output layer. Grad-CAM looks at the blocks' activations.

    Parameters
    ----------
    type : "cnn"
    blocks : tuple of ConvBlockSpec (or mappings), default two blocks of 16 and 32 channels
    head : tuple of int, default (64,)
        Hidden widths of the head; ``()`` puts the output layer right after the pooling.
    head_pool : {"flatten", "avg"}, default "flatten"
    activation : {"relu", "gelu", "tanh", "silu"}, default "relu"
    dropout : float in [0, 1), default 0.0
        Dropout after each hidden activation of the head.
    batch_norm : bool, default False
        BatchNorm2d after every convolution.
    input_norm : bool, default True
        Standardize each input channel by the training images' statistics (a BatchNorm2d
        without affine parameters in front: batch statistics while training, their cumulative
        average afterwards), so pixels may come in any scale (0..255, 0..1, ...).
    input_shape : (C, H, W) or None
        Filled from the data when the run is created; a run spec stores it.

    Examples
    --------
    >>> CNNSpec(blocks=[{"channels": 8}], input_shape=[1, 8, 8]).blocks[0].kernel
    3
    >>> CNNSpec(blocks=[{"channels": 8, "pool_size": 4}] * 2, input_shape=(1, 8, 8))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    app.errors.InvalidInput: model.blocks[1].pool_size: shrinks the 2×2 maps to nothing ...
    """

    type: Literal["cnn"] = "cnn"
    blocks: tuple[ConvBlockSpec, ...] = (ConvBlockSpec(16), ConvBlockSpec(32))
    head: tuple[int, ...] = (64,)
    head_pool: HeadPooling = "flatten"
    activation: Activation = "relu"
    dropout: float = 0.0
    batch_norm: bool = False
    input_norm: bool = True
    input_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        _choice(self.type, "model.type", ("cnn",))
        blocks = self.blocks
        if isinstance(blocks, str | bytes) or not isinstance(blocks, tuple | list) or not blocks:
            raise InvalidInput(
                f"is {blocks!r}: must be a list of conv blocks", field="model.blocks"
            )
        if len(blocks) > MAX_DEPTH:
            raise InvalidInput(
                f"has {len(blocks)} blocks: at most {MAX_DEPTH}", field="model.blocks"
            )
        _set(self, "blocks", tuple(_conv_block(b, i) for i, b in enumerate(blocks)))
        head = self.head
        if isinstance(head, str | bytes) or not isinstance(head, tuple | list):
            raise InvalidInput(f"is {head!r}: must be a list of widths", field="model.head")
        if len(head) > MAX_DEPTH:
            raise InvalidInput(f"has {len(head)} layers: at most {MAX_DEPTH}", field="model.head")
        _set(
            self,
            "head",
            tuple(_int(w, f"model.head[{i}]", low=1, high=MAX_WIDTH) for i, w in enumerate(head)),
        )
        _choice(self.head_pool, "model.head_pool", get_args(HeadPooling))
        _choice(self.activation, "model.activation", get_args(Activation))
        _set(
            self, "dropout", _real(self.dropout, "model.dropout", low=0.0, high=1.0, high_open=True)
        )
        _flag(self.batch_norm, "model.batch_norm")
        _flag(self.input_norm, "model.input_norm")
        if self.input_shape is not None:
            shape = self.input_shape
            if (
                isinstance(shape, str | bytes)
                or not isinstance(shape, tuple | list)
                or len(shape) != 3
            ):
                raise InvalidInput(f"is {shape!r}: must be [C, H, W]", field="model.input_shape")
            c = _int(shape[0], "model.input_shape[0]", low=1, high=MAX_WIDTH)
            h = _int(shape[1], "model.input_shape[1]", low=1, high=MAX_IMAGE_SIDE)
            w = _int(shape[2], "model.input_shape[2]", low=1, high=MAX_IMAGE_SIDE)
            _set(self, "input_shape", (c, h, w))
            self.feature_shape()  # the pooling must leave every block something to look at

    def feature_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) after the last block; needs ``input_shape``."""
        if self.input_shape is None:
            raise ValueError("the input shape is not known yet")
        _, h, w = self.input_shape
        for i, b in enumerate(self.blocks):
            if b.pool != "none":
                if h // b.pool_size == 0 or w // b.pool_size == 0:
                    raise InvalidInput(
                        f"shrinks the {h}×{w} maps to nothing (input "
                        f"{'×'.join(map(str, self.input_shape))}); use fewer or smaller pools",
                        field=f"model.blocks[{i}].pool_size",
                    )
                h, w = h // b.pool_size, w // b.pool_size
        return self.blocks[-1].channels, h, w

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any]) -> CNNSpec:
        """Build from parsed JSON, refusing unknown keys (naming ``model.<key>``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in value:
            if key not in known:
                raise InvalidInput("is not an option of a cnn model", field=f"model.{key}")
        return cls(**{k: v for k, v in value.items() if v is not None})


def _conv_block(value: object, i: int) -> ConvBlockSpec:
    prefix = f"model.blocks[{i}]"
    try:
        if isinstance(value, ConvBlockSpec):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInput(f"is {value!r}: must be a mapping", field="model.blocks[]")
        known = {f.name for f in dataclasses.fields(ConvBlockSpec)}
        for key in value:
            if key not in known:
                raise InvalidInput(
                    "is not an option of a conv block", field=f"model.blocks[].{key}"
                )
        return ConvBlockSpec(**{k: v for k, v in value.items() if v is not None})
    except InvalidInput as exc:
        field_name = (exc.field or "model.blocks[]").replace("model.blocks[]", prefix)
        raise InvalidInput(exc.detail, field=field_name) from None


def model_from_mapping(value: Mapping[str, Any]) -> ModelSpec | CNNSpec:
    """``model`` of a run spec: ``type`` "mlp" (the default) or "cnn"."""
    kind = value.get("type", "mlp")
    if kind == "cnn":
        return CNNSpec.from_mapping(value)
    if kind != "mlp":
        raise InvalidInput(f"is {kind!r}: must be one of ['mlp', 'cnn']", field="model.type")
    rest = {k: v for k, v in value.items() if k != "type"}
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    for key in rest:
        if key not in known:
            raise InvalidInput("is not a training option", field=f"model.{key}")
    return ModelSpec(**rest)


@dataclass(frozen=True, slots=True)
class LossSpec:
    """The data loss and its parameters.

    Parameters
    ----------
    name : {"bce_with_logits", "focal", "cross_entropy", "mse", "huber"} or None
        None picks the task's default: ``bce_with_logits`` (binary), ``cross_entropy``
        (multiclass), ``mse`` (regression). ``focal`` is binary only.
    pos_weight : float > 0, optional
        ``bce_with_logits`` only: weight of the positive term, as in
        ``F.binary_cross_entropy_with_logits(pos_weight=...)``.
    class_weights : tuple of float >= 0, optional
        ``cross_entropy`` only: one weight per class (``F.cross_entropy(weight=...)``; the mean
        is then ``Σ w_{y_i} l_i / Σ w_{y_i}``).
    label_smoothing : float in [0, 1), default 0.0
        ``cross_entropy`` only.
    delta : float > 0, default 1.0
        ``huber`` only: quadratic below ``delta``, linear above (``F.huber_loss``).
    gamma : float >= 0, default 2.0
        ``focal`` only: focusing exponent of ``(1 - p_t)**gamma``.
    alpha : float in [0, 1] or None, default 0.25
        ``focal`` only: weight of the positive class (``torchvision.ops.sigmoid_focal_loss``);
        None for no class weighting.
    """

    name: LossName | None = None
    pos_weight: float | None = None
    class_weights: tuple[float, ...] | None = None
    label_smoothing: float = 0.0
    delta: float = 1.0
    gamma: float = 2.0
    alpha: float | None = 0.25

    def __post_init__(self) -> None:
        if self.name is not None:
            _choice(self.name, "loss.name", get_args(LossName))
        if self.pos_weight is not None:
            _set(
                self,
                "pos_weight",
                _real(self.pos_weight, "loss.pos_weight", low=0.0, low_open=True),
            )
        if self.class_weights is not None:
            cw = self.class_weights
            if isinstance(cw, str | bytes) or not isinstance(cw, tuple | list) or len(cw) < 2:
                raise InvalidInput(
                    f"is {cw!r}: must be a list of at least two weights", field="loss.class_weights"
                )
            weights = tuple(_real(w, f"loss.class_weights[{i}]", low=0.0) for i, w in enumerate(cw))
            if not any(weights):
                raise InvalidInput("are all zero: nothing to learn", field="loss.class_weights")
            _set(self, "class_weights", weights)
        _set(
            self,
            "label_smoothing",
            _real(self.label_smoothing, "loss.label_smoothing", low=0.0, high=1.0, high_open=True),
        )
        _set(self, "delta", _real(self.delta, "loss.delta", low=0.0, low_open=True))
        _set(self, "gamma", _real(self.gamma, "loss.gamma", low=0.0))
        if self.alpha is not None:
            _set(self, "alpha", _real(self.alpha, "loss.alpha", low=0.0, high=1.0))
        # Parameters that default to "off" must not be set for a loss that would ignore them.
        if self.name is not None:
            if self.pos_weight is not None and self.name != "bce_with_logits":
                raise InvalidInput(
                    f"applies to bce_with_logits only, not {self.name!r}", field="loss.pos_weight"
                )
            for attr, on in (
                ("class_weights", self.class_weights is not None),
                ("label_smoothing", self.label_smoothing > 0),
            ):
                if on and self.name != "cross_entropy":
                    raise InvalidInput(
                        f"applies to cross_entropy only, not {self.name!r}", field=f"loss.{attr}"
                    )


@dataclass(frozen=True, slots=True)
class RegularizationSpec:
    """Parameter penalties.

    ``l1`` and ``l2`` add ``λ₁ Σ|w| + λ₂ Σ w²`` to every batch's mean data loss
    (``L_total = L_data + λ Ω(θ)``; no 1/2 factor, as in :func:`app.core.losses.penalty`). The sums
    run over the weight matrices of the Linear layers only: biases are not penalized, since
    shrinking them only shifts the outputs and does not reduce the model's complexity.

    ``weight_decay`` is the optimizer's alternative, also applied to weights only: decoupled
    (``w ← w - lr·wd·w``) for ``adamw``, the gradient of ``(wd/2) Σ w²`` for ``sgd`` and
    ``adam``. It is not part of the reported penalty.
    """

    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("l1", "l2", "weight_decay"):
            _set(self, name, _real(getattr(self, name), f"regularization.{name}", low=0.0))


@dataclass(frozen=True, slots=True)
class OptimizerSpec:
    """The optimizer.

    Parameters
    ----------
    name : {"sgd", "adam", "adamw"}, default "adam"
    lr : float > 0, default 1e-3
        Initial learning rate.
    momentum : float in [0, 1), default 0.0
        ``sgd`` only.
    nesterov : bool, default False
        ``sgd`` with ``momentum > 0`` only.
    """

    name: OptimizerName = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        _choice(self.name, "optimizer.name", get_args(OptimizerName))
        _set(self, "lr", _real(self.lr, "optimizer.lr", low=0.0, low_open=True))
        _set(
            self,
            "momentum",
            _real(self.momentum, "optimizer.momentum", low=0.0, high=1.0, high_open=True),
        )
        _flag(self.nesterov, "optimizer.nesterov")
        if self.name != "sgd" and self.momentum:
            raise InvalidInput(
                f"applies to sgd only, not {self.name!r}", field="optimizer.momentum"
            )
        if self.nesterov and (self.name != "sgd" or not self.momentum):
            raise InvalidInput("needs optimizer sgd with momentum > 0", field="optimizer.nesterov")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """The learning-rate schedule, stepped once per epoch.

    Parameters
    ----------
    name : {"none", "cosine", "step"}, default "none"
        ``cosine`` anneals from ``lr`` to ``min_lr`` over ``epochs`` (``CosineAnnealingLR``);
        ``step`` multiplies the rate by ``gamma`` every ``step_size`` epochs (``StepLR``).
    step_size : int >= 1, default 10
    gamma : float in (0, 1], default 0.1
    min_lr : float >= 0, default 0.0
    """

    name: ScheduleName = "none"
    step_size: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _choice(self.name, "schedule.name", get_args(ScheduleName))
        _int(self.step_size, "schedule.step_size", low=1, high=MAX_EPOCHS)
        _set(self, "gamma", _real(self.gamma, "schedule.gamma", low=0.0, high=1.0, low_open=True))
        _set(self, "min_lr", _real(self.min_lr, "schedule.min_lr", low=0.0))


@dataclass(frozen=True, slots=True)
class EarlyStoppingSpec:
    """Stop when the monitored quantity stops improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
        ``val_loss``, ``train_loss``, ``train_total``, or a key of the dict returned by the
        ``metric_fn`` passed to :func:`app.training.fit`.
    mode : {"min", "max"} or None
        Whether lower or higher is better. None is allowed only for the loop's own losses
        (``min``); a metric needs it spelled out, since names do not reliably tell (``brier``,
        ``ece`` are lower-is-better). The API layer can fill it from the metric registry.
    patience : int >= 1, default 5
        Stop after this many consecutive epochs without improvement.
    min_delta : float >= 0, default 0.0
        An epoch improves only if it beats the best value by more than this.
    restore_best : bool, default True
        Load the best epoch's weights before returning.
    """

    monitor: str = "val_loss"
    mode: Mode | None = None
    patience: int = 5
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise InvalidInput(
                f"is {self.monitor!r}: must be a metric name", field="early_stopping.monitor"
            )
        if self.mode is None:
            if self.monitor not in LOOP_MONITORS:
                raise InvalidInput(
                    f"is required when monitoring the metric {self.monitor!r}: 'min' or 'max'",
                    field="early_stopping.mode",
                )
            _set(self, "mode", LOOP_MONITORS[self.monitor])
        _choice(self.mode, "early_stopping.mode", get_args(Mode))
        _int(self.patience, "early_stopping.patience", low=1, high=MAX_EPOCHS)
        _set(self, "min_delta", _real(self.min_delta, "early_stopping.min_delta", low=0.0))
        _flag(self.restore_best, "early_stopping.restore_best")


#: Rows and default epochs of sanity mode (the "overfit a tiny subset" check).
SANITY_MIN_ROWS, SANITY_MAX_ROWS = 32, 256
SANITY_EPOCHS = 300


@dataclass(frozen=True, slots=True)
class SanityCheckSpec:
    """Sanity mode: can the model memorize a small subset of its training data?

    The run trains on ``rows`` rows drawn (seeded) from the training split, with dropout, the
    L1/L2 penalties, weight decay, label smoothing and early stopping off, for ``epochs``
    epochs, and is judged pass/fail on its final training loss
    (:func:`app.core.diagnostics.judge_sanity`). A model that cannot overfit 32-256 rows has a
    bug in its data, labels, architecture, loss or optimization, not a generalization problem.

    Parameters
    ----------
    rows : int in [32, 256]
    epochs : int >= 1, default 300
        Replaces the run's ``epochs``.
    """

    rows: int = 64
    epochs: int = SANITY_EPOCHS

    def __post_init__(self) -> None:
        _int(self.rows, "sanity_check.rows", low=SANITY_MIN_ROWS, high=SANITY_MAX_ROWS)
        _int(self.epochs, "sanity_check.epochs", low=1, high=MAX_EPOCHS)


_PARTS: dict[str, type[Any]] = {
    "model": ModelSpec,
    "loss": LossSpec,
    "regularization": RegularizationSpec,
    "optimizer": OptimizerSpec,
    "schedule": ScheduleSpec,
    "early_stopping": EarlyStoppingSpec,
    "sanity_check": SanityCheckSpec,
}
#: Parts that may be None (off).
_OPTIONAL_PARTS = frozenset({"early_stopping", "sanity_check"})


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """Everything that defines a training run; same spec and data give the same run.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
        Binary and regression models have one output unit (a logit / a value); multiclass ``K``.
    model, loss, regularization, optimizer, schedule : the parts above
    batch_size : int >= 1, default 256
    epochs : int >= 1, default 20
        Maximum number of passes over the training data.
    early_stopping : EarlyStoppingSpec or None, default None
        None trains for ``epochs`` and returns the last weights.
    seed : int in [0, 2**32 - 1], default 0
        Seeds weight initialization, dropout and the per-epoch shuffles.
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``auto`` is ``cuda`` when available.
    grad_clip_norm : float > 0 or None
        Clip the global gradient L2 norm (``clip_grad_norm_``) before each step. The gradient
        norms the loop records are measured before clipping (what the loss asked for).
    n_classes : int >= 2 or None
        Multiclass only. None: ``len(loss.class_weights)`` if given, else inferred at fit time
        as the largest label + 1.
    sanity_check : SanityCheckSpec or None, default None
        Sanity mode. Setting it turns dropout, the penalties, weight decay, label smoothing
        and early stopping off and sets ``epochs`` to ``sanity_check.epochs`` here, so the
        stored spec says what actually trained; the caller trains on the subset.

    Examples
    --------
    >>> spec = TrainingSpec(task="binary", model=ModelSpec(hidden=[32]), epochs=5)
    >>> spec.loss.name, spec.model.hidden
    ('bce_with_logits', (32,))
    >>> TrainingSpec(task="binary", model=ModelSpec(hidden=(0,)))
    Traceback (most recent call last):
    ...
    app.errors.InvalidInput: model.hidden[0]: is 0: must be in [1, 65536]
    """

    task: Task
    model: ModelSpec | CNNSpec = field(default_factory=ModelSpec)
    loss: LossSpec = field(default_factory=LossSpec)
    regularization: RegularizationSpec = field(default_factory=RegularizationSpec)
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    batch_size: int = 256
    epochs: int = 20
    early_stopping: EarlyStoppingSpec | None = None
    seed: int = 0
    device: Device = "auto"
    grad_clip_norm: float | None = None
    n_classes: int | None = None
    sanity_check: SanityCheckSpec | None = None

    def __post_init__(self) -> None:
        _choice(self.task, "task", get_args(Task))
        for name, cls in _PARTS.items():
            value = getattr(self, name)
            if name == "model" and isinstance(value, CNNSpec):
                continue
            if not isinstance(value, cls) and not (name in _OPTIONAL_PARTS and value is None):
                raise InvalidInput(f"must be a {cls.__name__}", field=name)
        if self.sanity_check is not None:
            self._sanity_overrides()
        _int(self.batch_size, "batch_size", low=1, high=MAX_BATCH_SIZE)
        _int(self.epochs, "epochs", low=1, high=MAX_EPOCHS)
        _int(self.seed, "seed", low=0, high=MAX_SEED)
        _choice(self.device, "device", get_args(Device))
        if self.grad_clip_norm is not None:
            _set(
                self,
                "grad_clip_norm",
                _real(self.grad_clip_norm, "grad_clip_norm", low=0.0, low_open=True),
            )
        loss = self.loss
        if loss.name is None:
            # re-validate with the concrete name, so "applies to ... only" checks run
            loss = replace(loss, name=DEFAULT_LOSS[self.task])
            _set(self, "loss", loss)
        if loss.name not in TASK_LOSSES[self.task]:
            raise InvalidInput(
                f"is {loss.name!r}: task {self.task!r} takes {sorted(TASK_LOSSES[self.task])}",
                field="loss.name",
            )
        if self.n_classes is not None:
            if self.task != "multiclass":
                raise InvalidInput(
                    f"applies to multiclass only, not {self.task!r}", field="n_classes"
                )
            _int(self.n_classes, "n_classes", low=2, high=MAX_WIDTH)
        cw = loss.class_weights
        if cw is not None:
            if self.n_classes is None:
                _set(self, "n_classes", len(cw))
            elif len(cw) != self.n_classes:
                raise InvalidInput(
                    f"has {len(cw)} weights but n_classes is {self.n_classes}",
                    field="loss.class_weights",
                )

    def _sanity_overrides(self) -> None:
        assert self.sanity_check is not None
        # regularizers fight memorization, which is all sanity mode asks for
        _set(self, "model", replace(self.model, dropout=0.0))
        _set(self, "regularization", RegularizationSpec())
        _set(self, "loss", replace(self.loss, label_smoothing=0.0))
        _set(self, "early_stopping", None)
        _set(self, "epochs", self.sanity_check.epochs)

    @property
    def n_outputs(self) -> int | None:
        """Output units of the model; None for multiclass before ``n_classes`` is known."""
        return self.n_classes if self.task == "multiclass" else 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists) that :meth:`from_dict` reads back."""

        def plain(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return [plain(x) for x in v] if isinstance(v, tuple | list) else v

        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingSpec:
        """Build a spec from nested mappings (the output of :meth:`to_dict`, or parsed JSON).

        Raises
        ------
        InvalidInput
            Unknown keys (naming the dotted field), a missing ``task``, or any range check.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput(f"must be a mapping, got {type(data).__name__}", field="spec")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidInput("is not a training option", field=str(key))
        if "task" not in data:
            raise InvalidInput("is required", field="task")
        kwargs: dict[str, Any] = dict(data)
        for name, part_cls in _PARTS.items():
            value = kwargs.get(name)
            if name == "model" and isinstance(value, Mapping):
                kwargs[name] = model_from_mapping(value)  # "type": "mlp" or "cnn"
                continue
            if value is None or isinstance(value, part_cls | CNNSpec):
                continue
            if not isinstance(value, Mapping):
                raise InvalidInput(f"must be a mapping, got {type(value).__name__}", field=name)
            part_known = {f.name for f in dataclasses.fields(part_cls)}
            for key in value:
                if key not in part_known:
                    raise InvalidInput("is not a training option", field=f"{name}.{key}")
            kwargs[name] = part_cls(**value)
        for name in ("model", "loss", "regularization", "optimizer", "schedule"):
            if kwargs.get(name, ...) is None:
                del kwargs[name]  # null means "the defaults" for the parts that always exist
        return cls(**kwargs)
