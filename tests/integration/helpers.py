"""Small helpers the integration tests share: raw topics, reading them back, waiting, offsets.

Fixtures (settings with topics, launching refold processes, worker threads) are in
`tests/integration/conftest.py`; these are plain functions.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from refold.core.config import Settings
from refold.core.kafka import make_consumer, watermarks


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds now (for a test's own broker or server:
    fixed ports clash when two runs share the machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_topic(bootstrap: str, name: str, **config: str) -> None:
    """One single-partition topic with `config`."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(timeout=30)


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    """The committed values of `topic`, once `expected` of them arrived (or at the timeout)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(values) < expected and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            values.append(msg.value())
    consumer.close()
    return values


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until it is true; a retriable Kafka error in it (a broker coming back)
    counts as not yet. Fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].code() != KafkaError.NOT_COORDINATOR:
                raise
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def committed(settings: Settings, partitions: int | None = None,
              topics: tuple[str, ...] = ("events",)) -> int:
    """Input messages the worker group committed, over all partitions of `topics` (not waiting
    for a pending transaction: a killed worker's stays open until a successor of the same
    instance id starts or the broker aborts it; `open_transactions` says where)."""
    consumer = make_consumer(settings, settings.consumer_group,
                             {"isolation.level": "read_uncommitted"})
    try:
        n = settings.events_partitions if partitions is None else partitions
        tps = consumer.committed([TopicPartition(settings.topic(t), p)
                                  for t in topics for p in range(n)], 10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def open_transactions(settings: Settings, topics: tuple[str, ...]) -> list[str]:
    """The partitions of `topics` (settings' names) whose last stable offset is short of the
    high watermark: a transaction is still open there, and a read_committed reader sees
    nothing past its first record. A killed worker that is not restarted leaves one open
    until the broker aborts it (`transaction.timeout.ms`, checked every 10 s by default)."""
    out = []
    clients = [make_consumer(settings, "refold-test-marks", {"isolation.level": level})
               for level in ("read_committed", "read_uncommitted")]
    try:
        for name in topics:
            topic = settings.topic(name)
            stable, high = (watermarks(c, topic) for c in clients)
            out += [f"{topic}[{p}] {stable[p][1]} < {high[p][1]}" for p in sorted(high)
                    if stable[p][1] < high[p][1]]
    finally:
        for c in clients:
            c.close()
    return out


def delete_topics(prefix: str) -> None:
    """Delete the broker's topics named `prefix*` (best effort: no broker, nothing to do)."""
    from confluent_kafka import KafkaException

    from refold.core.config import load_settings
    from refold.core.kafka import make_admin

    try:
        admin = make_admin(load_settings())
        names = [t for t in admin.list_topics(timeout=5).topics if t.startswith(prefix)]
        for fut in admin.delete_topics(names, request_timeout=15).values() if names else ():
            fut.result(15)
    except KafkaException:
        pass
