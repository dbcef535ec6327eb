"""`refold bench soak`, short: a real worker process under a stream with new users all along."""

from __future__ import annotations

import math

import pytest

from refold.bench import soak
from refold.core.config import Settings

pytestmark = pytest.mark.slow


def test_a_short_soak_samples_memory_lag_and_latency_and_sees_no_error(bootstrap, unique_prefix,
                                                                        tmp_path):
    png = tmp_path / "soak.png"
    r = soak.run(Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix,
                          state_cache_mb=8),
                 minutes=0.5, rate=200, cache_users=500, sample_seconds=5, png=str(png))
    assert r["errors"] == 0
    assert r["events"] >= 0.8 * 200 * 30 and r["users"] > 500  # the cache was outgrown
    assert len(r["samples"]) >= 5
    assert all(x["rss_mb"] > 0 for x in r["samples"])
    assert math.isfinite(r["latency_p99_ms"]) and r["lag_max"] >= 0
    # the worker's own account, from its /metrics once it serves them: its stores' memory, the
    # users it holds (never more than the cache), its full collections counted
    scraped = [x for x in r["samples"] if math.isfinite(x["store_cache_mb"])]
    assert len(scraped) >= 3 and scraped[-1]["store_cache_mb"] > 0
    assert all(x["users_cached"] <= 500 for x in scraped) and scraped[-1]["users_cached"] > 0
    assert r["gc_full_collections"] >= 0
    assert math.isfinite(r["rss_slope_mb_per_min"]) and math.isfinite(r["rss_step_max_mb"])
    full = [x for x in r["samples"] if soak.full(x, 500, 8)]
    assert r["caches_full"] == bool(full)
    if full:  # fitted from the first sample with both caches full
        assert r["rss_slope_from_minute"] == full[0]["minute"]
    assert png.stat().st_size > 10_000
    assert "RSS slope" in soak.table(r)
