"""An item deactivated in the catalog leaves the lists published on the recommendations topic at
once: the workers publish again the lists of exactly the users whose last list held it, with no
new event, in transactions of their own; and a worker killed before such a transaction commits
loses nothing and publishes nothing twice (its successor finds the work again)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from consumers.model_source import save_npz
from consumers.tail import TopicTail
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.schemas import Item, Recommendation, decode_recommendation
from refold.core.topics import create_topics

from .helpers import committed, wait_for
from .test_state import FAST, PARTITIONS, drifting_users, settings_for
from .workers import WorkerThread

pytestmark = pytest.mark.slow


def published(s: Settings) -> list[Recommendation]:
    """Every committed list on the recommendations topic, in offset order per partition."""
    tail, out = TopicTail(s, s.topic("recommendations"), batch=10_000), []
    try:
        assert tail.catch_up(lambda msgs: out.extend(
            decode_recommendation(m.value()) for m in msgs), 30)
    finally:
        tail.close()
    return out


def again(s: Settings) -> list[Recommendation]:
    """The lists published because an item of the user's last list turned inactive."""
    return [r for r in published(s) if r.cause is not None and r.cause.reason == "item_inactive"]


def held_by_some(lists: list[Recommendation]) -> tuple[str, set[str]]:
    """The item in the latest lists of as near half the users as there is, and those users."""
    latest = {r.user_id: [i.item_id for i in r.items] for r in lists}
    counts = Counter(i for items in latest.values() for i in items)
    x = max(counts, key=lambda i: min(counts[i], len(latest) - counts[i]))
    holders = {u for u, items in latest.items() if x in items}
    assert 0 < len(holders) < len(latest)
    return x, holders


def start(s: Settings, factors) -> tuple[list, WorkerThread]:
    events, items, _ = drifting_users(n_users=60, n_events=600, days=2.0)
    create_topics(make_admin(s), s)
    with EventProducer(s) as producer:
        for item in items:
            producer.send_item(item)
        producer.send_many(events)
    worker = WorkerThread(s, factors, join_timeout=60, consumer_extra=FAST).start()
    wait_for(lambda: committed(s) == len(events), 60, "the events")
    return events, worker


def deactivate(s: Settings, item_id: str) -> None:
    with EventProducer(s) as producer:
        producer.send_item(Item(item_id=item_id, active=False))


def test_lists_holding_a_deactivated_item_are_published_again(bootstrap, unique_prefix,
                                                              tmp_path) -> None:
    s = settings_for(bootstrap, unique_prefix, tmp_path)
    _, _, factors = drifting_users(n_users=60, n_events=600, days=2.0)
    events, a = start(s, factors)
    before = published(s)
    x, holders = held_by_some(before)
    deactivate(s, x)
    wait_for(lambda: len(again(s)) >= len(holders), 30, "the lists published again")
    wait_for(lambda: not a.worker.inputless.due(), 30, "the queue emptied")
    time.sleep(2.0)  # anything more would have come by now
    lists = published(s)
    redone = [r for r in lists if r.cause is not None and r.cause.reason == "item_inactive"]
    assert sorted(r.user_id for r in redone) == sorted(holders)  # each once, nobody else
    assert len(lists) == len(before) + len(holders)
    assert committed(s) == len(events)  # no input was consumed for them
    for r in redone:
        assert x not in [i.item_id for i in r.items] and len(r.items) == s.k
        assert (r.cause.event_id, r.cause.topic) == (x, s.topic("items"))
        assert r.rec_id and r.model_version is not None
    rec = a.worker.recommender
    for r in redone:  # the users' records hold the new lists
        assert list(rec.users.get(r.user_id).feedback.list_items) == [i.item_id for i in r.items]
    stores = a.worker.state.local.stores
    assert all(stores[p].listing(x) == [] for p in range(PARTITIONS))
    some = redone[0]
    home = rec.users.partition_of(some.user_id)
    a.stop()

    # a worker on a new disk (rebuilt from the changelog) finds nothing to publish again
    b = WorkerThread(s.replace(state_dir=str(tmp_path / "disk-b")), factors, join_timeout=60,
                     consumer_extra=FAST).start()
    wait_for(lambda: b.worker.restores, 60, "the restore")
    time.sleep(2.0)
    assert len(published(s)) == len(lists)
    stores = b.worker.state.local.stores
    assert all(stores[p].listing(x) == [] for p in range(PARTITIONS))
    assert some.user_id.encode() in stores[home].listing(
        some.items[0].item_id)  # the index was derived from the changelog's records
    b.stop()


def test_a_worker_killed_before_publishing_again_loses_nothing(bootstrap, unique_prefix,
                                                               tmp_path, refold_process) -> None:
    s = settings_for(bootstrap, unique_prefix, tmp_path)
    _, _, factors = drifting_users(n_users=60, n_events=600, days=2.0)
    model = tmp_path / "model.npz"
    save_npz(model, factors)
    events, a = start(s, factors)
    before = published(s)
    x, holders = held_by_some(before)
    a.stop()
    log = tmp_path / "worker.log"
    args = ["consume", "--model", str(model), "--no-follow-snapshots", "--no-refit-on-drift",
            *(arg for k, v in FAST.items() for arg in ("--consumer-config", f"{k}={v}"))]
    killed = refold_process(s, *args, log=log, env={"REFOLD_TEST_CRASH_AT": "inputless:1"})
    wait_for(lambda: "restored partition(s)" in log.read_text(), 60, "the restore")
    deactivate(s, x)
    assert killed.wait(60) < 0, log.read_text()[-3000:]  # SIGKILLed, the transaction open
    assert "killing this process" in log.read_text()
    last = refold_process(s, *args, log=log)
    wait_for(lambda: len(again(s)) >= len(holders), 60, "the lists published again")
    time.sleep(2.0)
    last.stop()
    redone = again(s)
    assert sorted(r.user_id for r in redone) == sorted(holders)  # once each, none aborted
    assert all(x not in [i.item_id for i in r.items] for r in redone)
    assert committed(s) == len(events)
