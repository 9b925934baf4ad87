"""Temperature scaling (Guo et al. 2017): one ``T > 0`` divides every logit.

The fit minimizes the weighted negative log-likelihood over ``T`` with PyTorch's L-BFGS on
``log T`` (float64, strong-Wolfe line search), then certifies the result with the exact first and
second derivatives and, if L-BFGS stopped short, finishes with a bracketed Newton iteration on
``β = 1/T``, in which the NLL is convex. The data pass runs on the GPU when there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

from app.core.calibration._common import (
    Float,
    ScoreType,
    Task,
    check_apply_scores,
    check_fit_inputs,
    clip_probability,
    header,
    logit,
    read_float,
    read_header,
)
from app.errors import InvalidInput

Device = Literal["auto", "cpu", "cuda"]
DEVICES: Final[tuple[Device, ...]] = ("auto", "cpu", "cuda")

#: The fitted temperature is confined to ``[T_MIN, T_MAX]``. The NLL has no minimizer when
#: the scores separate the classes (it decreases as ``T → 0``) or rank them worse than chance
#: (it decreases as ``T → ∞``); the fit then returns the bound. CLIP-like cosine scores need
#: ``T ≈ 0.01``, hence the wide range.
T_MIN: Final[float] = 1e-4
T_MAX: Final[float] = 1e4

#: Accept a minimizer when the Newton estimate of the remaining decrease, ``f'² / (2 f'')``,
#: is below this fraction of the NLL.
_REL_GAP: Final[float] = 1e-12
#: Float64 elements per chunk of the data pass (8 MiB per temporary on the CPU).
_CHUNK_ELEMENTS: Final[dict[str, int]] = {"cpu": 1 << 20, "cuda": 1 << 24}


@dataclass(frozen=True)
class TemperatureScaling:
    """Temperature scaling: ``softmax(z / T)`` (multiclass) or ``σ(z / T)`` (binary).

    Fit by minimizing the weighted negative log-likelihood of the labels

    .. math:: \\mathrm{NLL}(T) = \\frac{1}{W} \\sum_i w_i
              \\Bigl[\\log \\sum_k e^{z_{ik}/T} - z_{i y_i}/T\\Bigr], \\qquad W = \\sum_i w_i,

    over ``T ∈ [T_MIN, T_MAX]``. Binary scores are the positive-class logit ``z``, i.e. the
    two-class logits ``(0, z)``. Probabilities become logits first: binary ``logit(p)``,
    multiclass ``log p``, after clipping ``p`` to ``[eps, 1 − eps]`` (float64 eps). ``T`` does
    not change the argmax (nor the order of binary scores), only the confidence.

    Attributes
    ----------
    task : {"binary", "multiclass"}
    n_classes : int
    score_type : {"probability", "logit"}
        What :meth:`apply` expects, as at fit time.
    temperature : float
        ``T``; ``T > 1`` softens over-confident predictions.

    Notes
    -----
    scikit-learn's ``CalibratedClassifierCV(method="temperature")`` fits ``β = 1/T`` on
    ``(−z, z)`` for binary decision values, so its ``β`` is ``1 / (2T)`` there; on multiclass
    probabilities it takes ``log(p + 1e-12)`` rather than clipping.

    Examples
    --------
    >>> z = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0], [4.0, 0.0, 0.0]])
    >>> cal = TemperatureScaling.fit([0, 1, 2, 1], z, score_type="logit", device="cpu")
    >>> round(cal.temperature, 4)
    2.2324
    >>> cal.apply(z[:1])
    array([[0.75 , 0.125, 0.125]])
    """

    task: Task
    n_classes: int
    score_type: ScoreType
    temperature: float
    kind: ClassVar[str] = "temperature"

    @classmethod
    def fit(
        cls,
        y_true: ArrayLike,
        scores: ArrayLike,
        *,
        score_type: ScoreType,
        sample_weight: ArrayLike | None = None,
        device: Device = "auto",
    ) -> TemperatureScaling:
        """Fit ``T`` on a validation batch.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            binary: 0/1 or bool; multiclass: class indices in ``[0, n_classes)``.
        scores : array-like of shape (n_samples,) or (n_samples, n_classes)
            Positive-class score (binary) or one column per class. float32 logits stay float32
            (on the device too); every sum is taken in float64.
        score_type : {"probability", "logit"}
        sample_weight : array-like of shape (n_samples,), optional
        device : {"auto", "cpu", "cuda"}, default "auto"
            Where the data pass runs; "auto" is "cuda" when ``torch.cuda.is_available()``.

        Raises
        ------
        InvalidInput
            Invalid scores, labels or weights (see ``check_fit_inputs``); fewer than two classes
            with positive weight (field ``y_true``); an unknown or unavailable device.
        """
        dev = _resolve_device(device)
        data = check_fit_inputs(y_true, scores, score_type, sample_weight)
        z = _fit_logits(data.scores, data.score_type)
        objective = _Objective(z, data.y, data.weight, dev)
        temperature = 1.0 / _minimize(objective)
        return cls(data.task, data.n_classes, data.score_type, temperature)

    def apply(self, scores: ArrayLike) -> Float:
        """Calibrated probabilities: (n,) positive-class for binary, (n, K) rows for multiclass.

        Raises
        ------
        InvalidInput
            Scores of the wrong shape for this calibrator, NaN/inf, probabilities outside [0, 1].
        """
        s = check_apply_scores(scores, self.score_type, self.task, self.n_classes)
        if self.task == "binary":
            z = logit(s) if self.score_type == "probability" else s.astype(np.float64)
            return expit(z / self.temperature)
        if self.score_type == "probability":
            z = np.log(clip_probability(s))
        else:
            z = s.astype(np.float64)  # a copy: the softmax below works in place
        z /= self.temperature
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the common keys plus ``{"temperature": T}``."""
        d = header(self.kind, self.task, self.n_classes, self.score_type)
        d["temperature"] = float(self.temperature)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TemperatureScaling:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        InvalidInput
            A malformed dict (field ``calibrator``).
        """
        task, n_classes, score_type = read_header(d, cls.kind)
        t = read_float(d, "temperature")
        if t <= 0:
            raise InvalidInput(f"temperature is {t!r}: must be > 0", field="calibrator")
        return cls(task, n_classes, score_type, t)


# -- fitting ------------------------------------------------------------------------------------


def _resolve_device(device: object) -> str:
    if device not in DEVICES:
        raise InvalidInput(f"is {device!r}; expected one of {list(DEVICES)}", field="device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("is 'cuda' but no CUDA device is available", field="device")
    return str(device)


def _fit_logits(scores: NDArray[np.floating[Any]], score_type: ScoreType) -> NDArray[Any]:
    """(n, K) logits; binary ``z`` becomes ``(0, z)`` since ``softmax((0, z) / T)₁ = σ(z / T)``."""
    if scores.ndim == 1:
        z = logit(scores) if score_type == "probability" else scores.astype(np.float64)
        return np.column_stack([np.zeros_like(z), z])
    if score_type == "probability":
        return np.log(clip_probability(scores))
    return np.ascontiguousarray(scores)  # float32 stays float32: half the memory


def _tensor(a: NDArray[Any]) -> torch.Tensor:
    """A CPU tensor sharing ``a``'s memory (a copy if ``a`` is read-only or not contiguous)."""
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, order="C")
    return torch.from_numpy(a)


