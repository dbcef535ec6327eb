"""The transactional loop against a real broker: a transaction that fails on the broker's side is
aborted and its batch redone, whichever call first reports the failure; a producer whose calls
time out is replaced, and its batch counted once."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumers.batch import Output, WithoutHooks
from consumers.loop import TransactionalLoop
from refold.core.config import Settings, load_settings
from refold.core.kafka import make_producer
from tests.integration.helpers import create_topic, read_all

N = 40
LIMIT = 1024
"""The side topic's max.message.bytes: the broker rejects anything bigger."""


class Copier(WithoutHooks):
    """Copies each input to `out`, counting batches, promotions and rollbacks. Given a `side`
    topic, in its first batch it first sends it a message the broker rejects and waits for the
    rejection, so the transaction is already failed when it goes on producing (librdkafka then
    refuses `produce` itself with an "erroneous state")."""

    def __init__(self, out: str, side: str | None = None) -> None:
        self.out, self.side = out, side
        self.batches = self.promotions = self.rollbacks = 0

    def handle(self, messages: list[Message], out: Output) -> None:
        self.batches += 1
        if self.batches == 1 and self.side is not None:
            out.produce(self.side, os.urandom(4 * LIMIT))  # incompressible
            out.producer.flush(10)  # delivery fails: the transaction needs an abort
        for msg in messages:
            out.produce(self.out, msg.value(), msg.key())

    def promote(self) -> None:
        self.promotions += 1

    def rollback(self) -> None:
        self.rollbacks += 1


def settings_for(bootstrap: str, prefix: str) -> Settings:
    return load_settings(env={"REFOLD_BOOTSTRAP_SERVERS": bootstrap, "REFOLD_TOPIC_PREFIX": prefix})


def fill(settings: Settings, bootstrap: str, src: str, out: str) -> None:
    """Create `src` and `out`, and put N keyed inputs in `src`."""
    for topic in (src, out):
        create_topic(bootstrap, topic)
    producer = make_producer(settings)
    for j in range(N):
        producer.produce(src, f"v{j}".encode(), f"k{j}".encode())
    producer.flush(10)


def test_a_transaction_failed_by_the_broker_is_aborted_and_the_batch_redone(
    bootstrap: str, unique_prefix: str
) -> None:
    settings = settings_for(bootstrap, unique_prefix)
    src, out, side = (f"{unique_prefix}{name}" for name in ("in", "out", "side"))
    fill(settings, bootstrap, src, out)
    create_topic(bootstrap, side, **{"max.message.bytes": str(LIMIT)})

    copier = Copier(out, side)
    loop = TransactionalLoop(settings, copier, topics=[src], group_id=f"{unique_prefix}copier",
                             transactional_id=f"{unique_prefix}copier-0", batch_size=N,
                             max_messages=N, idle_exit=30.0)
    stats = loop.run()

    assert stats.messages == N and stats.aborts == 1
    assert copier.batches == 2 and copier.rollbacks == 1
    assert sorted(read_all(bootstrap, out, N)) == sorted(f"v{j}".encode() for j in range(N))
    assert len(read_all(bootstrap, out, N + 1, timeout=3.0)) == N  # and nothing more
    assert read_all(bootstrap, side, 1, timeout=3.0) == []


class StallsOnce:
    """A transactional producer whose `call` times out once, as every call does when librdkafka
    has lost all its brokers; with `through`, the call is made first (a commit the broker took,
    whose answer never came)."""

    def __init__(self, producer: Producer, call: str, through: bool) -> None:
        self._producer, self._call, self._through = producer, call, through
        self.stalled = False

    def __getattr__(self, name: str) -> Any:
        if name != self._call or self.stalled:
            return getattr(self._producer, name)
        return self._stall

    def _stall(self, *args: Any) -> None:
        self.stalled = True
        if self._through:
            getattr(self._producer, self._call)(*args)
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected"))


@pytest.mark.parametrize(("call", "through", "committed"), [
    ("send_offsets_to_transaction", False, False),
    ("commit_transaction", False, False),
    ("commit_transaction", True, True),
])
def test_a_stalled_producer_is_replaced_and_the_batch_counted_once(
    bootstrap: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, call: str, through: bool, committed: bool,
) -> None:
    """Whether the stalled batch committed is read back: redone if not, promoted if so."""
    settings = settings_for(bootstrap, unique_prefix)
    src, out = f"{unique_prefix}in", f"{unique_prefix}out"
    fill(settings, bootstrap, src, out)
    made: list[Producer] = []

    def first_stalls(producer: Producer) -> Producer:
        made.append(producer if made else StallsOnce(producer, call, through))
        return made[-1]

    caplog.set_level(logging.WARNING, "consumers.loop")
    copy = Copier(out)
    loop = TransactionalLoop(settings, copy, topics=[src], group_id=f"{unique_prefix}copy",
                             transactional_id=f"{unique_prefix}copy-0", batch_size=N,
                             max_messages=N, idle_exit=30.0, on_producer=first_stalls)
    stats = loop.run()

    assert len(made) == 2 and made[0].stalled
    assert "starting a new transactional producer" in caplog.text
    assert stats.messages == N and copy.promotions == 1
    assert (stats.aborts, copy.rollbacks, copy.batches) == ((0, 0, 1) if committed else (1, 1, 2))
    assert sorted(read_all(bootstrap, out, N)) == sorted(f"v{j}".encode() for j in range(N))
    assert len(read_all(bootstrap, out, N + 1, timeout=3.0)) == N  # and nothing more
