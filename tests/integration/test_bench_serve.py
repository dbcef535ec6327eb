"""`refold bench serve` end to end on the real broker, small: wrk drives `refold serve`, the view
is read side by side, and the figures carry the keys the README quotes."""

from __future__ import annotations

import pytest

from refold.bench import serve
from refold.core.config import Settings


@pytest.mark.slow
def test_bench_serve_prints_both_sides(bootstrap: str, unique_prefix: str) -> None:
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix)
    r = serve.run(settings, users=3000, items=500, rate=300, duration=3, connections=4)
    keys = {"users", "requests", "rps", "p50_ms", "p99_ms", "errors"}
    assert keys <= set(r) and keys <= set(r["view"])
    assert r["users"] == r["view"]["users"] == r["users_held"] == 3000
    assert r["errors"] == 0 and r["view"]["errors"] == 0
    assert r["requests"] == r["view"]["requests"] > 0
    assert 0 < r["p50_ms"] <= r["p99_ms"] and 0 < r["view"]["p50_ms"] <= r["view"]["p99_ms"]
    assert 0 < r["memory_mb_per_million_users"] < r["view"]["memory_mb_per_million_users"]
    assert "view.get" in serve.table(r)
