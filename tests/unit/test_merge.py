"""The timestamp merge of co-partitioned topics: one order whatever the fetch timing."""

from __future__ import annotations

import random
from dataclasses import dataclass

from consumers.merge import TimestampMerge


@dataclass(frozen=True)
class Msg:
    t: str
    p: int
    ts: int
    off: int

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ts)

    def offset(self) -> int:
        return self.off


def stream(seed: int, n: int = 300, partitions: int = 3) -> list[Msg]:
    """Messages of two topics in produce order, with nondecreasing timestamps (ties too)."""
    rng = random.Random(seed)
    offsets: dict[tuple[str, int], int] = {}
    out, ts = [], 1000
    for _ in range(n):
        ts += rng.choice([0, 1, 3])
        key = (rng.choice(["events", "impressions"]), rng.randrange(partitions))
        offsets[key] = offsets.get(key, -1) + 1
        out.append(Msg(*key, ts, offsets[key]))
    return out


def drain(messages: list[Msg], seed: int, batch: int) -> list[Msg]:
    """Feed `messages` in random fetch chunks (each topic-partition in order, but topics and
    partitions arriving at different times), the lag known exactly, as a consumer would."""
    rng = random.Random(seed)
    queues: dict[tuple[str, int], list[Msg]] = {}
    for m in messages:
        queues.setdefault((m.t, m.p), []).append(m)
    merge = TimestampMerge(["events", "impressions"], max_wait=1e9)
    out: list[Msg] = []
    while any(queues.values()) or merge.pending():
        for q in queues.values():  # a fetch brings a random share of each partition's backlog
            n = rng.randrange(0, 6)
            merge.add(q[:n])
            del q[:n]
        out += merge.take(batch, lagging=lambda t, p: bool(queues.get((t, p))))
    return out


def test_a_backlog_is_merged_the_same_whatever_the_fetch_order_and_batch_size() -> None:
    messages = stream(1)
    runs = [drain(messages, seed, batch) for seed, batch in [(1, 500), (2, 7), (3, 1), (4, 50)]]
    per_partition = [[[(m.t, m.off) for m in run if m.p == p] for p in range(3)] for run in runs]
    assert all(r == per_partition[0] for r in per_partition)
    for p in range(3):  # timestamp order, ties to the first topic
        keys = [(m.ts, m.t != "events") for m in runs[0] if m.p == p]
        assert keys == sorted(keys)
    assert sorted(runs[0], key=lambda m: (m.t, m.p, m.off)) == \
        sorted(messages, key=lambda m: (m.t, m.p, m.off))


def test_a_caught_up_topic_does_not_hold_the_other_back() -> None:
    merge = TimestampMerge(["events", "impressions"])
    merge.add([Msg("events", 0, 10, 0), Msg("events", 0, 20, 1)])
    assert [m.off for m in merge.take(10, lagging=lambda t, p: False)] == [0, 1]


def test_a_lagging_topic_holds_its_partition_only_and_only_for_max_wait() -> None:
    now = [0.0]
    merge = TimestampMerge(["events", "impressions"], max_wait=2.0, clock=lambda: now[0])
    merge.add([Msg("events", 0, 10, 0), Msg("events", 1, 10, 0)])
    lag = lambda t, p: (t, p) == ("impressions", 0)  # noqa: E731
    assert [(m.p, m.off) for m in merge.take(10, lag)] == [(1, 0)]
    now[0] = 1.0
    assert merge.take(10, lag) == []
    now[0] = 2.5
    assert [(m.p, m.off) for m in merge.take(10, lag)] == [(0, 0)]
    assert merge.waited_out == 1


def test_the_limit_leaves_the_rest_buffered_and_drop_forgets() -> None:
    merge = TimestampMerge(["events", "impressions"])
    merge.add([Msg("events", 0, ts, ts) for ts in range(5)])
    merge.add([Msg("impressions", 1, ts, ts) for ts in range(5)])
    first = merge.take(4, lagging=lambda t, p: False)
    assert [m.ts for m in first] == [0, 0, 1, 1] and merge.pending() == 6
    assert merge.drop([("events", 0)]) == 3
    assert [m.t for m in merge.take(10, lagging=lambda t, p: False)] == ["impressions"] * 3
    merge.add([Msg("events", 2, 1, 0)])
    assert merge.drop() == 1 and merge.pending() == 0
