"""The simulated customers: seeded, position-biased, fatigued by what they passed on."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from producers.population import DAY, Page, Population, ShopConfig

SMALL = ShopConfig(n_users=300, n_items=200, days=1.0, seed=4)


def test_the_same_seed_gives_the_same_customers_and_the_same_acts() -> None:
    a, b = Population(SMALL), Population(SMALL)
    assert [(s.user, s.start, len(s.pages)) for s in a.sessions] == \
        [(s.user, s.start, len(s.pages)) for s in b.sessions]
    shown = ["i3", "i1", "i4", "i1", "i5"]
    for s in a.sessions[:200]:
        for page in s.pages:
            assert a.visit(page, shown) == b.visit(page, shown)
    c = Population(ShopConfig(n_users=300, n_items=200, days=1.0, seed=5))
    assert not np.allclose(c.users, a.users)


def test_sessions_run_from_arrival_to_the_end_in_order() -> None:
    pop = Population(SMALL)
    end = SMALL.start_time + SMALL.days * DAY
    starts = [s.start for s in pop.sessions]
    assert starts == sorted(starts)
    assert all(pop.arrival[s.user] <= s.start < end for s in pop.sessions)
    new = np.flatnonzero(pop.is_new)
    assert len(new) == round(SMALL.n_users * SMALL.new_users)
    first = {s.user: s.start for s in reversed(pop.sessions)}
    assert all(first[u] == pop.arrival[u] for u in new if u in first)  # first visit on arrival
    assert all(not pop.history(u) for u in new)
    old = [t for u in range(20) if not pop.is_new[u] for t, _ in pop.history(u)]
    assert old and all(SMALL.start_time - SMALL.history_days * DAY <= t < SMALL.start_time
                       for t in old)


def test_examination_falls_with_position_as_one_over_log2() -> None:
    """One item shown at slot 1 or at slot 3 to fresh customers: clicks at slot 3 are
    log2(2)/log2(4) = 1/2 as frequent."""
    config = ShopConfig(n_users=4000, n_items=50, days=1.0, seed=6, p_browse=0.0)
    pop = Population(config)
    item = int(np.argmax(pop.appeal))
    filler = [f"i{k}" for k in range(50) if k != item][:4]
    clicks = {1: 0, 3: 0}
    for u in range(config.n_users):
        slot = 1 if u % 2 == 0 else 3
        shown = [*filler[:slot - 1], f"i{item}", *filler[slot - 1:]]
        acts = pop.visit(Page(u, 0, 0, config.start_time), shown)
        clicks[slot] += any(a.event_type == "click" and a.item_id == f"i{item}" for a in acts)
    ratio = clicks[3] / clicks[1]
    assert clicks[1] > 100
    assert ratio == pytest.approx(1 / math.log2(4), abs=0.12)


def test_an_item_passed_on_is_less_likely_to_be_clicked_and_a_bought_one_hardly() -> None:
    pop = Population(SMALL)
    i = np.array([7])
    p0 = pop.click_probability(0, i)[0]
    pop.memory[0].examined[7] = 2
    assert pop.click_probability(0, i)[0] == pytest.approx(p0 * SMALL.fatigue**2)
    pop.memory[0].bought.add(7)
    assert pop.click_probability(0, i)[0] == pytest.approx(p0 * SMALL.fatigue**2 * SMALL.rebuy)


def test_acts_follow_the_funnel_and_name_their_slot() -> None:
    pop = Population(ShopConfig(n_users=300, n_items=20, days=2.0, seed=8, click_bias=0.0))
    kinds = {"view", "click", "add_to_cart", "purchase"}
    seen = set()
    for s in pop.sessions:
        for page in s.pages:
            acts = pop.visit(page, [f"i{k}" for k in range(5)])
            for a in acts:
                assert a.event_type in kinds
                if a.event_type == "view":  # only items found without the list are viewed
                    assert a.position is None
                if a.position is not None:
                    assert 1 <= a.position <= 5
                seen.add(a.event_type)
            for earlier, later in itertools.pairwise(acts):
                if later.event_type in ("add_to_cart", "purchase"):
                    assert earlier.item_id == later.item_id
    assert seen == kinds


def test_unknown_ids_are_skipped_and_bad_configs_refused() -> None:
    pop = Population(ShopConfig(n_users=5, n_items=5, seed=1, click_bias=10.0, p_browse=0.0))
    acts = pop.visit(Page(0, 0, 0, 0.0), ["nope", "i1"])
    assert all(a.item_id == "i1" for a in acts)
    with pytest.raises(ValueError):
        ShopConfig(new_users=1.0)
    with pytest.raises(ValueError):
        ShopConfig(fatigue=2.0)
