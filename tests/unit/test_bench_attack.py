"""`refold bench attack` on a small shop: the four replays, the table and the figure."""

from __future__ import annotations

import pytest

from refold.bench import attack


@pytest.mark.slow
def test_the_bench_shows_the_guard_keeping_the_target_out(tmp_path) -> None:
    s = attack.Scenario(n_users=400, n_items=200, events=8000, days=7.0, bots=20,
                        events_per_bot=80, partitions=3, batch=200, factors=8)
    calls = []
    result = attack.run(s, progress=lambda: calls.append(1))
    runs = result["runs"]
    assert len(calls) == 4 and list(runs) == [
        "honest log, guard off", "honest log, guard on", "attacked log, guard off",
        "attacked log, guard on"]
    assert runs["attacked log, guard off"]["max_partitions_with_target"] == s.partitions
    # a small shop: one vote a day from each of 20 bots may touch a partition's top 10 briefly
    off_series = runs["attacked log, guard off"]["partitions_with_target"]
    on_series = runs["attacked log, guard on"]["partitions_with_target"]
    assert sum(on_series) < sum(off_series) / 10
    assert runs["attacked log, guard on"]["automated_users"] >= s.bots // 2
    assert runs["attacked log, guard on"]["guard_events"]["automated"] > 0
    off = runs["attacked log, guard off"]["share_of_lists_with_target"]
    assert runs["attacked log, guard on"]["share_of_lists_with_target"] < off / 2
    assert "attacked log, guard on" in attack.table(result)
    png = attack.plot(result, tmp_path / "attack.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
