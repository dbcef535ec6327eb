"""`refold bench guarantee`, small: both guarantees side by side, and an in-memory restore."""

from __future__ import annotations

import pytest

from refold.bench import guarantee
from refold.core.config import Settings

pytestmark = pytest.mark.slow


def test_the_guarantee_bench_runs_both_guarantees_and_a_restore(bootstrap, unique_prefix):
    r = guarantee.run(Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix),
                      events=2000, repeat=1, users=300)
    t, s = r["throughput"], r["restore"]
    assert set(t["median"]) == set(guarantee.GUARANTEES)
    assert all(m["events_per_s"] > 0 and m["batches"] >= 1 for m in t["median"].values())
    assert t["exactly_once_over_at_least_once"] > 0
    assert s["users"] == 300 and s["records"] >= 300 and s["total_s"] > 0
    assert "restore of 300 users" in guarantee.table(r)