class _Objective:
    """``NLL(β)`` with ``β = 1/T`` and its first two derivatives, in float64 chunks.

    With ``d_ik = z_ik − max_k z_ik`` (so ``d ≤ 0``, 0 at the row's argmax ``m_i``) and
    ``g_i = max_k z_ik − z_{i y_i} ≥ 0``, row ``i`` contributes::

        nll_i = β g_i + log1p(Σ_{k ≠ m_i} e^{β d_ik})
        ∂nll_i/∂β = g_i + E_p[d_i],   ∂²nll_i/∂β² = Var_p(d_i) ≥ 0,   p = softmax(β z_i)

    Dropping the argmax term from the sum keeps tiny losses (confident, correct rows) exact;
    the second derivative shows that the NLL is convex in β.
    """

    def __init__(
        self, logits: NDArray[Any], y: NDArray[np.intp], weight: Float | None, device: str
    ) -> None:
        dev = torch.device(device)
        self.z = _tensor(logits).to(dev)
        labels = _tensor(y.astype(np.int64)).to(dev)
        self.w = None if weight is None else _tensor(weight).to(dev)
        self.total = float(len(y)) if weight is None else float(weight.sum())
        self.rows = max(1, _CHUNK_ELEMENTS[dev.type] // logits.shape[1])
        # Row maxima, their positions and the gaps g do not depend on β: computed once.
        self.chunks = []
        for start in range(0, self.z.shape[0], self.rows):
            zc = self.z[start : start + self.rows]
            zmax, argmax = zc.max(dim=1)
            zy = zc.gather(1, labels[start : start + self.rows, None])[:, 0]
            gap = zmax.to(torch.float64) - zy.to(torch.float64)
            self.chunks.append((start, zmax.to(torch.float64)[:, None], argmax[:, None], gap))
        self.evaluations = 0

    def __call__(self, beta: float, order: int = 1) -> tuple[float, float, float]:
        self.evaluations += 1
        sums = torch.zeros(3, dtype=torch.float64, device=self.z.device)
        for start, zmax, argmax, gap in self.chunks:
            zc = self.z[start : start + gap.shape[0]]
            # float32 chunks become a fresh float64 copy, which can be shifted in place.
            d = zc - zmax if zc.dtype == torch.float64 else zc.to(torch.float64).sub_(zmax)
            e = torch.mul(d, beta).exp_()
            e.scatter_(1, argmax, 0.0)
            others = e.sum(dim=1)
            terms = [torch.log1p(others).add_(gap, alpha=beta)]
            if order >= 1:
                ed = e.mul_(d)  # e·d; the argmax entry stays 0
                mean_d = ed.sum(dim=1).div_(others + 1.0)
                terms.append(mean_d + gap)
                if order >= 2:
                    second = ed.mul_(d).sum(dim=1).div_(others + 1.0)  # E_p[d²]
                    terms.append(second.sub_(mean_d * mean_d).clamp_(min=0.0))
            if self.w is not None:
                wc = self.w[start : start + gap.shape[0]]
                terms = [wc * t for t in terms]
            for j, t in enumerate(terms):
                sums[j] += t.sum()
        f, f1, f2 = (v / self.total for v in sums.cpu().tolist())
        return f, f1, f2


def _certified(beta: float, f: float, f1: float, f2: float, lo: float, hi: float) -> bool:
    """Is ``β`` a minimizer of the NLL over ``[lo, hi]`` (to ``_REL_GAP`` of the NLL)?"""
    if f1 == 0.0 or (beta >= hi and f1 < 0.0) or (beta <= lo and f1 > 0.0):
        return True
    return f2 > 0.0 and 0.5 * f1 * f1 / f2 <= _REL_GAP * f


def _lbfgs(objective: _Objective, u_lo: float, u_hi: float) -> float:
    """L-BFGS with strong-Wolfe line search on ``u = log T`` from ``T = 1``; returns ``u``.

    Outside ``[u_lo, u_hi]`` the objective is extended as a constant, so a run towards a
    missing minimizer stops at the bound instead of overflowing.
    """
    u = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [u],
        lr=1.0,
        max_iter=100,
        tolerance_grad=1e-11,
        tolerance_change=1e-15,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        value = float(u.detach())
        inside = u_lo <= value <= u_hi
        beta = math.exp(-min(max(value, u_lo), u_hi))
        f, f1, _ = objective(beta)
        u.grad = torch.tensor(-beta * f1 if inside else 0.0, dtype=torch.float64)
        return torch.tensor(f, dtype=torch.float64)

    opt.step(closure)
    value = float(u.detach())
    return min(max(value, u_lo), u_hi) if math.isfinite(value) else 0.0


def _minimize(objective: _Objective) -> float:
    """The minimizing ``β = 1/T`` over ``[1/T_MAX, 1/T_MIN]``."""
    lo, hi = 1.0 / T_MAX, 1.0 / T_MIN
    beta = min(max(math.exp(-_lbfgs(objective, math.log(T_MIN), math.log(T_MAX))), lo), hi)
    f, f1, f2 = objective(beta, 2)
    if _certified(beta, f, f1, f2, lo, hi):
        return beta
    return _bracketed_newton(objective, beta, (f, f1, f2), lo, hi)


def _bracketed_newton(
    objective: _Objective,
    beta: float,
    values: tuple[float, float, float],
    lower: float,
    upper: float,
) -> float:
    """Newton on ``NLL'(β) = 0`` inside a sign bracket, bisecting (geometrically) when a step
    leaves it; ``NLL'`` is increasing (convexity), so this always converges."""
    if objective(upper)[1] <= 0.0:
        return upper
    if objective(lower)[1] >= 0.0:
        return lower
    lo, hi = lower, upper
    f, f1, f2 = values
    for _ in range(200):
        if _certified(beta, f, f1, f2, lower, upper):
            break
        if f1 > 0.0:
            hi = beta
        else:
            lo = beta
        step = beta - f1 / f2 if f2 > 0.0 else math.nan
        if not lo < step < hi:
            step = math.sqrt(lo * hi)
        if step == beta or hi <= lo * (1.0 + 1e-15):
            break
        beta = step
        f, f1, f2 = objective(beta, 2)
    return beta
