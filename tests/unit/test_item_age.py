"""Item age: the cut-off, unknown creation times, growth and changes."""

from __future__ import annotations

import numpy as np

from models.item_age import ItemAges


def test_items_created_before_the_cutoff_are_too_old() -> None:
    rng = np.random.default_rng(0)
    created = rng.uniform(0, 1000, 3000)
    created[::7] = np.nan
    ages = ItemAges(capacity=4, step=1.0)
    for i, t in enumerate(created.tolist()):
        ages.set(i, None if t != t else t)
    for now, age in [(1000.0, 500.0), (1000.0, 0.0), (2000.0, 10.0), (100.0, 1000.0)]:
        want = np.flatnonzero(created < now - age)  # NaN compares False: never too old
        assert sorted(ages.too_old(now, age).tolist()) == want.tolist()
    assert len(ages) == 3000


def test_the_cutoff_is_rounded_down_to_the_step() -> None:
    ages = ItemAges(step=3600.0)
    ages.set(0, 3000.0)
    assert ages.too_old(now=3500.0, max_age=0.0).tolist() == []  # cut-off 0
    assert ages.too_old(now=7300.0, max_age=0.0).tolist() == [0]  # cut-off 7200


def test_changes_are_seen_by_the_next_question() -> None:
    ages = ItemAges(step=1.0)
    ages.set(0, 10.0)
    assert ages.too_old(100.0, 50.0).tolist() == [0]
    ages.set(0, 90.0)
    ages.set(5, 0.0)
    assert ages.too_old(100.0, 50.0).tolist() == [5]
    assert ages.created_at(5) == 0.0 and np.isnan(ages.created_at(3))
    assert np.isnan(ages.created_at(99))
    assert ages.too_old(100.0, None).tolist() == []
