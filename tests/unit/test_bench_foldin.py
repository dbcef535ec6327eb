"""The fold-in benchmark compares like with like: refold's lists equal implicit's."""

from __future__ import annotations

import pytest

from refold.bench import foldin


@pytest.mark.slow
def test_refold_top_k_equals_implicit_recalculate_user_per_event_and_batched():
    r = foldin.run(items=1500, factors=16, events=300, k=10, river_events=5)
    assert r["topk_match_rate_per_event"] == 1.0
    assert r["topk_match_rate_batched"] == 1.0
    for key in ("items", "factors", "refold_events_per_s", "implicit_events_per_s",
                "river_events_per_s", "topk_match_rate"):
        assert r[key] > 0
