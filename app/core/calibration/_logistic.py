"""Unpenalized weighted logistic regression on a few features, by Newton's method.

The maximum-likelihood fit behind Platt scaling (one feature) and beta calibration (two). Newton
with backtracking converges quadratically, so the result is the MLE to rounding, which is what
``LogisticRegression(C=np.inf)`` approaches as its tolerance goes to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.special import expit

from app.core.calibration._common import Float

_MAX_ITER: Final[int] = 100
#: Converged when the Newton step is this small relative to the (standardized) coefficients.
_STEP_TOL: Final[float] = 1e-13
#: Full Newton steps, without line search, once the predicted decrease of the mean NLL
#: (``gᵀH⁻¹g / 2``, the Newton decrement) is below this fraction of it.
_QUADRATIC: Final[float] = 1e-10
_POLISH_STEPS: Final[int] = 6


class NoMaximumLikelihood(ArithmeticError):
    """Newton did not converge: the classes are (quasi-)separable along the features."""


@dataclass(frozen=True)
class LogisticFit:
    """``P(y = 1 | x) = σ(x · coef + intercept)`` and the mean NLL at the fit."""

    coef: Float
    intercept: float
    nll: float


def mean_nll(eta: Float, target: Float, weight: Float | None) -> float:
    """``Σ w_i [log(1 + e^{η_i}) − t_i η_i] / Σ w_i``."""
    cell = np.logaddexp(0.0, eta) - target * eta
    return float(np.average(cell, weights=weight))


def fit_logistic(x: Float, target: Float, weight: Float | None) -> LogisticFit:
    """Maximize ``Σ w_i [t_i log σ(η_i) + (1 − t_i) log σ(−η_i)]``, ``η = x · coef + b``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Features; each must take at least two distinct values (among rows of positive weight).
    target : ndarray of shape (n_samples,)
        In [0, 1]: labels, or Platt's smoothed targets.
    weight : ndarray of shape (n_samples,) or None

    Raises
    ------
    NoMaximumLikelihood
        The iteration did not converge (the likelihood has no maximizer: separable classes).
    """
    w = np.ones(x.shape[0]) if weight is None else weight
    total = w.sum()
    # Standardize for conditioning; Newton is affine-invariant, so only rounding changes.
    mean = (w @ x) / total
    scale = np.sqrt((w @ (x - mean) ** 2) / total)
    scale[scale == 0] = 1.0
    design = np.column_stack([(x - mean) / scale, np.ones(x.shape[0])])
    rate = float(np.clip((w @ target) / total, 1e-12, 1 - 1e-12))
    theta = np.zeros(design.shape[1])
    theta[-1] = np.log(rate / (1 - rate))
    eta = design @ theta
    nll = mean_nll(eta, target, weight)
    polish = 0
    for _ in range(_MAX_ITER):
        p = expit(eta)
        grad = design.T @ (w * (p - target)) / total
        hess = (design.T * (w * p * (1 - p))) @ design / total
        step = np.linalg.lstsq(hess, -grad, rcond=None)[0]
        decrement = float(-grad @ step)
        if not np.isfinite(decrement):
            break
        if np.abs(step).max() <= _STEP_TOL * (1.0 + np.abs(theta).max()):
            return _unscale(theta, mean, scale, nll)
        if decrement / 2 <= _QUADRATIC * max(nll, 1e-300):
            # Close enough for full Newton steps: the NLL no longer resolves the progress,
            # but the step, computed from the gradient, still does. Quadratic convergence
            # reaches the rounding floor in a few steps.
            theta = theta + step
            eta = design @ theta
            nll = mean_nll(eta, target, weight)
            polish += 1
            if polish == _POLISH_STEPS:
                return _unscale(theta, mean, scale, nll)
            continue
        t = 1.0
        while t > 1e-10:
            candidate = theta + t * step
            eta_c = design @ candidate
            nll_c = mean_nll(eta_c, target, weight)
            if nll_c <= nll - 1e-4 * t * decrement:
                break
            t /= 2
        else:  # no descent at rounding level: converged as far as float64 allows
            return _unscale(theta, mean, scale, nll)
        theta, eta, nll = candidate, eta_c, nll_c
    raise NoMaximumLikelihood("Newton's method did not converge")


def _unscale(theta: Float, mean: Float, scale: Float, nll: float) -> LogisticFit:
    coef = theta[:-1] / scale
    return LogisticFit(coef, float(theta[-1] - coef @ mean), nll)
