"""The simulated shop's `popularity` baseline: global popularity only, counted from what the shop
sent before each page, less what the customer bought; and its exposure-feedback variant."""

from __future__ import annotations

from collections import Counter

import numpy as np

from models.decision import Demotion
from producers.population import Population, ShopConfig
from refold.simulate.pipeline import Variant
from refold.simulate.popular import MostPopular
from refold.simulate.shop import Shop
from refold.simulate.tally import Tally

SHOP = ShopConfig(n_users=150, n_items=120, days=0.25, seed=4, sessions_per_day=4.0)


def test_counts_every_event_before_the_page_and_leaves_out_what_the_customer_bought() -> None:
    pop = MostPopular(n_items=5)
    for item, t in [(3, 1.0), (3, 2.0), (3, 3.0), (1, 4.0), (1, 5.0), (4, 6.0), (0, 50.0)]:
        pop.add(item, t)
    assert pop.top("a", 3, now=10.0).tolist() == [3, 1, 4]
    pop.bought("a", 3)
    assert pop.top("a", 3, now=10.0).tolist() == [1, 4, 0]  # 0: no count yet, lowest index
    assert pop.top("b", 3, now=10.0).tolist() == [3, 1, 4]  # another customer: the same list
    for t in (51.0, 52.0, 53.0):
        pop.add(0, t)
    assert pop.top("b", 2, now=60.0).tolist() == [0, 3]  # 4 events on 0 before 60 s


def test_events_added_out_of_order_count_from_their_own_time() -> None:
    pop = MostPopular(n_items=3)
    pop.add(2, 30.0)
    pop.add(1, 10.0)
    assert pop.top("a", 1, now=20.0).tolist() == [1]
    assert pop.top("a", 1, now=31.0).tolist() == [1]  # 1 and 2 tie at one: lower index
    pop.add(2, 32.0)
    assert pop.top("a", 1, now=40.0).tolist() == [2]


def test_exposure_variant_sinks_what_the_customer_ignored_and_nothing_else() -> None:
    pop = MostPopular(n_items=6, demotion=Demotion(min_count=1, strength=1.0), depth=6)
    for item, n in [(0, 5), (1, 4), (2, 3), (3, 2), (4, 1)]:
        for k in range(n):
            pop.add(item, float(k))
    assert pop.top("a", 2, now=10.0).tolist() == [0, 1]
    pop.shown("a", [0, 1])
    pop.interacted("a", 1)  # answered: stays where it was
    top = pop.top("a", 2, now=10.0).tolist()
    assert top[0] == 1 and 0 not in top
    assert pop.top("b", 2, now=10.0).tolist() == [0, 1]  # b was shown nothing


def _lists(variant: str) -> tuple[dict, list[list[str]]]:
    shown: list[list[str]] = []

    class Recording(Tally):
        def impression(self, items: list[str], explored: list[bool]) -> None:
            shown.append(list(items))
            super().impression(items, explored)

    tally = Recording.for_shop(SHOP)
    Shop(Population(SHOP), Variant(variant, shop=variant), tally).run()
    return tally.result(), shown


def test_the_shop_serves_global_popularity_to_everyone() -> None:
    figures, shown = _lists("popularity")
    again, _ = _lists("popularity")
    assert figures == again and figures["impressions"] == len(shown) > 100
    # one list for everyone, but for the items a customer bought: the pages' lists hardly vary
    firsts = Counter(tuple(s[:3]) for s in shown)
    assert firsts.most_common(1)[0][1] > 0.5 * len(shown)
    assert figures["coverage"] < 0.1
    other, _ = _lists("popularity-exposure")
    assert other["impressions"] == figures["impressions"]
    assert other["coverage"] > figures["coverage"]
    assert np.isfinite(other["ctr_at_3"])
