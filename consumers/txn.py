"""The transactional producer's settings and error vocabulary: which errors abort a
transaction, which stall its producer, which fence a worker (`consumers.loop` acts on them)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from refold.core.errors import ConsumerError
from refold.core.kafka import KafkaFatalError

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRIES = 10
TXN_TIMEOUT_S = 30.0
"""`transaction.timeout.ms`, and how long `init_transactions` may take."""
CALL_TIMEOUT_S = 10.0
"""How long a transaction's own calls may take before the producer counts as stalled (they take
milliseconds when the broker is well)."""
TXN_PRODUCER = {"retry.backoff.ms": 10, "retry.backoff.max.ms": 100,
                "metadata.recovery.strategy": "none"}
"""Right after a commit the coordinator answers the next transaction's first request with
CONCURRENT_TRANSACTIONS until its markers are written (a few ms); at the default 100 ms backoff
every back-to-back transaction would wait 100 ms (measured: 100 ms -> 12 ms per transaction).
No re-bootstrap: after all brokers were down (a restart), librdkafka 2.16 can keep the group
coordinator cached on a broker it re-bootstrapped away, and `send_offsets_to_transaction` then
hangs past its timeout (librdkafka issues 5456, 5511; the broker restart fault test). Without
it, a restart can leave the producer with no broker at all (the broker, absent from the metadata
of its own controlled shutdown, is decommissioned): every call then times out, and the loop
replaces the producer (`Stalled`)."""


class Fenced(KafkaFatalError, ConsumerError):
    """A newer producer with this transactional.id exists: this worker is a zombie."""


class Stalled(ConsumerError):
    """A transaction's call timed out: the producer is replaced rather than asked again."""


def error_of(exc: KafkaException) -> KafkaError:
    return exc.args[0]


def abortable(err: KafkaError) -> bool:
    """Whether a failed batch's transaction should be aborted (and the batch redone).

    Besides errors flagged `txn_requires_abort`: once a transaction has failed on librdkafka's
    background thread (a produce request refused, or a sequence gap after a rebalance's abort,
    "requires epoch bump"), `produce()` itself raises a plain `_STATE` "erroneous state". The
    abort then settles it: it succeeds for an abortable failure and raises for a fatal one.
    """
    return err.txn_requires_abort() or (err.code() == KafkaError._STATE and not err.fatal())


def call(
    what: str, fn: Callable[..., T], *args: Any,
    fatal: Callable[[str, KafkaError], Exception], stalls: bool = False, **kwargs: Any,
) -> T:
    """Call a client API: retry what is retriable, raise `fatal(what, err)` for what is fatal;
    with `stalls`, a timeout raises `Stalled` instead of being retried."""
    for attempt in range(1, RETRIES + 1):
        try:
            return fn(*args, **kwargs)
        except KafkaException as exc:
            err = error_of(exc)
            if err.fatal():
                raise fatal(what, err) from exc
            if stalls and err.code() == KafkaError._TIMED_OUT:
                raise Stalled(f"{what}: {err}") from exc
            if not err.retriable() or attempt == RETRIES:
                raise
            log.warning("%s: %s (retry %d)", what, err, attempt)
            time.sleep(min(0.1 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


def fatal_error(
    what: str, err: KafkaError, producer: Producer | None, transactional_id: str
) -> KafkaFatalError:
    """The exception for a fatal `err` of `what`: `Fenced` when a newer instance took over."""
    if err.code() == KafkaError._FATAL and producer is not None:
        try:  # a generic "fatal error": the error callback has the cause (e.g. fenced)
            producer.poll(0)
        except KafkaFatalError as cause:
            return cause
        except KafkaException as exc:  # or poll raises the cause itself
            err = exc.args[0]
    if err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                      KafkaError.INVALID_PRODUCER_EPOCH):
        return Fenced(f"{what}: fenced: another worker runs with transactional.id "
                      f"{transactional_id!r} ({err})")
    return KafkaFatalError(f"{what}: fatal error ({err})")


def let_go(producer: Producer | None) -> None:
    """Nothing: the thread that runs this holds the last reference to `producer`, so the
    client is destroyed there when the thread ends."""
