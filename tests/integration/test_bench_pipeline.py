"""`refold bench pipeline` measures what it says: every event reaches an output, counts add up."""

from __future__ import annotations

import pytest

from refold.bench import pipeline, pipeline_report
from refold.core.config import Settings
from refold.core.kafka import make_admin

pytestmark = pytest.mark.slow

KEYS = ("events", "partitions", "batch_size", "refold_events_per_s", "passthrough_events_per_s",
        "refold_over_passthrough", "latency_p50_ms", "latency_p99_ms",
        "passthrough_latency_p50_ms", "passthrough_latency_p99_ms", "rate_events_per_s",
        "memory_events_per_s", "store_over_memory", "memory_latency_p99_ms")


def test_a_small_run_covers_every_event_and_cleans_up(bootstrap: str, unique_prefix: str):
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix,
                        events_partitions=3, batch_size=100, factors=8, iterations=3)
    workload = pipeline.load_workload(settings, "synth", events=1500)
    r = pipeline.run(settings, workload, rate=500, latency_events=400, repeat=1)

    assert r["checks"] == dict.fromkeys(r["checks"], True), r["checks"]
    assert set(KEYS) <= set(r)
    assert (r["events"], r["partitions"], r["batch_size"]) == (1500, 3, 100)
    assert r["latency_events"] == 400
    for key in KEYS:
        assert r[key] > 0, key
    assert r["latency_p50_ms"] <= r["latency_p99_ms"] <= r["latency_max_ms"]
    # one list per user and batch: at most one per event; the copy is one per event
    assert 0 < r["refold_outputs"] <= r["events"] == r["passthrough_outputs"]
    assert 0 < r["memory_outputs"] <= r["events"]
    # what stopped each consumer in its latency run: every batch was handled and committed
    for prefix in ("", "memory_", "passthrough_"):
        assert r[f"{prefix}longest_handle_ms"] > 0 and r[f"{prefix}longest_commit_ms"] > 0
        assert r[f"{prefix}gc_gen2_collections"] >= 0 and r[f"{prefix}gc_pause_ms"] >= 0
    # where each throughput run's time went adds up to its time (per 1,000 events)
    for kind in ("refold", "memory", "passthrough"):
        part = r[f"{kind}_ms_per_1000_events"]
        assert part["handle"] > 0 and part["commit"] > 0 and part["cpu"] > 0, (kind, part)
        busy = sum(part[k] for k in ("handle", "commit", "promote", "other"))
        assert busy == pytest.approx(1e6 / r[f"{kind}_events_per_s"], rel=1e-6), (kind, part)
    assert r["refold_ms_per_1000_events"]["promote"] > 0  # the stores take the batch
    assert "slowest batch" in pipeline_report.table(r)
    left = [t for t in make_admin(settings).list_topics(timeout=10).topics
            if t.startswith(unique_prefix)]
    assert left == []
