"""`refold bench state` on a few thousand users: every figure is there and consistent."""

from __future__ import annotations

import pytest

from refold.bench import state
from refold.core.config import Settings

pytestmark = pytest.mark.slow


def test_state_bench_restores_restarts_and_serves(bootstrap, unique_prefix):
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_partitions=2)
    r = state.run(s, [3000], tail=200, cache_users=500, serve_events=3000, in_memory_max=3000)
    assert r["users"] == 3000
    assert r["restored_records"] == 3000 + 2  # every user, and each partition's meta
    assert r["tail_records"] == 200 + 2  # only what came after the first restore
    assert r["restart_seconds_same_disk"] > 0 and r["restore_seconds_new_disk"] > 0
    assert r["served_events"] == 3000 and 0 < r["cache_hit_rate"] < 1
    assert r["rss_mb"] > 0 and r["rss_mb_per_million_users"] == pytest.approx(
        r["rss_mb"] * 1e6 / 3000)
    assert r["restore_seconds_in_memory"] > 0 and r["rss_mb_in_memory"] > 0
    assert r["serve_events_per_second_in_memory"] > 0 and r["serve_events_per_second"] > 0
    assert "restart on the same disk" in state.table(r)
