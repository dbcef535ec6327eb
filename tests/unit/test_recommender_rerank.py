"""What the ranking does after scoring: old items leave, the diversity knob, continuation slots."""

from __future__ import annotations

import numpy as np
import pytest

from models.foldin import ItemFactors
from models.recommender import FoldInConfig, OnlineRecommender
from refold.core.schemas import Item

DAY = 86400.0
IDS = [f"i{k}" for k in range(12)]


def factors() -> ItemFactors:
    rng = np.random.default_rng(1)
    return ItemFactors(IDS, rng.normal(size=(len(IDS), 4)).astype(np.float32), 1)


def crowd(rec: OnlineRecommender, t: float = 0.0) -> None:
    """Popularity: i11 most, then i10, ..."""
    for k in range(len(IDS)):
        for j in range(k):
            rec.learn(f"p{k}-{j}", IDS[k], "click", t=t)


@pytest.mark.parametrize("with_model", [False, True])
def test_items_older_than_the_limit_leave_the_lists(with_model: bool) -> None:
    now = 400 * DAY
    rec = OnlineRecommender(FoldInConfig(k=12, full_events=1, max_item_age_seconds=30 * DAY),
                            factors() if with_model else None)
    rec.apply_items([Item(item_id=x, created_at=(now - (k * 10 + 1) * DAY) if k % 2 else None)
                     for k, x in enumerate(IDS)])
    crowd(rec, t=now)
    rec.learn("u", "i0", "purchase", t=now)
    got = set(rec.recommend("u", now=now).items) | set(rec.recommend("new", now=now).items)
    too_old = {x for k, x in enumerate(IDS) if k % 2 and k * 10 + 1 > 30}
    assert too_old == {"i3", "i5", "i7", "i9", "i11"}
    assert got and not got & too_old and "i1" in got  # 11 days old: stays


def test_the_diversity_knob_spreads_categories() -> None:
    cats = {x: [f"c{k % 3}" if k < 9 else f"c{k}"] for k, x in enumerate(IDS)}

    def categories(strength: float) -> int:
        rec = OnlineRecommender(FoldInConfig(k=4, diversity=strength, diversity_depth=12))
        rec.apply_items([Item(item_id=x, categories=c) for x, c in cats.items()])
        for k in range(9):  # the popular items share three categories
            for j in range(10 + k):
                rec.learn(f"p{k}-{j}", IDS[k], "click", t=0.0)
        items = rec.recommend("new", now=0.0).items
        assert len(items) == 4
        return len({c for x in items for c in cats[x]})

    assert categories(0.0) <= 3 < categories(0.9)


def test_a_carted_item_comes_back_in_a_marked_slot_until_bought() -> None:
    rec = OnlineRecommender(FoldInConfig(k=5, full_events=1), factors())
    crowd(rec)
    rec.learn("u", "i3", "add_to_cart", t=0.0)
    rec.learn("u", "i7", "click", t=10.0)
    r = rec.recommend("u", now=DAY)
    assert r.items[0] == "i3" and r.reasons == ["continue", None, None, None, None]
    assert len(r.items) == 5 and len(set(r.items)) == 5
    state = rec.user_state("u")
    assert state["open"] == [["i3", 0.0]]
    other = OnlineRecommender(FoldInConfig(k=5, full_events=1), factors())
    crowd(other)
    other.restore_user("u", state)
    assert other.recommend("u", now=DAY).reasons == r.reasons
    assert rec.recommend("u", now=8 * DAY).reasons is None  # a week has passed
    rec.learn("u", "i3", "purchase", t=2 * DAY)
    after = rec.recommend("u", now=2 * DAY)
    assert after.reasons is None and "i3" not in after.items


def test_continuation_has_an_off_switch_and_a_position() -> None:
    off = OnlineRecommender(FoldInConfig(k=5, continuation_seconds=0.0))
    crowd(off)
    off.learn("u", "i0", "bookmark", t=0.0)
    assert off.recommend("u", now=1.0).reasons is None
    on = OnlineRecommender(FoldInConfig(k=5, continuation_position=2))
    crowd(on)
    on.learn("u", "i0", "bookmark", t=0.0)
    r = on.recommend("u", now=1.0)
    assert r.items[2] == "i0" and r.reasons[2] == "continue"
