"""Torch glue of the inspections: batched permuted forward passes, gradient attributions, and
the trained MLP wrapped as a scikit-learn estimator (for comparisons with scikit-learn).

Permuting a set of columns ``S`` changes the first Linear layer's pre-activation by a low-rank
term only,

.. math:: Z^{(S)} = X W^T + b + (X'_S - X_S)\\,W_S^T ,

so :class:`FirstLayerPermuted` computes ``X W^T + b`` once and, for all repeats of a column at
once, adds the rank-``|S|`` update and runs the rest of the network on the stacked copies.
"""

from __future__ import annotations

import copy
from typing import Any, Final, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import Tensor, nn

from app.errors import InvalidInput
from app.training.loop import batch_bounds

AttributionMethod = Literal["integrated_gradients", "gradient_x_input"]
#: Rows (copies × steps) per forward/backward pass of the attributions.
ATTRIBUTION_BATCH_ROWS: Final = 1 << 16
#: Rows (repeats × rows) per forward pass of the permuted copies (small: activations stay in
#: cache).
FORWARD_BATCH_ROWS: Final = 1 << 12
#: On a GPU: large passes (few kernel launches).
GPU_BATCH_ROWS: Final = 1 << 18


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _squeeze(out: Tensor, task: str) -> Tensor:
    return out if task == "multiclass" else out[..., 0]


class FirstLayerPermuted:
    """A :class:`app.core.importance.PermutedPredict` for an MLP (``nn.Sequential`` whose first
    module is ``nn.Linear``): the first layer's output on ``X`` is computed once.

    Rows are taken in cache-sized blocks, and each block runs the rest of the network once for
    all repeats stacked (``R × rows`` rows per matrix product), into reused buffers.

    Parameters
    ----------
    model : nn.Sequential
        In eval mode; used on its own device and dtype.
    X : ndarray of shape (n_rows, n_features)
    task : str
        ``"multiclass"`` keeps the (n, K) logits; other tasks return the single output column.
    """

    def __init__(self, model: nn.Sequential, X: NDArray[Any], task: str) -> None:
        first = model[0]
        if not isinstance(first, nn.Linear):
            raise TypeError("the model's first module must be nn.Linear")
        self.model, self.task = model, task
        self.weight = first.weight.detach()
        self.rest = list(model.children())[1:]
        # Wᵀ stored contiguous: the products read it row-major (faster than a transposed view).
        self._weight_t = {
            i: m.weight.detach().T.contiguous()
            for i, m in enumerate(self.rest)
            if isinstance(m, nn.Linear)
        }
        dtype = self.weight.dtype
        self.X = torch.as_tensor(np.asarray(X), dtype=dtype, device=self.weight.device)
        with torch.no_grad():
            self.z0 = first(self.X)
        self._buffers: dict[int, Tensor] = {}

    def _buffer(self, key: int, rows: int, width: int) -> Tensor:
        """A reused activation buffer: large fresh tensors cost page faults on every pass."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < rows or buf.shape[1] != width:
            buf = torch.empty((rows, width), dtype=self.X.dtype, device=self.X.device)
            self._buffers[key] = buf
        return buf[:rows]

    def _rest(self, z: Tensor) -> Tensor:
        """The layers after the first, into reused buffers; ReLUs in place."""
        for i, module in enumerate(self.rest):
            if isinstance(module, nn.Linear):
                out = self._buffer(i, z.shape[0], module.out_features)
                wt = self._weight_t[i]
                if module.out_features == 1:  # one output: a matrix-vector product
                    torch.mv(z, wt[:, 0], out=out[:, 0])
                    if module.bias is not None:
                        out += module.bias
                    z = out
                elif module.bias is None:
                    z = torch.mm(z, wt, out=out)
                else:
                    z = torch.addmm(module.bias, z, wt, out=out)
            elif isinstance(module, nn.ReLU):
                z = torch.relu_(z)
            elif not isinstance(module, nn.Dropout):  # eval mode: dropout is the identity
                z = module(z)
        return z

    @torch.no_grad()
    def __call__(
        self, columns: NDArray[np.intp], values: NDArray[Any]
    ) -> NDArray[np.floating[Any]]:
        R, n = values.shape[:2]
        cols = torch.as_tensor(columns, device=self.X.device)
        v = torch.as_tensor(values, dtype=self.X.dtype, device=self.X.device)
        delta = v - self.X[:, cols]  # (R, n, k)
        w = self.weight[:, cols].T.contiguous()  # (k, H)
        H = w.shape[1]
        out_all: Tensor | None = None
        # A block of rows for all repeats at once, sized so its activations stay in cache (the
        # rank-k update and the ReLUs are memory-bound); a GPU takes large passes instead.
        rows = FORWARD_BATCH_ROWS if self.X.device.type == "cpu" else GPU_BATCH_ROWS
        step = max(1, min(n, rows // R))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            z = self._buffer(-1, R * (hi - lo), H).view(R, hi - lo, H)
            # One column: a broadcast rank-1 update (addcmul), not a matmul of inner size 1.
            if delta.shape[-1] == 1:
                torch.addcmul(self.z0[lo:hi], delta[:, lo:hi], w[0], out=z)
            else:
                torch.matmul(delta[:, lo:hi], w, out=z)
                z += self.z0[lo:hi]
            out = _squeeze(self._rest(z.view(-1, H)), self.task)
            if out_all is None:
                out_all = torch.empty((R, n, *out.shape[1:]), dtype=out.dtype, device=z.device)
            out_all[:, lo:hi] = out.view(R, hi - lo, *out.shape[1:])
        assert out_all is not None
        return out_all.cpu().numpy()


@torch.no_grad()
def outputs(model: nn.Module, X: NDArray[Any], task: str) -> NDArray[np.floating[Any]]:
    """Eval-mode outputs on ``X`` in the model's dtype: (n,) logits/values or (n, K) logits."""
    p = next(model.parameters())
    Xt = torch.as_tensor(np.asarray(X), dtype=p.dtype, device=p.device)
    parts = [_squeeze(model(Xt[lo:hi]), task) for lo, hi in batch_bounds(len(Xt), 1 << 18)]
    return torch.cat(parts).cpu().numpy()


