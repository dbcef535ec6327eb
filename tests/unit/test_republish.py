"""Lists that hold an item the catalog deactivated, published again without a broker: who is
queued, what each new list and record is, what an abort keeps (the all-in-memory user state; the
store's index has its own tests in test_state_local.py, the whole path runs against the broker
in tests/integration/test_republish.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec
import numpy as np

from consumers.batch import Output
from consumers.feedback import Facts, Feedback
from consumers.republish import Republisher
from consumers.state.memory import MemoryState
from models.foldin import ItemFactors
from models.foldin_config import FoldInConfig
from models.recommender import OnlineRecommender
from refold.core.schemas import Event, Item, decode_recommendation

ITEMS = [f"i{k}" for k in range(30)]


class Recorded:
    """What a transaction's producer was given (no broker: `Output` only calls these)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, Any, int]] = []

    def produce(self, topic, value, key, partition, **_: Any) -> None:
        self.sent.append((topic, value, key, partition))

    def poll(self, _timeout: float) -> int:
        return 0


class Read:
    """The catalog message an item came in (what `Republisher` notes of it)."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 9_000_000)


def worker_like(n_users: int = 8) -> tuple[OnlineRecommender, MemoryState, Feedback]:
    """Users who each had one event and got one list, committed (as a worker leaves them)."""
    rng = np.random.default_rng(3)
    rec = OnlineRecommender(FoldInConfig(k=5, full_events=1),
                            ItemFactors(ITEMS, rng.normal(size=(30, 4)).astype(np.float32), 1))
    state = MemoryState(rec, SimpleNamespace(topic="cl"), 10)  # type: ignore[arg-type]
    fb = Feedback(rec)
    for n in range(n_users):
        ev = Event(event_id=f"e{n}", user_id=f"u{n}", item_id=f"i{n}", event_type="click",
                   event_time=100.0 + n)
        assert state.admit(ev, ev.event_id, n % 2)
        fb.apply([(ev, n % 2)], Facts())
        (_, candidates), = rec.process_batch([ev], [n % 2], k=fb.depth)
        fb.decide(ev, candidates, Facts())
    state.commit()
    return rec, state, fb


def lists(rec: OnlineRecommender, users: list[str]) -> dict[str, list[str]]:
    return {u: list(rec.users.get(u).feedback.list_items) for u in users}


def held_by_some(before: dict[str, list[str]]) -> tuple[str, set[str]]:
    counts: dict[str, int] = {}
    for items in before.values():
        for i in items:
            counts[i] = counts.get(i, 0) + 1
    x = max(counts, key=lambda i: min(counts[i], len(before) - counts[i]))
    holders = {u for u, items in before.items() if x in items}
    assert 0 < len(holders) < len(before)
    return x, holders


def deactivate(rec: OnlineRecommender, republisher: Republisher, x: str, offset: int) -> None:
    item = Item(item_id=x, active=False)
    rec.apply_items([item])
    republisher.catalog_read([(item, Read(offset))])  # type: ignore[list-item]


def test_exactly_the_users_holding_the_item_get_a_new_list_without_it() -> None:
    rec, state, fb = worker_like()
    users = [f"u{n}" for n in range(8)]
    before = lists(rec, users)
    x, holders = held_by_some(before)
    republisher = Republisher(rec, state, fb, recs_topic="recs", items_topic="items",
                              clock=lambda: 7.0, chunk=2)
    republisher.installed([0, 1])
    assert not republisher.due()
    deactivate(rec, republisher, x, offset=41)
    assert {u for q in republisher.queued.values() for u in q} == holders
    producer, made = Recorded(), 0
    while republisher.due():  # one transaction per chunk
        n = republisher.handle(Output(producer))  # type: ignore[arg-type]
        assert n <= 2 and republisher.partitions()  # the chunk, and whose offsets fence it
        made += n
        republisher.promote()
    assert made == republisher.published == len(holders)
    recs = [decode_recommendation(v) for t, v, _, _ in producer.sent if t == "recs"]
    records = [(k, p) for t, _, k, p in producer.sent if t == "cl"]
    assert sorted(r.user_id for r in recs) == sorted(holders)
    assert sorted(k.decode() for k, _ in records) == sorted(holders)  # their new records
    after = lists(rec, users)
    for r in recs:
        assert [i.item_id for i in r.items] == after[r.user_id] and x not in after[r.user_id]
        assert len(r.items) == 5 and r.generated_at == 7.0
        assert (r.cause.reason, r.cause.event_id, r.cause.topic, r.cause.offset) == (
            "item_inactive", x, "items", 41)
        assert r.cause.event_time == 9000.0
    assert {u: after[u] for u in users if u not in holders} == \
        {u: before[u] for u in users if u not in holders}  # the others are untouched
    deactivate(rec, republisher, x, offset=42)  # again: nobody holds it any more
    assert not republisher.due()


def test_an_abort_keeps_the_users_queued_and_their_committed_state() -> None:
    rec, state, fb = worker_like()
    users = [f"u{n}" for n in range(8)]
    before = lists(rec, users)
    x, holders = held_by_some(before)
    republisher = Republisher(rec, state, fb, recs_topic="recs", items_topic="items")
    republisher.installed([0, 1])
    deactivate(rec, republisher, x, offset=5)
    assert republisher.handle(Output(Recorded())) == len(holders)  # type: ignore[arg-type]
    assert lists(rec, users) != before
    republisher.rollback()
    assert lists(rec, users) == before and republisher.published == 0
    assert {u for q in republisher.queued.values() for u in q} == holders
    first = Recorded()
    republisher.handle(Output(first))  # type: ignore[arg-type]
    republisher.promote()
    redo = Recorded()  # the same work again (after a crash): the same lists, by the same ids
    rec2, state2, fb2 = worker_like()
    again = Republisher(rec2, state2, fb2, recs_topic="recs", items_topic="items")
    again.installed([0, 1])
    deactivate(rec2, again, x, offset=5)
    again.handle(Output(redo))  # type: ignore[arg-type]

    def sent(p: Recorded) -> list[dict]:
        out = [msgspec.json.decode(v) for t, v, _, _ in p.sent if t == "recs"]
        for r in out:
            r.pop("generated_at")
        return out
    assert sent(first) == sent(redo)


def test_a_partition_installed_finds_the_users_of_items_already_inactive() -> None:
    rec, state, fb = worker_like()
    users = [f"u{n}" for n in range(8)]
    x, holders = held_by_some(lists(rec, users))
    republisher = Republisher(rec, state, fb, recs_topic="recs", items_topic="items")
    deactivate(rec, republisher, x, offset=3)  # read before any partition was held
    assert not republisher.due()
    republisher.installed([1])
    assert set(republisher.queued[1]) == {u for u in holders if int(u[1:]) % 2 == 1}
    republisher.revoked([1])
    assert not republisher.due()


def test_a_chunk_whose_handling_raises_is_dropped_and_the_state_kept() -> None:
    rec, state, fb = worker_like()
    users = [f"u{n}" for n in range(8)]
    before = lists(rec, users)
    x, _ = held_by_some(before)
    republisher = Republisher(rec, state, fb, recs_topic="recs", items_topic="items")
    republisher.installed([0, 1])
    deactivate(rec, republisher, x, offset=5)

    class Broken(Recorded):
        def produce(self, *args: Any, **kw: Any) -> None:
            raise RuntimeError("a bug")

    try:
        republisher.handle(Output(Broken()))  # type: ignore[arg-type]
    except RuntimeError:
        republisher.give_up()  # what consumers.inputless does, in this order
        republisher.rollback()
    assert lists(rec, users) == before and not republisher.due()
