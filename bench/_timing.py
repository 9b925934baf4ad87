"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def best_of(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Fastest wall time of ``repeat`` calls (seconds) and the last result."""
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def row(*cells: object, widths: tuple[int, ...] = (28, 12, 12, 12, 12)) -> str:
    return "".join(
        f"{c!s:>{w}}" if i else f"{c!s:<{w}}"
        for i, (c, w) in enumerate(zip(cells, widths, strict=False))
    )
