"""Kafka client helpers: one place that builds producer, consumer and admin configs.

Raw librdkafka settings pass through (`extra`), so anything the docs list can be tuned.
Clients are created by these functions only when called: no network in module import.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from refold.core.config import Settings
from refold.core.errors import KafkaFatalError

log = logging.getLogger(__name__)


def error_cb(err: KafkaError) -> None:
    """Escalate what cannot heal by itself; log the rest (librdkafka retries transient errors)."""
    auth = (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)
    if err.fatal() or err.code() in auth:
        raise KafkaFatalError(str(err))
    if err.code() == KafkaError._ALL_BROKERS_DOWN:
        log.warning("all brokers down: %s (retrying)", err)
    else:
        log.debug("kafka: %s", err)


def _base(settings: Settings, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap, "error_cb": error_cb}
    conf.update(extra or {})
    return conf


def producer_config(settings: Settings, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An idempotent producer: acks=all, no duplicates or reordering on retries, lz4 batches."""
    conf = {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": max(1_000_000, settings.max_message_bytes * 2),
    }
    return {**_base(settings, None), **conf, **(extra or {})}


def consumer_config(
    settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A consumer that never commits by itself: callers commit after their effects are durable."""
    conf = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
    }
    return {**_base(settings, None), **conf, **(extra or {})}


def make_producer(settings: Settings, extra: Mapping[str, Any] | None = None) -> Producer:
    return Producer(producer_config(settings, extra))


def make_consumer(
    settings: Settings, group_id: str, extra: Mapping[str, Any] | None = None
) -> Consumer:
    return Consumer(consumer_config(settings, group_id, extra))


def make_admin(settings: Settings, extra: Mapping[str, Any] | None = None) -> AdminClient:
    return AdminClient(_base(settings, extra))


def produce(
    producer: Producer, topic: str, value: bytes | None, key: bytes | str | None = None, *,
    partition: int | None = None, headers: list[tuple[str, bytes]] | None = None,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
) -> None:
    """Produce one message with back-pressure: while librdkafka's local queue is full
    (`BufferError`), serve delivery reports for 50 ms and retry; then serve the callbacks that
    are due (`poll(0)`). `partition` None: the one the key hashes to. Every refold producer
    sends through this."""
    while True:
        try:
            producer.produce(topic, value, key, -1 if partition is None else partition,
                             headers=headers, on_delivery=on_delivery)
            break
        except BufferError:  # local queue full: let librdkafka send, then retry
            producer.poll(0.05)
    producer.poll(0)


def where(msg: Message) -> str:
    """`topic[partition]@offset`, the form every log line uses to point at a message."""
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"


def watermarks(consumer: Consumer, topic: str, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    """`{partition: (low, high)}` offsets of a topic, retrying while new leaders settle."""
    deadline = time.monotonic() + timeout
    parts = sorted(consumer.list_topics(topic, timeout=timeout).topics[topic].partitions)
    out: dict[int, tuple[int, int]] = {}
    for p in parts:
        while True:
            try:
                out[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                break
            except KafkaException as exc:
                err = exc.args[0]
                if not (err.retriable() or err.code() in _SETTLING) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return out


_SETTLING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.UNKNOWN_TOPIC_OR_PART)
"""Errors of a topic just created, whose leaders the broker is still settling (not flagged
retriable by librdkafka here)."""
