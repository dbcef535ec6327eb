"""The worker's heap freezing (`consumers.heap`): again after each full collection only, a
frozen object without a reference cycle still freed when dropped, and everything unfrozen when
the model version changes, so that what it leaves in reference cycles is freed."""

from __future__ import annotations

import gc
import weakref

from consumers import heap


class Cyclic:
    """An old version's part that refers to itself (as a detector holding its bound method)."""

    def __init__(self) -> None:
        self.check = self.__init__


class Entry:
    """A user's entry stand-in: a tracked container that can be weakly referenced."""

    def __init__(self, i: int) -> None:
        self.items = [i]


def test_settle_freezes_what_survived_each_full_collection_and_frees_dropped_entries():
    assert not heap.settle(1)  # not in a worker's process: nothing
    try:
        heap.freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert not heap.settle(1)  # no full collection since
        kept = [Entry(i) for i in range(1000)]  # long-lived state made after the start
        gc.collect()
        assert heap.settle(1)
        assert gc.get_freeze_count() >= frozen + 2000  # the entries and their lists
        assert not heap.settle(1)
        gone = weakref.ref(kept[0])
        del kept[0]  # an evicted entry: freed by its reference count, frozen or not
        assert gone() is None
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0 and not heap.settle(1)


def test_a_new_model_version_unfreezes_so_that_the_old_ones_cycles_are_freed():
    try:
        heap.freeze_startup_heap()
        old = Cyclic()
        gc.collect()
        assert heap.settle(1) and gc.get_freeze_count() > 0  # frozen with the rest
        assert not heap.settle(2) and gc.get_freeze_count() == 0  # a new version: unfrozen
        gone = weakref.ref(old)
        del old  # the old version's part, dropped in its reference cycle
        gc.collect()
        assert gone() is None
        assert heap.settle(2) and gc.get_freeze_count() > 0  # what survived, frozen again
    finally:
        heap.release()
