"""The SDK and the replayer against the real broker."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from producers.replay import replay
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_consumer, watermarks
from refold.core.schemas import Event, SchemaError, decode_event, encode

ROOT = Path(__file__).resolve().parents[2]
ML100K = Path(os.environ.get("REFOLD_ML100K", ROOT.parent / "shared" / "datasets" / "ml-100k"))


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=4)


def read_all(settings: Settings, topic: str) -> list:
    """Every message of a topic, from the beginning to the end offsets seen at the start."""
    consumer = make_consumer(settings, "test-reader")
    try:
        ends = {p: high for p, (_low, high) in watermarks(consumer, topic).items()}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        out, left = [], {p for p, end in ends.items() if end > 0}
        while left:
            for msg in consumer.consume(1000, timeout=5):
                assert msg.error() is None, msg.error()
                out.append(msg)
                if msg.offset() >= ends[msg.partition()] - 1:
                    left.discard(msg.partition())
        return out
    finally:
        consumer.close()


def test_sdk_round_trip_10000_events_byte_identical_in_user_order(settings):
    sent = [Event(event_id=f"e{i}", user_id=f"u{i % 97}", item_id=f"i{(i * 7) % 501}",
                  event_type="click", event_time=1.7e9 + i, session_id=f"s{i // 50}")
            for i in range(10_000)]
    acks = []
    with EventProducer(settings, on_delivery=lambda err, msg: acks.append(err)) as producer:
        producer.send_many(sent)
    assert len(acks) == 10_000 and not any(acks)
    msgs = read_all(settings, settings.topic("events"))
    assert len(msgs) == 10_000
    by_id = {e.event_id: encode(e) for e in sent}
    per_user = defaultdict(list)
    for m in msgs:
        ev = decode_event(m.value())
        assert m.value() == by_id[ev.event_id]  # byte-identical
        assert m.key().decode() == ev.user_id
        per_user[ev.user_id].append(ev.event_time)
    assert all(times == sorted(times) for times in per_user.values())
    assert len(per_user) == 97


def test_invalid_events_are_rejected_before_kafka(settings):
    with EventProducer(settings) as producer:
        with pytest.raises(SchemaError, match="item_id"):
            producer.send(Event(event_id="x", user_id="u", item_id="", event_type="view",
                                event_time=1.0))
        with pytest.raises(SchemaError, match="value: a rating event needs a value"):
            producer.send(Event(event_id="y", user_id="u", item_id="i", event_type="rating",
                                event_time=1.0))
    consumer = make_consumer(settings, "test-empty")
    marks = watermarks(consumer, settings.topic("events"))
    consumer.close()
    assert len(marks) == settings.events_partitions
    assert sum(high for _low, high in marks.values()) == 0


@pytest.mark.slow
def test_replay_ml100k_delivers_every_event_in_time_order_per_user(settings):
    from producers.datasets import load_movielens

    log, catalog = load_movielens(ML100K)
    with EventProducer(settings) as producer:
        report = replay(log.iter_events("ml"), producer, catalog=catalog, progress=False)
    assert report.events == 100_000 and report.items == 1682
    msgs = read_all(settings, settings.topic("events"))
    assert len(msgs) == 100_000
    seen, per_user = set(), defaultdict(list)
    for m in msgs:
        ev = decode_event(m.value())
        seen.add(ev.event_id)
        per_user[ev.user_id].append((ev.event_time, int(ev.event_id.rsplit("-", 1)[1])))
    assert len(seen) == 100_000
    assert len(per_user) == 943
    for rows in per_user.values():  # event time order, and file order within equal times
        assert rows == sorted(rows)
    items = read_all(settings, settings.topic("items"))
    assert len(items) == 1682
