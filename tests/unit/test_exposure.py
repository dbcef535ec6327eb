"""Exposure feedback: counts reset by interactions, bounded, and the demotion's order."""

from __future__ import annotations

import numpy as np
import pytest

from models.exposure import Exposure, demote
from refold.core.errors import ModelError


def test_counts_grow_per_impression_and_reset_on_interaction() -> None:
    e = Exposure()
    e.shown([1, 2, 2])  # an item twice in one impression counts once
    e.shown([1])
    assert e.counts(np.array([1, 2, 3])).tolist() == [2, 1, 0]
    e.interacted(1)
    assert e.counts(np.array([1, 2])).tolist() == [0, 1]


def test_the_least_recently_shown_are_forgotten_first() -> None:
    e = Exposure(max_items=3)
    e.shown([1, 2, 3])
    e.shown([1])  # 1 is now the most recent
    e.shown([4])
    assert len(e) == 3
    assert e.counts(np.array([1, 2, 3, 4])).tolist() == [2, 0, 1, 1]


def test_state_round_trips_with_item_ids() -> None:
    ids = ["a", "b", "c", "d"]
    e = Exposure()
    e.shown([2, 0])
    e.shown([2])
    state = e.to_state(ids)
    assert state == {"c": 2, "a": 1}
    back = Exposure.from_state(state, ids.index)
    assert back.counts(np.arange(4)).tolist() == e.counts(np.arange(4)).tolist()


def test_demotion_grows_with_the_count_beyond_the_threshold() -> None:
    s = np.array([1.0, 0.9, 0.6, 0.3, 0.0])
    order, new = demote(s, np.array([1, 0, 0, 0, 0]), 2, 0.5)
    assert order.tolist() == [0, 1, 2, 3, 4] and new.tolist() == s.tolist()  # below threshold
    order, _ = demote(s, np.array([2, 0, 0, 0, 0]), 2, 0.5)
    assert order.tolist() == [1, 2, 0, 3, 4]  # one step: half the range, 1.0 -> 0.5
    order, new = demote(s, np.array([3, 0, 0, 0, 0]), 2, 0.5)
    assert order.tolist() == [1, 2, 3, 0, 4] and new[3] == pytest.approx(0.0)
    assert np.all(np.diff(new) <= 0)
    order, _ = demote(s, np.array([9, 9, 0, 0, 0]), 2, 0.0)  # strength 0: off
    assert order.tolist() == [0, 1, 2, 3, 4]


def test_equal_scores_and_empty_candidates() -> None:
    order, _ = demote(np.zeros(3), np.array([0, 5, 0]), 1, 1.0)
    assert order.tolist() == [0, 2, 1]
    order, _ = demote(np.zeros(0), np.zeros(0, dtype=int), 1, 1.0)
    assert len(order) == 0
    with pytest.raises(ModelError):
        demote(np.zeros(1), np.zeros(1), 0, 1.0)
    with pytest.raises(ModelError):
        Exposure(max_items=0)
