"""Workers' local stores against the real broker: a restore from a changelog the log cleaner has
compacted (expired users' tombstones included) is the same state; a worker killed in the middle
of a restore, and one killed while a new model version comes in (snapshots followed), lose
nothing and count nothing twice; poison messages become dead letters and the partitions move on.
"""

from __future__ import annotations

import hashlib
import random
import time

import msgspec
import numpy as np
import pytest
from confluent_kafka.admin import NewTopic

from consumers.changelog import parse_key
from consumers.deadletter import KEEP_BYTES
from consumers.model_source import foldin_config
from consumers.tail import TopicTail
from models.foldin import ItemFactors
from models.recommender import OnlineRecommender
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_producer
from refold.core.schemas import Event, Item
from refold.core.topics import create_topics

from .helpers import committed, wait_for
from .workers import WorkerThread

pytestmark = pytest.mark.slow

DAY = 86400.0
PARTITIONS = 3
FAST = {"heartbeat.interval.ms": 250, "session.timeout.ms": 6000}
COMPACTING = {"cleanup.policy": "compact", "segment.ms": "200", "min.compaction.lag.ms": "0",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"}
"""A changelog the broker's log cleaner compacts within seconds (`log.cleaner.backoff.ms`)."""


def drifting_users(n_users: int = 240, n_events: int = 1800, days: float = 12.0,
                   seed: int = 1) -> tuple[list[Event], list[Item], ItemFactors]:
    """Events in time order over `days`; each user is active for about two days, so users
    go idle all along; 60 items, random factors."""
    rng = random.Random(seed)
    start = {u: rng.uniform(0, days - 2) * DAY for u in range(n_users)}
    events = []
    for j in range(n_events):
        t = days * DAY * j / n_events
        active = [u for u in range(n_users) if start[u] <= t <= start[u] + 2 * DAY]
        u = rng.choice(active or [0])
        events.append(Event(event_id=f"d-{j}", user_id=f"u{u}", item_id=f"i{rng.randrange(60)}",
                            event_type=rng.choice(["view", "click", "purchase"]),
                            event_time=1.7e9 + t))
    items = [Item(item_id=f"i{i}", categories=[f"c{i % 5}"]) for i in range(60)]
    y = np.random.default_rng(seed).standard_normal((60, 8)).astype(np.float32) * 0.3
    return events, items, ItemFactors([f"i{i}" for i in range(60)], y, version=1)


def settings_for(bootstrap: str, prefix: str, tmp_path, **changes) -> Settings:
    base = dict(bootstrap_servers=bootstrap, topic_prefix=prefix, events_partitions=PARTITIONS,
                consumer_group=f"{prefix}foldin", batch_size=50, k=10, factors=8,
                home=str(tmp_path / "home"), state_dir=str(tmp_path / "disk-a"),
                user_expiry_seconds=3 * DAY, dedup_horizon_seconds=DAY)
    return Settings(**{**base, **changes})


def changelog_records(s: Settings) -> dict[bytes, bytes | None]:
    """Every record of the changelog now (latest per key, tombstones as None) and how many."""
    tail, latest, count = TopicTail(s, s.topic("changelog"), batch=10_000), {}, [0]

    def keep(messages) -> None:
        for m in messages:
            latest[m.key()] = m.value()
            count[0] += 1

    try:
        assert tail.catch_up(keep, 30)
    finally:
        tail.close()
    latest[b"__count__"] = str(count[0]).encode()
    return latest


def view(worker, users: list[str]) -> dict:
    """What a worker holds, read through its public parts: users' histories and event ids
    (from its store when not in memory) and each partition's state."""
    rec = worker.recommender
    out = {u: (rec.user_state(u), worker.state.event_ids(u, p)) for u, p in users}
    parts = {p: rec.partition(p).to_plain(rec.catalog.ids, rec.model_version)
             for p in range(PARTITIONS)}
    for plain in parts.values():
        for entry in plain["items"].values():
            entry.pop("vec", None)
    return {"users": out, "parts": parts}


def test_a_restore_from_the_compacted_changelog_is_the_same_state(bootstrap, unique_prefix,
                                                                   tmp_path) -> None:
    events, items, factors = drifting_users()
    s = settings_for(bootstrap, unique_prefix, tmp_path)
    admin = make_admin(s)
    admin.create_topics([NewTopic(s.topic("changelog"), PARTITIONS, 1, config=COMPACTING)]
                        )[s.topic("changelog")].result(30)
    create_topics(admin, s)
    with EventProducer(s) as producer:
        for item in items:
            producer.send_item(item)
        producer.send_many(events)
    a = WorkerThread(s, factors, join_timeout=60, consumer_extra=FAST).start()
    wait_for(lambda: committed(s) == len(events), 120, "the events")
    written = a.worker.counts["changelog_records"]
    expired = a.worker.state.expired
    users = sorted({(ev.user_id, p) for ev in events for p in [a_partition(a, ev.user_id)]})
    before = view(a.worker, [(u, p) for u, p in users])
    a.stop()
    gone = [u for u, (state, _) in before["users"].items() if state is None]
    assert 50 < len(gone) <= expired  # expired (some came back later): tombstoned, unknown
    # the log cleaner compacts the changelog: roll the active segments, then wait for it
    deadline = time.monotonic() + 180
    while int(changelog_records(s)[b"__count__"]) > 0.5 * written:
        assert time.monotonic() < deadline, "the log cleaner did not compact the changelog"
        producer = make_producer(s)
        for p in range(PARTITIONS):  # a tombstone of no one: rolls the segment, changes nothing
            producer.produce(s.topic("changelog"), None, b"~~nobody", partition=p)
        producer.flush(10)
        time.sleep(3)
    after_compaction = changelog_records(s)
    assert not any(parse_key(k)[1] in gone for k, v in after_compaction.items()
                   if v is not None and k != b"__count__")
    b = WorkerThread(s.replace(state_dir=str(tmp_path / "disk-b")), factors, join_timeout=60,
                     consumer_extra=FAST).start()  # a new disk: from the compacted changelog
    wait_for(lambda: b.worker.restores, 60, "the restore")
    after = view(b.worker, users)
    b.stop()
    assert b.worker.restores[0].records < written
    assert after == before


def a_partition(worker: WorkerThread, user: str) -> int:
    """The events partition of a user (its key's), as the producer chose it."""
    return worker.worker.recommender.users.partition_of(user)


class RaisesOnBoom(OnlineRecommender):
    """A recommender with a bug only the event "boom" triggers."""

    def process_batch(self, events, partitions=None, **options):
        events = list(events)
        if any(ev.event_id == "boom" for ev in events):
            raise RuntimeError("a bug that only this event triggers")
        return super().process_batch(events, partitions, **options)


def test_poison_messages_are_dead_letters_and_the_partitions_move_on(
        bootstrap, unique_prefix, tmp_path) -> None:
    s = settings_for(bootstrap, unique_prefix, tmp_path, batch_size=20)
    admin = make_admin(s)
    admin.create_topics([NewTopic(s.topic("events"), PARTITIONS, 1,
                                  config={"max.message.bytes": str(4 << 20)})]
                        )[s.topic("events")].result(30)
    create_topics(admin, s)
    events, items, factors = drifting_users(n_users=30, n_events=300)

    def raw(ev: Event, **changes) -> bytes:
        return msgspec.json.encode({**msgspec.to_builtins(ev), **changes})

    target = events[150]  # poison goes to its user's partition, between good events
    depth = 3000
    poison = {
        "too_deep": raw(target, event_id="deep", extra=None)[:-1].replace(
            b'"extra":null', b'"extra":' + b"[" * depth + b"]" * depth) + b"}",
        "oversize": raw(target, event_id="huge", context={"pad": "x" * (3 << 20)}),
        "out_of_range": raw(target, event_id="inf", weight=1e39),
        "exception": raw(target, event_id="boom"),
    }
    producer = make_producer(s, {"message.max.bytes": 4 << 20})
    for j, ev in enumerate(events):
        producer.produce(s.topic("events"), raw(ev), ev.user_id.encode())
        if j == 150:
            for value in poison.values():
                producer.produce(s.topic("events"), value, target.user_id.encode())
    assert producer.flush(30) == 0
    with EventProducer(s) as items_out:
        for item in items:
            items_out.send_item(item)
    rec = RaisesOnBoom(foldin_config(s), factors)
    w = WorkerThread(s, recommender=rec, join_timeout=60, consumer_extra=FAST).start()
    wait_for(lambda: committed(s) == len(events) + len(poison), 120, "every message")
    w.stop()
    assert w.worker.counts["events"] == len(events)  # nothing valid lost
    assert w.loop.stats.handle_failures >= 3  # retried, then isolated
    assert w.worker.counts["users_reset"] == 0  # tried on an empty state, it raised still
    tail, letters = TopicTail(s, s.topic("dead_letter")), []
    try:
        assert tail.catch_up(letters.extend, 20)
    finally:
        tail.close()
    got = {dict(m.headers())["error_class"].decode(): m for m in letters}
    assert sorted(got) == sorted(poison) and len(letters) == len(poison)
    assert b"raised RuntimeError: a bug" in dict(got["exception"].headers())["reason"]
    assert b"nested too deeply" in dict(got["too_deep"].headers())["reason"]
    assert b"float32" in dict(got["out_of_range"].headers())["reason"]
    huge = got["oversize"]
    h = dict(huge.headers())
    assert len(huge.value()) == KEEP_BYTES and h["truncated"] == b"true"
    assert int(h["original_size"]) == len(poison["oversize"])
    assert h["original_sha256"] == hashlib.sha256(poison["oversize"]).hexdigest().encode()
    assert huge.value() == poison["oversize"][:KEEP_BYTES]


def test_a_snapshot_with_wrong_shapes_is_refused_and_the_worker_keeps_its_version(
        bootstrap, unique_prefix, tmp_path) -> None:
    from consumers.snapshot_publisher import SnapshotPublisher
    from models.snapshot import Snapshot, encode_chunks
    from tests.unit.test_snapshot_shapes import tampered

    s = settings_for(bootstrap, unique_prefix, tmp_path)
    create_topics(make_admin(s), s)
    events, _items, factors = drifting_users(n_users=20, n_events=100)
    with SnapshotPublisher(s) as publisher:
        publisher.publish(Snapshot.build(1, time.time(), factors.item_ids, factors.Y))
    w = WorkerThread(s, None, join_timeout=60, consumer_extra=FAST, follow_snapshots=True,
                     snapshot_wait=10).start()
    wait_for(lambda: w.assembled.follower is not None, 30, "the follower")
    good = Snapshot.build(2, time.time(), factors.item_ids, factors.Y * np.float32(2))
    bad = tampered(good.to_bytes(), "Y", [len(factors.item_ids) // 2, 16])  # checksum is right
    chunks, manifest = encode_chunks(bad, 2)
    producer = make_producer(s)
    for c in [*chunks, manifest]:
        producer.produce(s.topic("snapshots"), c.value, c.key, headers=list(c.headers.items()))
    producer.flush(10)
    wait_for(lambda: w.assembled.follower.refused >= 1, 30, "the refusal")
    with EventProducer(s) as out:
        out.send_many(events)
    wait_for(lambda: committed(s) == len(events), 60, "the events")
    w.stop()
    assert "shape" in w.assembled.follower.last_refusal
    assert w.worker.recommender.model_version == 1  # still serving the version it had