def explained_output(out: Tensor, task: str, target: Tensor | None) -> Tensor:
    """The scalar per row that is explained: the logit of ``target`` (multiclass), the logit of
    class 1 (binary; its negation for target 0), the value (regression)."""
    if task == "multiclass":
        assert target is not None
        return out.gather(1, target[:, None])[:, 0]
    if task == "binary" and target is not None:
        return torch.where(target == 1, out[:, 0], -out[:, 0])
    return out[:, 0]


def attributions(
    model: nn.Module,
    X: NDArray[Any],
    *,
    task: str,
    method: AttributionMethod = "integrated_gradients",
    baseline: NDArray[Any] | None = None,
    target: NDArray[np.int64] | None = None,
    steps: int = 64,
    batch_rows: int = ATTRIBUTION_BATCH_ROWS,
    completeness_tol: float = 0.005,
    max_refinements: int = 4,
) -> dict[str, NDArray[Any]]:
    """Per-feature attributions of one output per row, in float64.

    Integrated gradients (Sundararajan et al., 2017) along the straight path from the
    baseline ``x'`` to ``x``,

    .. math::

        \\mathrm{IG}_i(x) = (x_i - x'_i) \\int_0^1
        \\frac{\\partial f}{\\partial x_i}\\big(x' + \\alpha (x - x')\\big)\\, d\\alpha ,

    with the integral taken on ``steps`` equal steps (``steps + 1`` gradients) by
    :func:`_kink_trapezoid`: the trapezoid rule, except that where the gradient jumps inside a
    step (a ReLU switching) the switch point is placed so the step integrates to the known
    increment of ``f``. IG satisfies completeness, :math:`\\sum_i \\mathrm{IG}_i = f(x) - f(x')`;
    the quadrature's residual is reported per row as ``completeness_gap``. A row whose
    residual exceeds ``completeness_tol`` of :math:`|f(x) - f(x')|` is integrated again with
    twice the steps, at most ``max_refinements`` times (``steps_used`` per row). Gradient × input is
    :math:`x_i\\, \\partial f / \\partial x_i (x)` (no baseline).

    Parameters
    ----------
    model : nn.Module
        Evaluated in a float64 copy (so the sums are not float32 noise).
    X : ndarray of shape (n_rows, n_features)
    task : {"binary", "multiclass", "regression"}
    baseline : ndarray of shape (n_features,), optional
        Default: zeros (callers pass the training means).
    target : ndarray of shape (n_rows,), optional
        Class explained per row (see :func:`explained_output`).
    steps : int

    Returns
    -------
    dict
        ``attributions`` (n, d), ``output`` f(x) (n,), and for integrated gradients
        ``baseline_output`` f(x') (n,), ``completeness_gap`` Σ IG − (f(x) − f(x')) (n,) and
        ``steps_used`` (n,).
    """
    if steps < 1:
        raise InvalidInput(f"is {steps}: must be at least 1", field="steps")
    m = _float64_copy(model)
    dev = _device(m)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), device=dev)
    n, d = Xt.shape
    base = torch.zeros(d, dtype=torch.float64, device=dev)
    if baseline is not None:
        base = torch.as_tensor(np.asarray(baseline, dtype=np.float64), device=dev)
    tgt = None if target is None else torch.as_tensor(np.asarray(target), device=dev).long()
    with torch.no_grad():
        f_x = explained_output(m(Xt), task, tgt)
        f_b = explained_output(m(base.expand(n, d)), task, tgt)
    if method == "gradient_x_input":
        grads = _gradients(m, Xt, task, tgt, batch_rows)
        return {"attributions": (Xt * grads).cpu().numpy(), "output": f_x.cpu().numpy()}
    if method != "integrated_gradients":
        raise InvalidInput(f"is {method!r}: unknown method", field="method")
    ig = _integrated(m, Xt, base, task, tgt, steps, batch_rows)
    gap = ig.sum(dim=1) - (f_x - f_b)
    used = torch.full((n,), steps, dtype=torch.int64, device=dev)
    # Adaptive: rows whose completeness residual exceeds the tolerance (several activation
    # switches within a step) are integrated again with twice the steps, up to 16x.
    for _ in range(max_refinements):
        bad = gap.abs() > completeness_tol * (f_x - f_b).abs()
        if not bool(bad.any()):
            break
        rows = bad.nonzero()[:, 0]
        used[rows] *= 2
        t_rows = None if tgt is None else tgt[rows]
        ig[rows] = _integrated(m, Xt[rows], base, task, t_rows, int(used[rows[0]]), batch_rows)
        gap[rows] = ig[rows].sum(dim=1) - (f_x[rows] - f_b[rows])
    return {
        "attributions": ig.cpu().numpy(),
        "output": f_x.cpu().numpy(),
        "baseline_output": f_b.cpu().numpy(),
        "completeness_gap": gap.cpu().numpy(),
        "steps_used": used.cpu().numpy(),
    }


