"""What a run left behind, compared with an uninterrupted reference run: the changelog as
compaction keeps it, the latest list of every user, the dead letters. The fault tests (and the
changelog's) require a run with crashes, restarts or rebalances to leave the same."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import pytest

from consumers.recs_view import RecommendationsView
from consumers.tail import TopicTail
from models.packing import unpack
from models.trending import at_shift
from refold.core.config import Settings

from .helpers import open_transactions, wait_for

BOTH = ("events", "impressions")
"""The input topics, each partition of which holds one poison message."""
OUTPUTS = ("changelog", "recommendations", "dead_letter")
"""The topics the workers write in their transactions."""


def final_state(settings: Settings) -> dict[bytes, dict]:
    """The changelog as compaction would leave it: the latest committed value of every key."""
    tail, latest = TopicTail(settings, settings.topic("changelog"), batch=10_000), {}

    def keep(messages) -> None:
        for m in messages:
            latest[m.key()] = m.value()

    try:
        assert tail.catch_up(keep, 30)
    finally:
        tail.close()
    return fold_deltas({k: msgspec.json.decode(v) for k, v in latest.items() if v is not None})


def fold_deltas(state: dict[bytes, dict]) -> dict[bytes, dict]:
    """Co-visit rows as a restore reads them: each row delta applied to the row record of its
    generation, the generation left out (runs batched differently write a row in full at
    different times: `models.covisit_plain`), counts unpacked."""
    out = {}
    for key, value in state.items():
        if b"/codelta/" in key:
            continue
        if b"/covisit/" in key:
            delta = state.get(key.replace(b"/covisit/", b"/codelta/"))
            value = {k: v for k, v in value.items() if k != "g"}
            ids, w = list(value["ids"]), unpack(value["w"], "<f8").tolist()
            if delta is not None and delta["g"] == state[key].get("g", 0):
                d = delta["d"]
                ids, w = (ids + [None] * d)[:d], (w + [0.0] * d)[:d]
                for slot, j, x in zip(unpack(delta["s"], "<i4").tolist(), delta["ids"],
                                      unpack(delta["w"], "<f8").tolist(), strict=True):
                    ids[slot], w[slot] = j, x
                value["n"] = delta["n"]
            value.update(ids=ids, w=w)
        out[key] = value
    return out


def final_lists(settings: Settings) -> dict[str, tuple]:
    with RecommendationsView(settings) as view:
        assert view.catch_up(30)
        return {u: ([i.item_id for i in r.items], [i.score for i in r.items], r.source,
                    r.model_version, r.cause.event_id, r.cause.partition, r.cause.offset,
                    r.rec_id, [i.propensity for i in r.items], r.candidate_scores)
                for u, r in view.latest.items()}


def dead_letters(settings: Settings) -> list:
    tail, out = TopicTail(settings, settings.topic("dead_letter")), []
    try:
        assert tail.catch_up(out.extend, 20)
    finally:
        tail.close()
    return out


@dataclass
class Final:
    state: dict[bytes, dict]
    lists: dict[str, tuple]


def assert_close(got: list | None, want: list | None, user: str) -> None:
    """Scores, propensities and candidate scores agree to float32 precision; a reserved
    slot's propensity is None in both."""
    if got is None or want is None:
        assert got == want, user
        return
    assert [g is None for g in got] == [w is None for w in want], user
    assert [g for g in got if g is not None] == pytest.approx(
        [w for w in want if w is not None], rel=1e-5, abs=1e-6), user


def at_meta_shift(entry: dict, meta: dict) -> dict:
    """An item record with its popularity as of the partition's last rescale: records written
    either side of a rescale (batches end at different events in each run) hold one state."""
    if "pop" not in entry:
        return entry
    pop = at_shift(unpack(entry["pop"], "<f8").copy(), np.array(entry.get("sh", 0)),
                   np.array(meta.get("sh", 0)))
    return {**{k: v for k, v in entry.items() if k != "sh"}, "pop": pop.tolist()}


def key_difference(got: dict, want: dict) -> str:
    """The keys one side has and the other lacks (a failed equality says which)."""
    return (f"missing {sorted(want.keys() - got.keys())[:20]}, "
            f"unexpected {sorted(got.keys() - want.keys())[:20]}")


def assert_same_as(reference: Final, settings: Settings,
                   dead_letters_at_least_once: bool = False) -> None:
    # what a killed worker left open is aborted by the broker in its own time (up to the
    # transaction timeout and the broker's 10 s check after the kill): until then a
    # read_committed reader stops at it, and would see the lists committed after it as missing
    wait_for(lambda: not open_transactions(settings, OUTPUTS), 60, "open transactions to end")
    state, lists = final_state(settings), final_lists(settings)
    assert state.keys() == reference.state.keys(), key_difference(state, reference.state)
    for key, want in reference.state.items():
        got = state[key]
        if key.endswith(b"/meta") or "history" in want:  # users, offsets, counters: exact
            assert got == want, key
        else:  # an item of a partition: exact popularity and users; its vector, nearly
            meta = reference.state[key.split(b"/")[0] + b"/meta"]
            got, want = at_meta_shift(got, meta), at_meta_shift(want, meta)
            vec, want_vec = got.pop("vec", None), want.get("vec")
            assert got == {k: v for k, v in want.items() if k != "vec"}, key
            assert (vec is None) == (want_vec is None), key
            if vec is not None:
                assert vec == pytest.approx(want_vec, rel=1e-4, abs=1e-6), key
    assert lists.keys() == reference.lists.keys(), key_difference(lists, reference.lists)
    for user, want in reference.lists.items():
        got = lists[user]
        assert (got[0], got[2:7]) == (want[0], want[2:7]), user
        assert got[7] == want[7], user  # rec_id
        for g, w in ((got[1], want[1]), (got[8], want[8]), (got[9], want[9])):
            assert_close(g, w, user)
    letters = dead_letters(settings)
    sources = sorted((dict(m.headers())["source_topic"].decode(),
                      int(dict(m.headers())["source_partition"])) for m in letters)
    every = sorted((settings.topic(t), p) for t in BOTH for p in range(settings.events_partitions))
    if dead_letters_at_least_once:
        assert sorted(set(sources)) == every
    else:  # every poison message once, however many crashes
        assert sources == every
