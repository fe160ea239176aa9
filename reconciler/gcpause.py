"""Pausing Python's cyclic garbage collector around work that builds many objects and no cycles.

Observing an account, planning and unpickling the load cache each build tens of thousands of small
dicts and lists (decoded JSON) and keep them. Every collection the allocations trigger scans all of
them again and finds nothing to free: at 1,000 streams that was a third of a no-op run. Reference
counting still frees everything as usual; only the search for cycles waits until the work is done.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
