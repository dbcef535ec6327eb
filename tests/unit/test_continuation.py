"""Continuation: open and closed bookmarks and carts, the window, the state, reserved slots."""

from __future__ import annotations

import pytest

from models.continuation import MARK, Continuation, reserve


def test_opening_closing_and_the_window() -> None:
    c = Continuation()
    c.observe(1, "bookmark", 0.0)
    c.observe(2, "add_to_cart", 10.0)
    c.observe(3, "view", 20.0)       # views open nothing
    c.observe(4, "add_to_cart", 30.0)
    c.observe(4, "dismiss", 40.0)
    c.observe(2, "rating", 50.0)
    assert c.pending(now=60.0, window_seconds=100.0) == [1]
    assert c.pending(now=101.0, window_seconds=100.0) == []
    c.observe(1, "add_to_cart", 90.0)  # carted again: newer
    assert c.pending(now=150.0, window_seconds=100.0) == [1]


def test_newest_first_and_bounded() -> None:
    c = Continuation(max_items=2)
    for t, item in enumerate([5, 6, 7]):
        c.observe(item, "bookmark", float(t))
    assert c.pending(10.0, 100.0) == [7, 6]
    assert len(c) == 2
    with pytest.raises(ValueError):
        Continuation(max_items=0)


def test_state_round_trip_with_ids() -> None:
    ids = ["a", "b", "c"]
    c = Continuation()
    c.observe(2, "bookmark", 5.0)
    c.observe(0, "add_to_cart", 6.0)
    state = c.to_state(ids)
    assert state == [["c", 5.0], ["a", 6.0]]
    back = Continuation.from_state(state, ids.index)
    assert back.pending(10.0, 100.0) == c.pending(10.0, 100.0) == [0, 2]


def test_reserve_places_marks_and_keeps_the_length() -> None:
    items, scores = [1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6]
    got = reserve(items, scores, [9], k=4, slots=1, position=1)
    assert got == ([1, 9, 2, 3], [0.9, 0.8, 0.8, 0.7], [None, MARK, None, None])
    got = reserve(items, scores, [3, 9], k=4, slots=2, position=0)
    assert got == ([3, 9, 1, 2], [0.7, 0.9, 0.9, 0.8], [MARK, MARK, None, None])
    got = reserve(items, scores, [9], k=4, slots=1, position=10)  # clipped into the list
    assert got[0] == [1, 2, 3, 9] and got[2][-1] == MARK


def test_reserve_without_pending_or_allowed_items() -> None:
    items, scores = [1, 2], [0.5, 0.4]
    assert reserve(items, scores, [], k=2) == ([1, 2], [0.5, 0.4], [None, None])
    assert reserve(items, scores, [7], k=2, allowed={7: False}) == ([1, 2], [0.5, 0.4],
                                                                      [None, None])
    assert reserve([], [], [7], k=3, allowed=lambda i: True) == ([7], [0.0], [MARK])