def _integrated(
    m: nn.Module,
    X: Tensor,
    base: Tensor,
    task: str,
    tgt: Tensor | None,
    steps: int,
    batch_rows: int,
) -> Tensor:
    n, d = X.shape
    grid = torch.arange(steps + 1, dtype=torch.float64, device=X.device) / steps
    total = torch.zeros_like(X)
    rows_per = max(1, batch_rows // (steps + 1))
    for lo, hi in batch_bounds(n, rows_per):
        x, k = X[lo:hi], hi - lo
        path = base + grid[:, None, None] * (x - base)[None]  # (steps + 1, k, d)
        t = None if tgt is None else tgt[lo:hi].repeat(steps + 1)
        f, g = _values_and_gradients(m, path.reshape(-1, d), task, t, batch_rows)
        total[lo:hi] = _kink_trapezoid(
            f.reshape(steps + 1, k), g.reshape(steps + 1, k, d), x - base
        )
    return (X - base) * total


def _float64_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to(torch.float64).eval()


def _values_and_gradients(
    model: nn.Module, X: Tensor, task: str, target: Tensor | None, batch_rows: int
) -> tuple[Tensor, Tensor]:
    """The explained output and its gradient at each row of ``X``."""
    values = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    grads = torch.empty_like(X)
    for lo, hi in batch_bounds(X.shape[0], batch_rows):
        x = X[lo:hi].detach().requires_grad_(True)
        t = None if target is None else target[lo:hi]
        f = explained_output(model(x), task, t)
        (g,) = torch.autograd.grad(f.sum(), x)
        values[lo:hi], grads[lo:hi] = f.detach(), g
    return values, grads


def _gradients(
    model: nn.Module, X: Tensor, task: str, target: Tensor | None, batch_rows: int
) -> Tensor:
    return _values_and_gradients(model, X, task, target, batch_rows)[1]


def _kink_trapezoid(f: Tensor, g: Tensor, delta: Tensor) -> Tensor:
    """``∫₀¹ ∇f(x' + α Δ) dα`` from values ``f`` (m+1, k) and gradients ``g`` (m+1, k, d) on
    the grid ``α_j = j/m``.

    On each step the gradient is taken as its left value ``g_j`` on a fraction ``t`` of the
    step and its right value ``g_{j+1}`` on the rest, with ``t`` chosen so the step integrates
    to the known increment ``f_{j+1} - f_j``:

    .. math::

        t = \\frac{m (f_{j+1} - f_j) - g_{j+1} \\cdot Δ}{(g_j - g_{j+1}) \\cdot Δ},
        \\quad t ∈ [0, 1]

    (``t = 1/2``, the trapezoid rule, where the directional derivative does not change). A
    ReLU network is piecewise linear along the path, so this is exact when no step holds more
    than one change of activation pattern; smooth activations get the trapezoid rule, nudged to
    the increment of ``f``.
    """
    m = f.shape[0] - 1
    d_left = (g[:-1] * delta).sum(dim=-1)  # (m, k)
    d_right = (g[1:] * delta).sum(dim=-1)
    slope = (f[1:] - f[:-1]) * m
    jump = d_left - d_right
    scale = d_left.abs() + d_right.abs() + slope.abs()
    kinked = jump.abs() > 1e-9 * torch.clamp(scale, min=1e-300)
    t = torch.where(kinked, (slope - d_right) / torch.where(kinked, jump, 1.0), 0.5)
    t = t.clamp(0.0, 1.0)[..., None]
    return (t * g[:-1] + (1 - t) * g[1:]).mean(dim=0)


class TorchEstimator(BaseEstimator):
    """A trained network as a scikit-learn estimator (``fit`` does nothing).

    ``decision_function`` returns the raw outputs (logits, or values) in one forward pass per
    call, so scikit-learn tools call the same network the service uses; ``predict`` returns
    them too (a regressor's values). Classification runs get :class:`TorchClassifier` from
    :func:`as_estimator`.
    """

    def __init__(self, model: nn.Module | None = None, task: str = "regression") -> None:
        self.model = model
        self.task = task

    def fit(self, X: Any, y: Any = None) -> TorchEstimator:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def decision_function(self, X: Any) -> NDArray[np.floating[Any]]:
        assert self.model is not None
        return outputs(self.model, np.asarray(X), self.task)

    def predict(self, X: Any) -> NDArray[np.number[Any]]:
        """The raw outputs, as :meth:`decision_function` (a regressor's values); a classifier
        returns class indices instead."""
        return self.decision_function(X)


class TorchClassifier(ClassifierMixin, TorchEstimator):
    """A binary or multiclass network as a scikit-learn classifier, so that scorers named by a
    string (``scoring="roc_auc"``, ``"neg_log_loss"``, ``"accuracy"``) call it as they call
    any classifier: ``predict`` gives class indices (a binary logit ``>= 0`` is class 1, the
    engine's default threshold), ``predict_proba`` float64 sigmoid/softmax probabilities,
    ``decision_function`` the logits.
    """

    def __init__(self, model: nn.Module | None = None, task: str = "binary") -> None:
        super().__init__(model, task)

    @property
    def classes_(self) -> NDArray[np.int64]:
        assert self.model is not None
        last = [m for m in self.model.modules() if isinstance(m, nn.Linear)][-1]
        return np.arange(2 if self.task == "binary" else last.out_features)

    def predict(self, X: Any) -> NDArray[np.int64]:
        z = self.decision_function(X)
        return (z >= 0).astype(np.int64) if self.task == "binary" else np.argmax(z, axis=1)

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        z = torch.as_tensor(self.decision_function(X), dtype=torch.float64)
        if self.task == "binary":
            p = torch.sigmoid(z)
            return torch.stack([1 - p, p], dim=1).numpy()
        return torch.softmax(z, dim=1).numpy()


def as_estimator(model: nn.Module, task: str) -> TorchEstimator:
    """The network as a scikit-learn estimator: a classifier for binary and multiclass runs."""
    return (
        TorchClassifier(model, task)
        if task in ("binary", "multiclass")
        else TorchEstimator(model, task)
    )
