"""Robustness to perturbations: a metric at increasing noise levels, and where it breaks.

A *family* is a named, seeded transformation of the evaluation inputs at a *level*. Families
live in :data:`FAMILIES` (name → :class:`Family`), each declaring the modality it applies to
(``"tabular"`` inputs of shape (n, d); ``"image"`` inputs of shape (n, C, H, W)) and the range
its levels must lie in, so a request is checked before any work. Adding a family (an image one
such as gaussian noise, blur, occlusion or brightness/contrast) is one :func:`register_family`
call with a function ``apply(X, level, rng, stats) -> X'``; nothing else changes.

Tabular families (``stats`` holds the training ``mean`` and ``std`` per feature):

- ``gaussian_jitter``: :math:`x'_{ij} = x_{ij} + \\ell\\,\\sigma_j\\,\\varepsilon_{ij}`,
  :math:`\\varepsilon \\sim N(0, 1)` (level in units of each feature's training std);
- ``missingness``: each value is missing with probability :math:`\\ell` and imputed with the
  training mean :math:`\\mu_j`;
- ``feature_dropout``: per row, :math:`\\mathrm{round}(\\ell d)` features chosen at random are
  replaced by their training means (a mean-replacing "zeroing" that keeps the scale).

Every (family, level) draws from its own generator
``default_rng([seed, crc32(family), level_index])``: the same request always gives the same
numbers, whatever other families or levels it holds.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from app.errors import InvalidInput

__all__ = ["FAMILIES", "Family", "breaking_point", "evaluate", "register_family"]

Apply = Callable[[NDArray[Any], float, np.random.Generator, Mapping[str, NDArray[Any]]], NDArray]


@dataclass(frozen=True)
class Family:
    """A perturbation family.

    Attributes
    ----------
    name : str
    modality : {"tabular", "image"}
    low, high : float
        Levels must lie in ``[low, high]``; level ``low`` is the clean input.
    apply : callable
        ``apply(X, level, rng, stats) -> X'`` (a new array; ``X`` is not modified).
    summary : str
    default_levels : tuple of float
        The levels used when a request names the family without levels.
    """

    name: str
    modality: str
    low: float
    high: float
    apply: Apply
    summary: str
    default_levels: tuple[float, ...] = ()


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> None:
    """Add a family to :data:`FAMILIES` (a name may be registered once)."""
    if family.name in FAMILIES:
        raise ValueError(f"perturbation family {family.name!r} is already registered")
    FAMILIES[family.name] = family


def _jitter(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    noise = rng.standard_normal(X.shape)
    return (X + level * np.asarray(stats["std"]) * noise).astype(X.dtype)


def _missing(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    mask = rng.random(X.shape) < level
    return np.where(mask, np.asarray(stats["mean"], dtype=X.dtype), X)


def _dropout(X: NDArray[Any], level: float, rng: np.random.Generator, stats: Mapping) -> NDArray:
    n, d = X.shape
    k = int(np.floor(level * d + 0.5))
    if k == 0:
        return X.copy()
    ranks = np.argsort(rng.random((n, d)), axis=1)  # a random subset of k features per row
    mask = np.zeros((n, d), dtype=bool)
    np.put_along_axis(mask, ranks[:, :k], True, axis=1)
    return np.where(mask, np.asarray(stats["mean"], dtype=X.dtype), X)


register_family(
    Family(
        "gaussian_jitter",
        "tabular",
        0.0,
        100.0,
        _jitter,
        "x + level·σ_train·N(0, 1)",
        (0.1, 0.25, 0.5, 1.0, 2.0),
    )
)
register_family(
    Family(
        "missingness",
        "tabular",
        0.0,
        1.0,
        _missing,
        "missing at rate level, mean-imputed",
        (0.05, 0.1, 0.2, 0.4, 0.6),
    )
)
register_family(
    Family(
        "feature_dropout",
        "tabular",
        0.0,
        1.0,
        _dropout,
        "round(level·d) random features per row set to their training mean",
        (0.1, 0.2, 0.3, 0.5),
    )
)

MAX_LEVELS: Final = 50


def check_request(
    families: Sequence[str], levels: Mapping[str, Sequence[float]], modality: str
) -> dict[str, list[float]]:
    """Every family known and of the run's modality, every level in its range; returns the
    levels per family (a family's ``default_levels`` where none are given).

    Raises
    ------
    InvalidInput
        Naming ``families`` or ``levels.<family>``.
    """
    if not families:
        raise InvalidInput("name at least one family", field="families")
    for name in levels:
        if name not in families:
            raise InvalidInput(f"{name!r} is not one of the families asked for", field="levels")
    resolved: dict[str, list[float]] = {}
    for name in families:
        fam = FAMILIES.get(name)
        if fam is None:
            raise InvalidInput(
                f"unknown family {name!r}; known: {', '.join(sorted(FAMILIES))}", field="families"
            )
        if fam.modality != modality:
            raise InvalidInput(
                f"family {name!r} is for {fam.modality} inputs; this run is {modality}",
                field="families",
            )
        lv = list(levels.get(name) or fam.default_levels)
        if not lv:
            raise InvalidInput("give at least one level", field=f"levels.{name}")
        if len(lv) > MAX_LEVELS:
            raise InvalidInput(f"at most {MAX_LEVELS} levels", field=f"levels.{name}")
        for v in lv:
            if not np.isfinite(v) or not fam.low <= v <= fam.high:
                raise InvalidInput(
                    f"level {v!r} is outside [{fam.low:g}, {fam.high:g}]", field=f"levels.{name}"
                )
        resolved[name] = [float(v) for v in lv]
    return resolved


def breaking_point(
    levels: Sequence[float],
    values: Sequence[float | None],
    clean: float | None,
    *,
    greater_is_better: bool,
    floor: float | None = None,
    max_relative_drop: float | None = None,
) -> dict[str, Any] | None:
    """The first level (in increasing order) where the metric is past ``floor`` (below it, or
    above it for a loss) or has lost more than ``max_relative_drop`` of its clean value
    (:math:`|v - v_0| / |v_0|` in the bad direction). None when no level breaks.

    Examples
    --------
    >>> breaking_point([0.1, 0.5, 1.0], [0.9, 0.7, 0.5], 0.95, greater_is_better=True, floor=0.6)
    {'level': 1.0, 'value': 0.5, 'reason': 'floor'}
    >>> breaking_point([0.1, 0.5], [0.9, 0.7], 1.0, greater_is_better=True, max_relative_drop=0.2)
    {'level': 0.5, 'value': 0.7, 'reason': 'relative_drop'}
    """
    sign = 1.0 if greater_is_better else -1.0
    for level, v in sorted(zip(levels, values, strict=True), key=lambda t: t[0]):
        if v is None:
            continue
        if floor is not None and sign * (v - floor) < 0:
            return {"level": level, "value": v, "reason": "floor"}
        if (
            max_relative_drop is not None
            and clean is not None
            and clean != 0
            and sign * (clean - v) / abs(clean) > max_relative_drop
        ):
            return {"level": level, "value": v, "reason": "relative_drop"}
    return None


def evaluate(
    X: NDArray[Any],
    predict: Callable[[NDArray[Any]], NDArray[Any]],
    metric: Callable[[NDArray[Any]], float | None],
    families: Sequence[str],
    levels: Mapping[str, Sequence[float]],
    stats: Mapping[str, NDArray[Any]],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The metric on the clean inputs and on each family at each level.

    Returns
    -------
    dict
        ``clean`` and, per family, ``levels`` and ``values`` (in the order given).
    """
    clean = metric(predict(X))
    out: dict[str, Any] = {"clean": clean, "families": {}}
    for name in families:
        fam = FAMILIES[name]
        values = []
        for i, level in enumerate(levels[name]):
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), i])
            values.append(metric(predict(fam.apply(X, float(level), rng, stats))))
        out["families"][name] = {"levels": [float(v) for v in levels[name]], "values": values}
    return out
