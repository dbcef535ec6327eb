"""`refold bench refit`, small: a refit cycle next to a bare fit, snapshot speeds, swap pause."""

from __future__ import annotations

import math

import pytest

from producers.synth import SynthConfig, generate
from refold.bench import refit
from refold.core.config import Settings

pytestmark = pytest.mark.slow


def test_the_refit_bench_times_a_cycle_a_bare_fit_a_snapshot_and_a_swap(bootstrap):
    log = generate(SynthConfig(n_events=20_000, n_users=2000, n_items=1000, seed=3))[0]
    r = refit.run(Settings(bootstrap_servers=bootstrap, factors=16, iterations=5), log,
                  publish_items=3000, repeats=1)
    assert r["events"] == len(log) and r["factors"] == 16 and r["snapshot_items"] == 3000
    for key in ("refit_seconds", "implicit_fit_seconds", "overhead_ratio", "publish_mb_per_s",
                "load_mb_per_s", "swap_pause_p50_ms", "swap_prepare_p50_ms"):
        assert math.isfinite(r[key]) and r[key] > 0, key
    assert r["swap_pause_p50_ms"] <= r["swap_pause_p99_ms"]
    assert "overhead" in refit.table(r) and "swap pause" in refit.table(r)
