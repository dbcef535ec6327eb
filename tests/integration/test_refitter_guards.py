"""The refitter's guards on a real broker: events re-sent under any user or partition count once
within the horizon; a second refitter refuses to start next to a live one; and if two ever
publish, the later fences the earlier, so no version number is published twice."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from consumers.assembly import RefitterOptions, assemble_refitter
from consumers.instances import DuplicateInstance, members
from consumers.refitter import Triggers
from consumers.snapshot_publisher import SnapshotPublisher
from consumers.snapshots import load_latest
from consumers.tail import TopicTail
from models.snapshot import Snapshot, parse_key
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.errors import KafkaFatalError
from refold.core.kafka import make_admin
from refold.core.schemas import Event

from .helpers import wait_for

pytestmark = pytest.mark.slow

OPTIONS = RefitterOptions(holdout=0.1, triggers=Triggers(0, 0, 3600), serve_metrics=False)


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=3, factors=8, iterations=3, k=10,
                         dedup_horizon_seconds=3600.0)


def events(n: int) -> list[Event]:
    rng = np.random.default_rng(0)
    return [Event(event_id=f"e{t}", user_id=f"u{int(rng.integers(0, 100))}",
                  item_id=f"i{int(rng.integers(0, 80))}", event_type="purchase",
                  event_time=1.7e9 + t) for t in range(n)]


def test_the_refitter_counts_an_event_id_once_whatever_user_or_partition(settings) -> None:
    sent = events(2000)
    again = [Event(event_id=ev.event_id, user_id=f"other-{j}", item_id=ev.item_id,
                   event_type=ev.event_type, event_time=ev.event_time + 60)
             for j, ev in enumerate(sent[::10])]  # the same ids, other users (partitions)
    late = [Event(event_id=ev.event_id, user_id=ev.user_id, item_id=ev.item_id,
                  event_type=ev.event_type, event_time=ev.event_time + 7200)
            for ev in sent[:50]]  # beyond the horizon of their first time: new events
    with EventProducer(settings) as producer:
        producer.send_many(sent + again + late)
    refitter = assemble_refitter(settings, OPTIONS)
    assert refitter.run(once=True, restore_timeout=20) == 0
    assert refitter.duplicates == len(again)
    assert refitter.store.events == len(sent) + len(late)


def test_a_second_refitter_refuses_to_start_next_to_a_live_one(settings) -> None:
    with EventProducer(settings) as producer:
        producer.send_many(events(300))
    first = assemble_refitter(settings, OPTIONS)
    thread = threading.Thread(target=first.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: members(make_admin(settings), settings.refit_group), 30,
                 "the first refitter in its group")
        second = assemble_refitter(settings, OPTIONS)
        t0 = time.monotonic()
        with pytest.raises(DuplicateInstance, match="another refitter is running"):
            second.run(once=True, restore_timeout=5)
        assert time.monotonic() - t0 >= 10  # it waited out a possible ghost's session first
        assert second.published == 0
    finally:
        first.stop()
        thread.join(60)


def test_a_fenced_publisher_cannot_publish_a_colliding_version(settings) -> None:
    tid = f"{settings.topic_prefix}{settings.refit_group}.publisher"
    y = np.eye(4, dtype=np.float32)
    early = SnapshotPublisher(settings, transactional_id=tid)
    early.publish(Snapshot.build(1, time.time(), ["a", "b", "c", "d"], y))
    late = SnapshotPublisher(settings, transactional_id=tid)
    late.fence()  # a second refitter that raced past the group check
    with pytest.raises(Exception) as err:
        early.publish(Snapshot.build(2, time.time(), ["a", "b", "c", "d"], y * 2))
    assert isinstance(err.value, KafkaFatalError) or "fenced" in str(err.value).lower()
    late.publish(Snapshot.build(2, time.time(), ["a", "b", "c", "d"], y * 3))
    late.close()
    snap = load_latest(settings, timeout=20)
    assert snap.version == 2 and float(snap.Y[0, 0]) == 3.0  # the later one's
    tail, manifests = TopicTail(settings, settings.topic("snapshots")), []
    try:
        assert tail.catch_up(manifests.extend, 20)
    finally:
        tail.close()
    versions = [parse_key(m.key())[0] for m in manifests if parse_key(m.key())[1] is None]
    assert versions == [1, 2]  # read_committed: the fenced attempt's records never show
