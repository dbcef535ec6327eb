"""The in-process closed loop: refold's ranking, feedback and refits without a broker, on the
same customers as the pipeline's shop."""

from __future__ import annotations

import pytest

from producers.population import ShopConfig
from refold.core.config import Settings
from refold.simulate.inprocess import simulate_in_process

SHOP = ShopConfig(n_users=80, n_items=80, days=0.2, seed=4, sessions_per_day=4.0)

pytestmark = pytest.mark.slow


def _figures(settings: Settings) -> dict:
    report = simulate_in_process(SHOP, settings, ["refold", "content-trending", "popularity",
                                                   "oracle"],
                                 refit_every=4 * 3600.0)
    for v in report["policies"].values():
        v.pop("seconds")
    return report["policies"]


def test_the_loop_is_repeatable_and_every_policy_meets_the_same_pages(tmp_path) -> None:
    s = Settings(home=str(tmp_path))
    a, b = _figures(s), _figures(s)
    assert a == b
    # a customer gets a list once they have had an event, and their first event comes
    # before any list: every policy shows the same number of pages
    assert a["refold"]["impressions"] == a["popularity"]["impressions"] \
        == a["content-trending"]["impressions"] == a["oracle"]["impressions"] > 0
    assert a["refold"]["model_version"] >= 2  # the first model, and a refit during the run
    repeats = a["refold"]["repeats"]
    assert sum(r["impressions"] for r in repeats.values()) == a["refold"]["impressions"]
    assert a["oracle"]["ctr_at_3"] > a["popularity"]["ctr_at_3"]
    first = a["refold"]["first_lists"]
    assert first["users"] > 0 and 0 < first["held"] <= first["oracle"]
    assert 0 < first["ranked"] <= first["oracle"]


def test_a_variant_served_by_the_shop_alone_is_refused(tmp_path) -> None:
    from refold.simulate.inprocess import Loop
    from refold.simulate.pipeline import Variant

    with pytest.raises(ValueError, match="not a refold ranking"):
        Loop(SHOP, Settings(home=str(tmp_path)), Variant("oracle", shop="oracle"), 3600.0)
