"""Image perturbation families of the robustness inspection (numpy only).

Each family takes images ``X`` of shape (n, C, H, W), a level, a generator and the training
statistics ``stats`` (per-pixel ``mean`` and ``std`` of the flattened training images, as for
tabular runs), and returns perturbed images; importing this module registers them in
:data:`app.core.robustness.FAMILIES` with modality ``"image"``. Level 0 is the clean image and
the severity grows with the level. ``s`` below is the standard deviation of all training pixels
together and ``μ`` their mean, both derived from the per-pixel statistics
(:math:`s^2 = \\overline{\\sigma_j^2} + \\mathrm{Var}_j(\\mu_j)`):

- ``gaussian_noise``: :math:`x + \\ell\\,s\\,\\varepsilon`, :math:`\\varepsilon \\sim N(0, 1)` per
  pixel (level in units of the training pixel std, 0..10);
- ``blur``: Gaussian blur of standard deviation :math:`\\ell` pixels (0..10)
  (``scipy.ndimage.gaussian_filter`` over H and W, truncated at 4σ, borders reflected);
- ``occlusion``: one square per image at a uniformly random position, covering the fraction
  :math:`\\ell` of the image's area (0..1), filled with :math:`\\mu`;
- ``brightness``: :math:`x + \\ell\\,s` (0..10);
- ``contrast``: :math:`m + (1 - \\ell)(x - m)` with :math:`m` each image's own mean per
  channel: level 1 leaves a flat image (0..1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from app.core.robustness import FAMILIES, Family, register_family

__all__ = ["IMAGE_FAMILIES", "blur", "pixel_stats"]


def pixel_stats(stats: Mapping[str, NDArray[Any]]) -> tuple[float, float]:
    """Mean and standard deviation of all training pixels, from per-pixel mean and std.

    >>> pixel_stats({"mean": np.array([0.0, 2.0]), "std": np.array([1.0, 1.0])})
    (1.0, 1.4142135623730951)
    """
    mean = np.asarray(stats["mean"], dtype=np.float64)
    std = np.asarray(stats["std"], dtype=np.float64)
    return float(mean.mean()), float(np.sqrt(np.mean(std**2) + mean.var()))


def blur(X: NDArray[Any], sigma: float) -> NDArray[Any]:
    """Gaussian blur of (n, C, H, W) images over H and W; ``sigma`` 0 returns a copy.

    >>> img = np.zeros((1, 1, 5, 5)); img[0, 0, 2, 2] = 1.0
    >>> out = blur(img, 1.0)
    >>> round(float(out.sum()), 6), bool(out[0, 0, 2, 2] < 1.0)
    (1.0, True)
    """
    if sigma <= 0:
        return X.copy()
    out = gaussian_filter(X.astype(np.float64), sigma=(0, 0, sigma, sigma), mode="reflect")
    return out.astype(X.dtype)


def _noise(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    _, s = pixel_stats(stats)
    return (X + level * s * rng.standard_normal(X.shape)).astype(X.dtype)


def _blur(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    return blur(X, level)


def _occlusion(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    n, _, h, w = X.shape
    out = X.copy()
    side_h = int(np.floor(np.sqrt(level) * h + 0.5))
    side_w = int(np.floor(np.sqrt(level) * w + 0.5))
    if side_h == 0 or side_w == 0:
        return out
    mu, _ = pixel_stats(stats)
    rows = rng.integers(0, h - side_h + 1, size=n)
    cols = rng.integers(0, w - side_w + 1, size=n)
    for i in range(n):
        out[i, :, rows[i] : rows[i] + side_h, cols[i] : cols[i] + side_w] = mu
    return out


def _brightness(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    _, s = pixel_stats(stats)
    return (X + level * s).astype(X.dtype)


def _contrast(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    m = X.mean(axis=(2, 3), keepdims=True)
    return (m + (1.0 - level) * (X - m)).astype(X.dtype)


IMAGE_FAMILIES: tuple[Family, ...] = (
    Family(
        "gaussian_noise",
        "image",
        0.0,
        10.0,
        _noise,
        "x + level·s_train·N(0, 1) per pixel",
        (0.1, 0.25, 0.5, 1.0, 2.0),
    ),
    Family("blur", "image", 0.0, 10.0, _blur, "Gaussian blur, σ = level pixels", (0.5, 1, 2, 3)),
    Family(
        "occlusion",
        "image",
        0.0,
        1.0,
        _occlusion,
        "one square covering the fraction level of the image, filled with the training mean",
        (0.05, 0.1, 0.25, 0.5),
    ),
    Family(
        "brightness",
        "image",
        0.0,
        10.0,
        _brightness,
        "x + level·s_train",
        (0.25, 0.5, 1.0, 2.0),
    ),
    Family(
        "contrast",
        "image",
        0.0,
        1.0,
        _contrast,
        "m + (1 - level)(x - m), m the image's mean per channel",
        (0.25, 0.5, 0.75, 0.9),
    ),
)

for _family in IMAGE_FAMILIES:
    if _family.name not in FAMILIES:  # importing twice (tests, reloads) registers once
        register_family(_family)
