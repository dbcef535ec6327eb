"""The worker's heap freezing (`consumers.heap`): again after each full collection only, and a
frozen object without a reference cycle is still freed when dropped."""

from __future__ import annotations

import gc
import weakref

from consumers import heap


class Entry:
    """A user's entry stand-in: a tracked container that can be weakly referenced."""

    def __init__(self, i: int) -> None:
        self.items = [i]


def test_settle_freezes_what_survived_each_full_collection_and_frees_dropped_entries():
    assert not heap.settle()  # not in a worker's process: nothing
    try:
        heap.freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert not heap.settle()  # no full collection since
        kept = [Entry(i) for i in range(1000)]  # long-lived state made after the start
        gc.collect()
        assert heap.settle()
        assert gc.get_freeze_count() >= frozen + 2000  # the entries and their lists
        assert not heap.settle()
        gone = weakref.ref(kept[0])
        del kept[0]  # an evicted entry: freed by its reference count, frozen or not
        assert gone() is None
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0 and not heap.settle()
