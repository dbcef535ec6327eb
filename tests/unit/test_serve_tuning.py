"""`refold serve`'s collector settings: pauses timed per generation, the state frozen out."""

from __future__ import annotations

import gc

from refold.core import metrics as M
from refold.serve.tuning import PAUSES, settle


def full_collections() -> float:
    for family in M.SERVE_GC_PAUSE.collect():
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels["generation"] == "2":
                return sample.value
    return 0.0


def test_each_collection_is_timed_into_the_histogram_by_generation() -> None:
    pauses = PAUSES.install()  # the process's one timer (a served app in this process too)
    try:
        before, seen = full_collections(), pauses.count
        gc.collect(2)
        gc.collect(2)
        assert full_collections() == before + 2 and pauses.count >= seen + 2
        assert pauses.longest > 0
    finally:
        pauses.remove()
    gc.collect(2)
    assert full_collections() == before + 2  # removed: no longer timed


def test_settle_moves_what_survives_out_of_the_collectors_walks() -> None:
    held = [[i] for i in range(10_000)]  # containers the collector would walk
    try:
        frozen = settle()
        assert frozen >= len(held) and gc.get_freeze_count() >= len(held)
        assert not any(o is held for o in gc.get_objects(2))  # a full collection skips them
    finally:
        gc.unfreeze()
    assert any(o is held for o in gc.get_objects(2))


def test_the_cli_offers_every_mode() -> None:
    from refold.cli.serve import serve
    from refold.serve.tuning import GC_MODES

    option = next(p for p in serve.params if p.name == "gc_mode")
    assert tuple(option.type.choices) == GC_MODES and option.default == GC_MODES[0]
