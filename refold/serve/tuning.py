"""Keeping Python's cyclic garbage collector out of `refold serve`'s latency tail.

A full collection walks every container object the process holds, and every thread waits
meanwhile. The users' lists are packed bytes in a dictionary the collector does not track, so
their number does not matter; what it walks is the interpreter and the libraries a server
imports (Litestar, uvicorn, confluent-kafka, numpy: about 150,000 objects), some 70 ms of CPU
per full collection, during which requests queue. Full collections are rare under steady
traffic (`refold bench serve` saw none in 15 s at 2,000 requests/s, so they were not that run's
tail), but a burst of surviving objects triggers one. `settle()` runs once the view has read its
topics to their end: one collection, then `gc.freeze()` moves everything that survived to the
permanent generation, which later collections skip. Objects made afterwards (requests, new
catalog entries) are collected as before, in collections that only walk them.

`GcPauses` times each collection into `refold_serve_gc_pause_seconds{generation}`, so the effect
is visible on a running server, not only in a benchmark.

>>> pauses = GcPauses().install()
>>> import gc; _ = gc.collect()
>>> pauses.count >= 1
True
>>> pauses.remove()
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Literal

from refold.core import metrics as M

log = logging.getLogger(__name__)
GcMode = Literal["freeze", "default"]
GC_MODES: tuple[GcMode, ...] = ("freeze", "default")
"""`freeze`: `settle()` once the topics were read; `default`: the collector as Python sets it."""


def settle() -> int:
    """Collect once, then freeze what survived (later collections skip it); returns how many
    objects were frozen."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc: %d objects frozen after the initial read (%.0f ms)", frozen,
             (time.perf_counter() - t0) * 1000)
    return frozen


class GcPauses:
    """Times every collection (`gc.callbacks`) into the pause histogram."""

    def __init__(self) -> None:
        self.count = 0
        self.longest = 0.0
        """Seconds of the longest pause seen."""
        self._started = 0.0
        self._children = {g: M.SERVE_GC_PAUSE.labels(str(g)) for g in range(3)}

    def install(self) -> GcPauses:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def remove(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        self.count += 1
        self.longest = max(self.longest, seconds)
        self._children[info["generation"]].observe(seconds)


PAUSES = GcPauses()
"""The process's one timer of collections (two would count each pause twice)."""
