"""Transactions with no input: outputs and state changes that no message caused (a list published
again because the catalog deactivated one of its items: `consumers.republish`), made exactly once
all the same.

A processor may offer such work as its `inputless` attribute (`Inputless`). Between batches, while
the work is due, for at most `budget` seconds (so that the input is not held back),
`InputlessRunner.run` runs one transaction per chunk:

1. `begin_transaction`;
2. `work.handle(out)`: outputs and changelog records, produced, the state staged;
3. `send_offsets_to_transaction` with the group's *committed* offsets of the chunk's partitions:
   nothing is consumed, the offsets stay as they are, but the group's generation fences a member
   that lost those partitions in a rebalance, as it would fence one of its batches;
4. `commit_transaction`;
5. `work.promote()`: the staged state is the state.

An aborted transaction calls `work.rollback()`: the chunk stays queued and is redone. A crash
before the commit loses nothing either: the work is derived again from the committed state once
the partitions are restored (`consumers.republish`). A stalled producer is replaced and the chunk
redone: if its commit had landed, the chunk is published twice (the same lists, by the same ids).
Under `guarantee = "at-least-once"` the outputs are flushed, then promoted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from consumers.batch import Output
from consumers.crash import CrashPoint
from consumers.output_producer import OutputProducer
from consumers.txn import CALL_TIMEOUT_S, TXN_TIMEOUT_S, Stalled, abortable, error_of
from refold.core.config import Settings
from refold.core.kafka import AUTHORIZATION, KafkaFatalError

log = logging.getLogger(__name__)

BUDGET_S = 1.0
"""Seconds of inputless work between two batches at most."""


class Inputless(Protocol):
    """Work that a processor does outside any batch, one chunk per transaction."""

    def due(self) -> bool:
        """Whether there is work."""
        ...

    def handle(self, out: Output) -> int:
        """Do one chunk: produce its outputs to `out`, stage its state; how many it made."""
        ...

    def partitions(self) -> list[int]:
        """The input partitions (of the loop's first topic) whose state the chunk changes."""
        ...

    def promote(self) -> None: ...
    def rollback(self) -> None: ...
    def give_up(self) -> None:
        """The chunk's handling raised: drop it (logged) before the `rollback`, so that it does
        not stop the loop."""
        ...


class InputlessRunner:
    """Runs a processor's `inputless` work in transactions of its own (see the module doc)."""

    def __init__(self, settings: Settings, output: OutputProducer, topic: str, *,
                 exactly_once: bool, consumer: Callable[[], Consumer | None],
                 touched: Callable[[], None], budget: float = BUDGET_S) -> None:
        self.settings = settings
        self.output = output
        self.topic = topic
        self.exactly_once = exactly_once
        self.consumer = consumer
        self.touched = touched
        self.budget = budget
        self.transactions = 0
        """Committed inputless transactions."""
        self.aborts = 0
        self._in_a_row = 0
        self._crash = CrashPoint.from_env()

    def run(self, work: Inputless | None) -> None:
        """Chunks of `work` while it is due, for `budget` seconds at most."""
        deadline = time.monotonic() + self.budget
        while work is not None and work.due() and time.monotonic() < deadline:
            if not self._chunk(work):
                return

    def _chunk(self, work: Inputless) -> bool:
        """One chunk in one transaction; False if it was rolled back."""
        producer = self.output.producer
        assert producer is not None
        out = Output(producer, track_delivery=True)
        try:
            if self.exactly_once:
                self.output.call("begin_transaction", producer.begin_transaction)  # 1
            made = work.handle(out)  # 2
            if self._crash is not None and self._crash.due("inputless", self.transactions + 1):
                producer.flush(TXN_TIMEOUT_S)  # the outputs reach the broker, uncommitted
                self._crash.kill()
            if self.exactly_once:
                self._commit(work.partitions())  # 3, 4
            else:
                left = producer.flush(TXN_TIMEOUT_S)
                if left or out.failed:
                    raise KafkaFatalError(f"{left} output(s) not delivered, "
                                          f"{len(out.failed)} failed: {out.failed[:3]}")
        except KafkaFatalError:
            work.rollback()
            raise
        except Stalled as exc:
            log.warning("an inputless transaction stalled: %s", exc)
            self.output.replace(exc)
            return self._redo(work)
        except KafkaException as exc:
            err = error_of(exc)
            if err.code() in AUTHORIZATION:
                out.raise_unwritable(err, self.settings)
            if not abortable(err):
                raise self.output.fatal("transaction", err) from exc
            log.warning("aborting an inputless transaction: %s", err)
            self.output.abort()
            return self._redo(work)
        except Exception:
            log.exception("inputless work raised: its chunk is dropped")
            if self.exactly_once:
                self.output.abort()
            work.give_up()
            work.rollback()
            return False
        except BaseException:
            if self.exactly_once:
                self.output.abort()
            work.rollback()
            raise
        out.serve_reports()  # the store's checkpoints take offsets from them
        work.promote()  # 5
        self.transactions += 1
        self._in_a_row = 0
        self.touched()
        log.debug("inputless transaction %d: %d output(s)", self.transactions, made)
        return True

    def _commit(self, partitions: list[int]) -> None:
        producer, consumer = self.output.producer, self.consumer()
        assert producer is not None and consumer is not None
        tps = [TopicPartition(self.topic, p) for p in sorted(set(partitions))]
        committed = self.output.call("committed", consumer.committed, tps,
                                     timeout=CALL_TIMEOUT_S) if tps else []
        offsets = [tp for tp in committed if tp.offset >= 0]
        if offsets:  # the same offsets again: only the group's fencing is wanted
            self.output.call("send_offsets_to_transaction",
                             producer.send_offsets_to_transaction, offsets,
                             consumer.consumer_group_metadata(), CALL_TIMEOUT_S, stalls=True)
        self.output.call("commit_transaction", producer.commit_transaction, CALL_TIMEOUT_S,
                         stalls=True)

    def _redo(self, work: Inputless) -> bool:
        self.aborts += 1
        self._in_a_row += 1
        work.rollback()
        time.sleep(min(0.1 * 2**self._in_a_row, 5.0))
        return False
