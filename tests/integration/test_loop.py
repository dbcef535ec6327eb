"""The transactional loop against a real broker: a transaction that fails on the broker's side is
aborted and its batch redone, whichever call first reports the failure."""

from __future__ import annotations

import os
import time

from confluent_kafka import Consumer, Message
from confluent_kafka.admin import NewTopic

from consumers.batch import Output, WithoutHooks
from consumers.loop import TransactionalLoop
from refold.config import Settings, load_settings
from refold.kafka import make_admin, make_consumer, make_producer

N = 40
LIMIT = 1024
"""The side topic's max.message.bytes: the broker rejects anything bigger."""


class Copier(WithoutHooks):
    """Copies each input to `out`; in its first batch it first sends `side` a message the broker
    rejects and waits for the rejection, so the transaction is already failed when it goes on
    producing (librdkafka then refuses `produce` itself with an "erroneous state")."""

    def __init__(self, out: str, side: str) -> None:
        self.out, self.side = out, side
        self.batches = self.rollbacks = 0

    def handle(self, messages: list[Message], out: Output) -> None:
        self.batches += 1
        if self.batches == 1:
            out.produce(self.side, os.urandom(4 * LIMIT))  # incompressible
            out.producer.flush(10)  # delivery fails: the transaction needs an abort
        for msg in messages:
            out.produce(self.out, msg.value(), msg.key())

    def promote(self) -> None:
        pass

    def rollback(self) -> None:
        self.rollbacks += 1


def settings_for(bootstrap: str, prefix: str) -> Settings:
    return load_settings(env={"REFOLD_BOOTSTRAP_SERVERS": bootstrap, "REFOLD_TOPIC_PREFIX": prefix})


def read_committed(settings: Settings, topic: str, n: int, timeout: float = 30.0) -> list[bytes]:
    consumer: Consumer = make_consumer(settings, f"{topic}-reader", {
        "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        extra = consumer.poll(2.0)  # nothing more may come
        if extra is not None and extra.error() is None:
            values.append(extra.value())
    finally:
        consumer.close()
    return values


def test_a_transaction_failed_by_the_broker_is_aborted_and_the_batch_redone(
    bootstrap: str, unique_prefix: str
) -> None:
    settings = settings_for(bootstrap, unique_prefix)
    src, out, side = (f"{unique_prefix}{name}" for name in ("in", "out", "side"))
    admin = make_admin(settings)
    futures = admin.create_topics([
        NewTopic(src, 1, 1), NewTopic(out, 1, 1),
        NewTopic(side, 1, 1, config={"max.message.bytes": str(LIMIT)})])
    for f in futures.values():
        f.result(30)
    producer = make_producer(settings)
    for j in range(N):
        producer.produce(src, f"v{j}".encode(), f"k{j}".encode())
    producer.flush(10)

    copier = Copier(out, side)
    loop = TransactionalLoop(settings, copier, topics=[src], group_id=f"{unique_prefix}copier",
                             transactional_id=f"{unique_prefix}copier-0", batch_size=N,
                             max_messages=N, idle_exit=30.0)
    stats = loop.run()

    assert stats.messages == N and stats.aborts == 1
    assert copier.batches == 2 and copier.rollbacks == 1
    assert sorted(read_committed(settings, out, N)) == sorted(f"v{j}".encode() for j in range(N))
    assert read_committed(settings, side, 1, timeout=3.0) == []
