"""`refold bench serve` end to end on the real broker, small: wrk drives `refold serve`
processes in turn, the view is read side by side, and the figures carry the keys the README quotes.

The servers: as shipped (`--gc freeze`), with Python's collector unchanged (`--gc default`), and
as shipped at a higher priority where this user may raise one."""

from __future__ import annotations

import pytest

from refold.bench import serve
from refold.core.config import Settings


@pytest.mark.slow
def test_bench_serve_prints_both_sides(bootstrap: str, unique_prefix: str) -> None:
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix)
    r = serve.run(settings, users=3000, items=500, rate=300, duration=3, connections=4)
    keys = {"users", "requests", "rps", "p50_ms", "p99_ms", "errors"}
    base = r["baseline"]
    servers = [r, base] + ([r["priority"]] if "priority" in r else [])
    assert keys <= set(r) and keys <= set(r["view"]) and keys - {"users"} <= set(base)
    assert (r["gc"], r["nice"], base["gc"], base["nice"]) == ("freeze", 0, "default", 0)
    assert r["users"] == r["view"]["users"] == 3000
    assert r["errors"] == r["view"]["errors"] == 0
    assert r["requests"] == r["view"]["requests"] > 0
    for x in servers:  # figures read from each server's /metrics and the kernel's schedstat
        assert x["users_held"] == 3000 and x["errors"] == 0 and x["requests"] > 0
        assert x["gc_pause_ms"] > 0 and x["gc_full_collections"] >= 0
        assert x["server_cpu_us_per_request"] > 0 and x["loop_wait_ms_per_s"] >= 0
        assert x["other_threads_cpu_ms_per_s"] >= 0
        assert x["handler_p99_ms"] > 0 and x["wrk_wait_ms_per_s"] >= 0
    for x in [*servers, r["view"]]:
        assert 0 < x["p50_ms"] <= x["p99_ms"]
    assert 0 < r["memory_mb_per_million_users"] < r["view"]["memory_mb_per_million_users"]
    assert "view.get" in serve.table(r) and "--gc default" in serve.table(r)
