"""The whole loop against the real broker: the simulated shop reads lists from the
recommendations topic, reports impressions, its customers' clicks and purchases become events, a
refitter and a worker (real processes) learn from them, and off-policy estimates are made from
what was logged."""

from __future__ import annotations

import pytest

from models.exploration import Policy
from models.rescore import Rescore, Rescored
from producers.population import ShopConfig
from refold.ope import estimate, join, read_file
from refold.simulate.run import simulate

pytestmark = pytest.mark.slow

SHOP = ShopConfig(n_users=150, n_items=120, days=0.25, seed=4, sessions_per_day=4.0)
FIGURES = {"ctr_at_1", "ctr_at_3", "ctr_at_5", "conversion_rate", "ttfc_seconds_median",
           "coverage", "impressions"}


def test_the_whole_loop_runs_and_its_logs_estimate_what_was_measured(make_settings,
                                                                     tmp_path) -> None:
    s = make_settings(events_partitions=2)
    report = simulate(SHOP, s, tmp_path, only=["refold", "refold-no-exploration", "random"],
                      parallel=2, refit_every=2 * 3600.0, export_to=tmp_path / "logs.jsonl")
    pols = report["policies"]
    assert set(pols) == {"refold", "refold-no-exploration", "random"}
    for name, p in pols.items():
        assert set(p) >= FIGURES, name
        assert 0 <= p["ctr_at_3"] <= 1 and p["impressions"] > 100, (name, p)
    refold = pols["refold"]
    assert refold["model_version"] >= 2  # the first model and at least one refit in the run
    assert refold["explored_share"] > 0 and pols["refold-no-exploration"]["explored_share"] == 0
    # every impression the shop reported was read by the worker, and its clicks counted there
    assert refold["metrics"]["impressions"] == refold["impressions"]
    assert refold["metrics"]["ctr_at_3"] == pytest.approx(refold["ctr_at_3"], abs=0.02)

    rows = {(r["policy"], r["estimator"]): r for r in report["ope"]}
    logged = rows["logged", "on_policy"]
    assert logged["n"] == refold["impressions"]  # the logs read back hold every impression
    assert logged["estimate"] == pytest.approx(refold["ctr_at_3"], abs=0.02)
    for estimator in ("ips", "snips", "dr"):
        r = rows["refold-no-exploration", estimator]
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"], r
        assert 0 < r["ess"] <= logged["n"]
        assert r["truth"] == pols["refold-no-exploration"]["ctr_at_3"]
    # the exported logs give `refold ope --from-file` the same estimates
    exported = estimate(join(read_file(tmp_path / "logs.jsonl")), [("none", Policy())], 3)
    assert [(r.estimator, r.estimate) for r in exported[1:]] == [
        (e, rows["refold-no-exploration", e]["estimate"]) for e in ("ips", "snips", "dr")]
    # lists log their candidates' ids, so another ranking of them is estimable offline
    lists = join(read_file(tmp_path / "logs.jsonl"))
    assert all(log.candidates is not None and log.popularity is not None for log in lists)
    assert any(log.popularity.sum() > 0 for log in lists)
    rescored = Rescored(Policy("plackett_luce", temperature=0.1), Rescore(popularity=1.0))
    for r in estimate(lists, [("blend", rescored)], 3)[1:]:
        assert r.ci_low <= r.estimate <= r.ci_high and 0 < r.ess <= len(lists), r
