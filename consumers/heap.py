"""Keeping the worker's long-lived objects out of the cyclic garbage collector's full passes.

A full (generation 2) collection walks every container object the collector tracks, and the
worker waits meanwhile. What a worker holds for long is many small containers: its startup heap
(catalog, model, clients: ~190K objects with ml-100k) and its users (about 10 objects per user
in memory: the entry, its history and its feedback parts; ~1M at a cache of 100K users, a
473 ms pause per full collection, measured at load 10). CPython starts a full collection when
the objects that survived since the last one reach a quarter of those that survived it, so with
users arriving the pauses recur, each as long as the heap is big.

`freeze_startup_heap()` collects once and freezes what a worker built at start (`gc.freeze`:
later collections skip it). `settle()`, called between batches, freezes again after each full
collection: what survived it is the worker's long-lived state, so the next full collection walks
only what came after. Frozen objects are still freed by reference counting when they are
dropped (an evicted user's entry has no reference cycle); an object frozen while alive and later
dropped as part of a reference cycle is not freed while frozen. In a worker those are what a
new model version replaces (the drift detectors of the old one: ~6 small objects a swap, no
arrays), so `settle(version)` unfreezes everything when the served version changed: the next
full pass walks the whole heap once (one pause as long as without freezing, per swap) and frees
them, and what survives is frozen again. Both are for a process whose life is the worker
(`refold consume`, the benchmarks' consumers); `settle()` does nothing until
`freeze_startup_heap()` has run.

>>> settle()                     # not in a worker's process: nothing happens
False
"""

from __future__ import annotations

import gc

_settling = False
_full_collections = 0
_UNSET = object()
_version: object = _UNSET


def full_collections() -> int:
    """Full (generation 2) collections since the process started."""
    return int(gc.get_stats()[2]["collections"])


def freeze_startup_heap() -> int:
    """Collect once, then take every object alive now out of the cyclic collector's generations
    (`gc.freeze`); returns how many; from now on `settle()` freezes again after each full
    collection. What a worker builds at start lives as long as the process, and every full
    collection scanned all of it again: a pause of 110-130 ms at load 5 (230-1,300 ms at load
    9), one of which fell inside each 10-s latency run of `refold bench pipeline`."""
    global _settling, _full_collections, _version
    gc.collect()
    gc.freeze()
    _settling, _full_collections, _version = True, full_collections(), _UNSET
    return gc.get_freeze_count()


def settle(version: object = None) -> bool:
    """Between batches: after a full collection since the last call, freeze what survived it
    (its cost does not depend on the heap's size); whether it froze. `version`: the model
    version served; when it changed, unfreeze instead, so that the next full pass frees what the
    old version left in reference cycles."""
    global _full_collections, _version
    if not _settling:
        return False
    if _version is _UNSET:
        _version = version  # the version the worker started with
    elif version != _version:
        _version = version
        gc.unfreeze()
        _full_collections = full_collections()
        return False
    if full_collections() == _full_collections:
        return False
    _full_collections = full_collections()
    gc.freeze()
    return True


def release() -> None:
    """Stop settling and put every frozen object back in the collector's generations (a test
    that froze its own process)."""
    global _settling
    _settling = False
    gc.unfreeze()
