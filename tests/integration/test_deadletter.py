"""Bad messages among good ones: each becomes a dead letter with its bytes, the rest goes on."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from consumers.assembly import WorkerOptions, assemble_worker
from consumers.recs_view import RecommendationsView
from consumers.tail import TopicTail
from models.recommender import FoldInConfig, OnlineRecommender
from refold.core.config import Settings
from refold.core.kafka import make_producer
from refold.core.schemas import Event, encode

PARTITIONS = 3
MAX_BYTES = 2048


def good(user: str, i: int) -> bytes:
    return encode(Event(event_id=f"{user}-e{i}", user_id=user, item_id=f"i{i % 13}",
                        event_type="click", event_time=1.7e9 + i))


def bad_messages(user: str) -> dict[str, tuple[bytes | None, bytes | None, str]]:
    """error_class -> (key, value, text the reason header contains)."""
    ev = json.loads(good(user, 0))
    def variant(**changes) -> bytes:
        return json.dumps({**ev, **changes}).encode()
    key = user.encode()
    return {
        "not_json": (key, b'{"v":1,"event_id":', "not valid JSON"),
        "not_utf8": (key, b'{"v":1,"event_id":"\xff\xfe"}', "not valid UTF-8"),
        "schema": (key, variant(event_time="yesterday"), "event_time: Expected `float`, got `str`"),
        "unknown_type": (key, variant(event_type="like"), "event_type: Invalid enum value"),
        "oversize": (key, variant(context={"pad": "x" * MAX_BYTES}),
                     f"exceeds max_message_bytes ({MAX_BYTES})"),
        "empty_id": (key, variant(item_id=""), "item_id: Expected `str` of length >= 1"),
        "future_time": (key, variant(event_time=time.time() + 86400 * 10),
                        "s in the future (max_future_seconds is 3600)"),
        "null_value": (key, None, "empty message (no value)"),
        "key_mismatch": (b"someone-else", variant(), "key: key 'someone-else' is not the user_id"),
    }


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=PARTITIONS, max_message_bytes=MAX_BYTES,
                         batch_size=50)


def produce_mixed(settings: Settings) -> tuple[dict, dict]:
    """Per partition: good events of two users with one bad message of each kind between them.

    Returns the bad messages `{(partition, offset): (error_class, key, value, text)}` and the
    last good event id of every user.
    """
    producer: Producer = make_producer(settings)
    topic, bad, last = settings.topic("events"), {}, {}
    placed: list[tuple[int, str | None, bytes | None, bytes | None, str]] = []
    for p in range(PARTITIONS):
        users = [f"u{p}a", f"u{p}b"]
        for i, (error_class, (key, value, text)) in enumerate(bad_messages(users[0]).items()):
            for user in users:
                placed.append((p, None, user.encode(), good(user, i), f"{user}-e{i}"))
                last[user] = f"{user}-e{i}"
            placed.append((p, error_class, key, value, text))
        placed.append((p, None, users[1].encode(), good(users[1], 99), f"{users[1]}-e99"))
        last[users[1]] = f"{users[1]}-e99"

    def delivered(err, msg, meta) -> None:
        assert err is None, err
        if meta[1] is not None:
            bad[(msg.partition(), msg.offset())] = (meta[1], meta[2], meta[3], meta[4])

    for meta in placed:
        p, _, key, value, _ = meta
        producer.produce(topic, value, key, partition=p,
                         on_delivery=lambda err, msg, meta=meta: delivered(err, msg, meta))
    assert producer.flush(30) == 0
    assert len(bad) == PARTITIONS * len(bad_messages("x"))
    return bad, last


def test_each_bad_message_is_a_dead_letter_with_its_bytes_and_reason(settings):
    bad, last = produce_mixed(settings)
    total = sum(1 for _ in bad) + sum(2 * len(bad_messages("x")) + 1 for _ in range(PARTITIONS))
    assembled = assemble_worker(settings, options=WorkerOptions.bare(max_messages=total,
                                                                     idle_exit=30),
                                recommender=OnlineRecommender(FoldInConfig(k=5)))
    with assembled:
        stats = assembled.run()
    worker = assembled.worker
    assert stats.messages == total

    kinds = len(bad_messages("x"))
    assert worker.dead_letters.counts == dict.fromkeys(bad_messages("x"), PARTITIONS)
    assert worker.counts["dead_letters"] == PARTITIONS * kinds

    tail, letters = TopicTail(settings, settings.topic("dead_letter")), []
    try:
        assert tail.catch_up(letters.extend, 20)
    finally:
        tail.close()
    assert len(letters) == len(bad) == PARTITIONS * kinds
    for msg in letters:
        h = {k: v.decode() for k, v in msg.headers()}
        error_class, key, value, text = bad[(int(h["source_partition"]), int(h["source_offset"]))]
        assert h["source_topic"] == settings.topic("events")
        assert h["error_class"] == error_class
        assert text in h["reason"], (error_class, h["reason"])
        assert msg.value() == value and msg.key() == key  # byte-identical
        assert abs(float(h["failed_at"]) - time.time()) < 120

    with RecommendationsView(settings) as view:
        assert view.catch_up(20)
        got = {u: r.cause.event_id for u, r in view.latest.items()}
    assert got == last
    assert Counter(r.source for r in view.latest.values()) == {"popular": len(last)}
