"""Pausing the cyclic garbage collector while hundreds of thousands of dicts are built.

Parsing a COCO-val-sized body and building the engine's annotation dicts allocate millions of
container objects; every few thousand allocations the collector runs, and its full passes walk
every live object. Those passes find nothing to free here (the objects are all reachable) and
can double the cost of building them. Reference counting still frees memory while paused.

Pauses nest and may overlap across threads: the collector is re-enabled when the last pause
ends, and only if it was enabled when the first one began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the ``with`` block (see the module).

    >>> with gc_paused():
    ...     gc.isenabled()
    False
    """
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
