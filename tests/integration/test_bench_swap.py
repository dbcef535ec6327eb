"""`refold bench swap` on a small model: every swap is seen, timed and classed."""

from __future__ import annotations

import math

import pytest

from refold.bench import swap
from refold.core.config import Settings

pytestmark = pytest.mark.slow


def test_swap_bench_times_each_swap_and_the_events_that_waited(bootstrap):
    r = swap.run(Settings(bootstrap_servers=bootstrap), items=2000, factors=16, users=200,
                 rate=100.0, batch_size=50, swaps=2, interval=1.5)
    assert r["swaps"] == 2 and r["mode"] == "prepared"
    assert 0 <= r["swap_pause_p50_ms"] <= r["swap_pause_p99_ms"] < 1000
    assert r["events_no_swap"] > 50 and r["events_during_swap"] > 0
    for key in ("latency_p99_ms_no_swap", "latency_p99_ms_during_swap"):
        assert math.isfinite(r[key]) and r[key] > 0, key
    assert r["swap_factors_ms"]["prepared"] < r["swap_factors_ms"]["inline"]
    assert "swap pause" in swap.table(r)


def test_with_the_index_each_version_is_served_once_its_index_is_built(bootstrap):
    r = swap.run(Settings(bootstrap_servers=bootstrap), items=2000, factors=16, users=200,
                 rate=100.0, batch_size=50, swaps=1, interval=1.5, ann=True)
    assert r["ann"] and r["swaps"] == 1 and r["events_during_swap"] > 0
    assert "with the index" in swap.table(r)
