"""The simulated shop without a pipeline: `random` and `oracle` lists are served by the shop,
so a run is repeatable by its seed and needs no broker."""

from __future__ import annotations

from dataclasses import replace

from producers.population import ShopConfig
from refold.core.config import Settings
from refold.simulate.run import simulate

SHOP = ShopConfig(n_users=150, n_items=120, days=0.25, seed=4, sessions_per_day=4.0)


def test_the_shop_alone_is_repeatable_by_seed(tmp_path) -> None:
    s = Settings(home=str(tmp_path))
    a, b = (simulate(SHOP, s, tmp_path, only=["random", "oracle"])["policies"]
            for _ in range(2))
    for p in (a, b):
        for v in p.values():
            v.pop("seconds")
    assert a == b and a["oracle"]["ctr_at_3"] > a["random"]["ctr_at_3"]
    other = simulate(replace(SHOP, seed=5), s, tmp_path,
                     only=["random"])["policies"]["random"]
    other.pop("seconds")
    assert other != a["random"]
