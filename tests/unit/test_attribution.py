"""Attribution windows, rec_id in the context, once per slot, and time to first conversion."""

from __future__ import annotations

import pytest

from models.attribution import Attribution, FirstConversion, Slot
from refold.core.errors import ModelError


def slots(rec: str, at: float, items: list[str], source: str = "collaborative") -> list[Slot]:
    return [Slot(item, pos, at, rec, source, pos == 3) for pos, item in enumerate(items, 1)]


def test_an_outcome_within_the_window_goes_to_the_latest_slot_showing_the_item() -> None:
    a = Attribution(window=600.0)
    a.shown(slots("r1", 0.0, ["x", "y", "z"]))
    a.shown(slots("r2", 100.0, ["y", "x"], source="popular"))
    hit = a.outcome("x", "click", 150.0)
    assert (hit.rec_id, hit.position, hit.source) == ("r2", 2, "popular")
    hit = a.outcome("z", "add_to_cart", 599.0)
    assert (hit.rec_id, hit.position, hit.explored) == ("r1", 3, True)


def test_the_window_edges() -> None:
    a = Attribution(window=60.0)
    a.shown(slots("r1", 100.0, ["x"]))
    assert a.outcome("x", "click", 99.0) is None  # before it was shown
    assert a.outcome("x", "click", 160.0) is not None  # at the edge: inside
    a2 = Attribution(window=60.0)
    a2.shown(slots("r1", 100.0, ["x"]))
    assert a2.outcome("x", "click", 160.5) is None


def test_a_rec_id_in_the_context_wins_whatever_the_time() -> None:
    a = Attribution(window=60.0)
    a.shown(slots("r1", 0.0, ["x"]))
    a.shown(slots("r2", 10.0, ["x"]))
    hit = a.outcome("x", "purchase", 5000.0, rec_id="r1")
    assert hit.rec_id == "r1" and hit.position == 1
    assert a.outcome("x", "purchase", 20.0, rec_id="r9") is None


def test_each_slot_counts_each_outcome_kind_once_and_views_are_not_outcomes() -> None:
    a = Attribution()
    a.shown(slots("r1", 0.0, ["x"]))
    assert a.outcome("x", "view", 1.0) is None
    assert a.outcome("x", "click", 1.0).first
    assert not a.outcome("x", "click", 2.0).first
    assert a.outcome("x", "purchase", 3.0).first


def test_memory_is_bounded_by_count_and_by_the_window() -> None:
    a = Attribution(window=100.0, max_slots=4)
    a.shown(slots("r1", 0.0, ["a", "b", "c"]))
    a.shown(slots("r2", 50.0, ["d", "e"]))
    assert len(a) == 4 and a.outcome("a", "click", 60.0) is None  # the oldest went
    a.shown(slots("r3", 500.0, ["f"]))
    assert len(a) == 1  # the others are older than the window before the newest


def test_state_round_trips() -> None:
    a = Attribution(window=100.0)
    a.shown(slots("r1", 0.0, ["a", "b"]))
    a.outcome("a", "click", 1.0)
    b = Attribution.from_state(a.to_state(), window=100.0)
    assert b.to_state() == a.to_state()
    assert not b.outcome("a", "click", 2.0).first


def test_time_to_first_conversion() -> None:
    c = FirstConversion()
    assert c.on_event("click", 100.0) is None
    assert c.on_event("purchase", 400.0) == pytest.approx(300.0)
    assert c.on_event("purchase", 500.0) is None
    back = FirstConversion.from_state(c.to_state())
    assert back.converted and back.first_event == 100.0
    with pytest.raises(ModelError):
        Attribution(window=0.0)
