"""The output producer of a `TransactionalLoop`: made, initialised, aborted and replaced.

Under exactly-once it is transactional: `init_transactions` aborts whatever a predecessor with
the same transactional.id left open (and fences it). Under at-least-once it is idempotent only.
Its calls go through `consumers.txn.call`, which sorts librdkafka's errors by class; a call
that times out (`stalls`) raises `Stalled`, and the loop then `replace`s the producer: a new one
of the same transactional.id ends the open transaction in its own `init_transactions`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from consumers.txn import (
    CALL_TIMEOUT_S,
    TXN_PRODUCER,
    TXN_TIMEOUT_S,
    Fenced,
    Stalled,
    call,
    error_of,
    fatal_error,
    let_go,
)
from refold.core.config import Settings
from refold.core.kafka import (
    KafkaFatalError,
    error_cb,
    fatal_cause,
    make_producer,
    not_authorized,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class OutputProducer:
    """The loop's producer (`producer`, None until `start`), and what the loop does with it
    besides producing: calls with error classes, abort, replacement, a last flush."""

    def __init__(self, settings: Settings, transactional_id: str, *, exactly_once: bool,
                 extra: dict[str, Any], purpose: str,
                 on_producer: Callable[[Producer], Producer] | None = None) -> None:
        self.settings = settings
        self.transactional_id = transactional_id
        self.exactly_once = exactly_once
        self.extra = extra
        self.purpose = purpose
        self.on_producer = on_producer
        """Called with each producer made; returns the one to use (tests inject faults)."""
        self.producer: Producer | None = None

    def start(self) -> Producer:
        """A new producer; transactional ones are initialised (any open transaction of this
        id is aborted)."""
        txn = {"transactional.id": self.transactional_id,
               "transaction.timeout.ms": int(TXN_TIMEOUT_S * 1000), **TXN_PRODUCER}
        # Every delivery is reported (not only failures): the worker's store checkpoints take
        # the changelog offsets from the reports (a Python call per message: ~0.5 us).
        producer = make_producer(self.settings, {
            **(txn if self.exactly_once else {}), "delivery.report.only.error": False,
            "error_cb": self._error, **self.extra}, purpose=self.purpose)
        if self.on_producer is not None:
            producer = self.on_producer(producer)
        self.producer = producer
        if self.exactly_once:
            try:
                self.call("init_transactions", producer.init_transactions, TXN_TIMEOUT_S)
            except KafkaException as exc:
                not_authorized(error_of(exc), "WRITE", self.transactional_id)
                raise
        return producer

    def call(self, what: str, fn: Callable[..., T], *args: Any, stalls: bool = False,
             **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` with librdkafka's errors sorted (`consumers.txn.call`)."""
        return call(what, fn, *args, fatal=self.fatal, stalls=stalls, **kwargs)

    def fatal(self, what: str, err: KafkaError) -> KafkaFatalError:
        return fatal_error(what, err, self.producer, self.transactional_id)

    def _error(self, err: KafkaError) -> None:
        if err.fatal():  # e.g. fenced, seen while serving callbacks: say which id
            raise self.fatal("producer", err)
        error_cb(err)

    def abort(self) -> None:
        """Abort the open transaction (the caller rolls the batch back)."""
        assert self.producer is not None
        try:
            self.call("abort_transaction", self.producer.abort_transaction, CALL_TIMEOUT_S,
                      stalls=True)
        except Fenced:
            raise
        except (KafkaFatalError, Stalled) as exc:
            # librdkafka can fail an abort with a fatal INVALID_TXN_STATE (its issue 4849), or
            # stall: a new producer of the same transactional.id aborts the transaction instead.
            self.replace(exc)
        except KafkaException as exc:
            if error_of(exc).code() != KafkaError._STATE:  # no transaction was open
                raise KafkaFatalError(f"abort_transaction: {error_of(exc)}") from exc

    def replace(self, cause: object) -> None:
        """A new producer of the same transactional.id: its `init_transactions` fences the old
        one and ends its open transaction. The old one is let go on a thread of its own, as
        destroying a producer that lost its brokers can take a while."""
        log.warning("%s: starting a new transactional producer", cause)
        old, self.producer = self.producer, None
        threading.Thread(target=let_go, args=(old,), name="refold-old-producer",
                         daemon=True).start()
        del old
        self.start()

    def close(self) -> None:
        """A last flush: nothing is pending after a commit; after a fatal error the cause is
        already on its way (perhaps as a `SystemError`: `refold.core.kafka.fatal_cause`)."""
        if self.producer is None:
            return
        try:
            self.producer.flush(5)
        except (KafkaException, KafkaFatalError, SystemError) as exc:
            log.debug("flushing the producer: %s", fatal_cause(exc) or exc)
