"""The bridge on the real broker: a shop's records (its own field names, type names, millisecond
and ISO 8601 times, keyed by session) become refold events keyed and partitioned by user, bad
records become dead letters, skipped types vanish, and a restart delivers nothing twice."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import uuid
import zlib

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from consumers.bridge import assemble_bridge
from refold.core.config import Settings, environment
from refold.core.kafka import make_admin
from refold.core.schemas import decode_event
from refold.core.topics import create_topics

USERS = [f"u{i}" for i in range(30)]


@pytest.fixture
def settings(bootstrap: str, unique_prefix: str) -> Settings:
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_partitions=3,
                 bridge_source_topic=f"{unique_prefix}shop-clicks",
                 bridge_group=f"{unique_prefix}bridge", instance_id="b0", batch_size=50,
                 bridge_fields=["user_id=customer.id", "item_id=sku", "event_type=action",
                                "event_time=ts", "session_id=sid", "context.page=page"],
                 bridge_types=["pv=view", "atc=add_to_cart", "buy=purchase"],
                 bridge_skip_types=["heartbeat"], bridge_time_unit="auto")
    create_topics(make_admin(s), s)  # type: ignore[arg-type]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(s.bridge_source_topic, 2, 1)])[
        s.bridge_source_topic].result(30)
    return s


def shop_records(rng: random.Random) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """(key, value) of the shop's topic, and how many of each outcome they should give."""
    out, expect = [], {"events": 0, "dead_letters": 0, "skipped": 0}
    for i in range(400):
        user, sid = rng.choice(USERS), f"s{rng.randrange(60)}"
        ms = 1_732_356_000_000 + i * 1000
        record = {"customer": {"id": user}, "sku": f"sku-{rng.randrange(50)}",
                  "action": rng.choice(["pv", "atc", "buy", "click"]), "sid": sid,
                  "page": "home", "ts": ms if i % 4 else f"2024-11-23T10:{i % 60:02d}:00Z"}
        kind = i % 20
        if kind == 0:
            value, outcome = b"{not json", "dead_letters"
        elif kind == 1:
            del record["customer"]
            value, outcome = json.dumps(record).encode(), "dead_letters"
        elif kind == 2:
            record["action"] = "teleport"
            value, outcome = json.dumps(record).encode(), "dead_letters"
        elif kind in (3, 4):
            record["action"] = "heartbeat"
            value, outcome = json.dumps(record).encode(), "skipped"
        elif kind == 5:  # a JSON Schema serializer's wire format: 0, schema id, JSON
            value, outcome = bytes([0, 0, 0, 0, 42]) + json.dumps(record).encode(), "events"
        else:
            value, outcome = json.dumps(record).encode(), "events"
        out.append((sid.encode(), value))
        expect[outcome] += 1
    return out, expect


def send(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def read(bootstrap: str, topic: str) -> list:
    """Every committed message of `topic`, to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts}
    out = []
    while any(consumer.position([TopicPartition(topic, p)])[0].offset < ends[p]
              for p in parts if ends[p] > 0):
        out.extend(m for m in consumer.consume(500, 1.0) if m.error() is None)
    consumer.close()
    return out


def run(settings: Settings, **options) -> object:
    running = assemble_bridge(settings, serve_metrics=False, idle_exit=3.0, **options)
    thread = threading.Thread(target=running.run)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    return running.bridge


def test_the_bridge_maps_rekeys_and_dead_letters_exactly_once(settings, bootstrap):
    records, expect = shop_records(random.Random(5))
    send(bootstrap, settings.bridge_source_topic, records)
    first = run(settings, max_messages=150)  # stops after 150 committed records...
    second = run(settings)  # ...and a new instance goes on from the committed offsets
    counts = first.counts + second.counts  # type: ignore[attr-defined]
    assert dict(counts) == expect

    events = read(bootstrap, settings.topic("events"))
    assert len(events) == expect["events"]
    decoded = [decode_event(m.value()) for m in events]
    assert len({e.event_id for e in decoded}) == len(decoded)  # nothing twice
    assert {e.event_type for e in decoded} == {"view", "add_to_cart", "purchase", "click"}
    partitions: dict[str, set[int]] = {}
    for msg, ev in zip(events, decoded, strict=True):
        assert msg.key() == ev.user_id.encode()
        assert ev.context == {"page": "home"} and ev.session_id.startswith("s")
        assert ev.event_time >= 1_732_356_000.0
        # librdkafka's default partitioner (the SDK's too): CRC32 of the key
        assert msg.partition() == zlib.crc32(msg.key()) % settings.events_partitions
        partitions.setdefault(ev.user_id, set()).add(msg.partition())
    assert all(len(p) == 1 for p in partitions.values())

    dead = read(bootstrap, settings.topic("dead_letter"))
    assert len(dead) == expect["dead_letters"]
    classes = {dict(m.headers())["error_class"] for m in dead}
    assert classes == {b"not_json", b"missing_field", b"unknown_type"}
    originals = {value for _key, value in records}
    assert all(m.value() in originals for m in dead)  # original bytes, untouched
    missing = next(m for m in dead if dict(m.headers())["error_class"] == b"missing_field")
    assert b"user_id: missing" in dict(missing.headers())["reason"]
    assert b"'customer.id'" in dict(missing.headers())["reason"]


def test_a_bridge_killed_between_produce_and_commit_delivers_everything_once(
        settings, bootstrap, tmp_path):
    """`refold bridge` killed (SIGKILL) with a batch's events produced but not committed, then
    started again: read_committed readers see every event once."""
    records, expect = shop_records(random.Random(9))
    send(bootstrap, settings.bridge_source_topic, records)
    env = {**os.environ, **environment(settings), "REFOLD_METRICS_PORT": "0",
           # the killed bridge stays a member until its session times out: keep that short
           "REFOLD_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000"}
    cmd = [sys.executable, "-m", "refold", "bridge", "--batch-size", "50", "--idle-exit", "3"]
    crashed = subprocess.run(cmd, env={**env, "REFOLD_TEST_CRASH_AT": "after_produce:3"},
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"bridge: [\d,]+ events", done.stdout), done.stdout

    events = [decode_event(m.value()) for m in read(bootstrap, settings.topic("events"))]
    assert len(events) == expect["events"] == len({e.event_id for e in events})
    assert len(read(bootstrap, settings.topic("dead_letter"))) == expect["dead_letters"]
