"""`EventProducer`: the SDK services use to publish events, impressions and catalog items.

It validates before sending (a bad event raises `SchemaError` and never reaches Kafka), keys
events by user id (so one user's events stay in order on one partition), uses an idempotent
producer, surfaces delivery reports, and flushes on close. Use it as a context manager::

    with EventProducer(settings) as producer:
        producer.send(Event(event_id="e1", user_id="u1", item_id="i1",
                            event_type="click", event_time=time.time()))
        producer.impression(rec, shown=4)   # the first 4 items of a list were shown

An impression says what a service showed from which list (`refold.core.schemas.Impression`); it
copies the list's `rec_id`, policy, candidate scores and, per shown item, the propensity the list
logged, which is what off-policy evaluation needs (`refold ope`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from refold.core.config import Settings
from refold.core.errors import ProducerError
from refold.core.kafka import AUTHORIZATION, make_producer, not_authorized, produce
from refold.core.schemas import (
    Event,
    Impression,
    Item,
    Recommendation,
    Scalar,
    decode_event,
    encode,
    impression_of,
    validate_impression,
)

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class DeliveryError(ProducerError):
    """Some messages were not acknowledged by the broker."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        head = "; ".join(f"key {k}: {e}" for k, e in failures[:3])
        super().__init__(f"{len(failures)} message(s) not delivered: {head}")


class EventProducer:
    """Publish validated events (key = user id) and catalog items (key = item id).

    `on_delivery(err, msg)` is called for every message once the broker answers; failures are
    also collected and raised by `flush()` / `close()` as `DeliveryError`, or, when the broker
    refused this principal a topic (a missing ACL: retrying will not help), as the one-line
    `KafkaFatalError` naming the topic and the missing WRITE.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
        validate: bool = True,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.on_delivery = on_delivery
        self.validate = validate
        self.extra = dict(extra or {})
        self.events_topic = self.settings.topic("events")
        self.items_topic = self.settings.topic("items")
        self.impressions_topic = self.settings.topic("impressions")
        self.delivered = 0
        self.failures: list[tuple[str, str]] = []
        self._refused: dict[str, KafkaError] = {}  # topic -> its authorization error
        self._producer: Producer | None = None

    @property
    def producer(self) -> Producer:
        """The underlying confluent-kafka producer, created on first use."""
        if self._producer is None:
            self._producer = make_producer(self.settings, self.extra, purpose="sdk")
        return self._producer

    def _report(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            key = (msg.key() or b"").decode("utf-8", "replace")
            self.failures.append((key, str(err)))
            if err.code() not in AUTHORIZATION:
                log.error("delivery failed for key %s on %s: %s", key, msg.topic(), err)
            elif msg.topic() not in self._refused:  # said once per topic, not per message
                self._refused[msg.topic()] = err
                log.error("not authorized to write to %s: %s", msg.topic(), err)
        if self.on_delivery is not None:
            self.on_delivery(err, msg)

    def _produce(self, topic: str, key: str, value: bytes | None, timestamp: int = 0) -> None:
        produce(self.producer, topic, value, key.encode(), on_delivery=self._report,
                timestamp=timestamp)

    def send(self, event: Event, *, timestamp: int = 0) -> None:
        """Validate and publish one event, keyed by its user id. `timestamp`: the Kafka
        timestamp in ms (0: now), which orders it against the user's impressions."""
        data = encode(event)
        if self.validate:
            decode_event(data)  # constructors do not check constraints; decoding does
        self._produce(self.events_topic, event.user_id, data, timestamp)

    def send_many(self, events: Iterable[Event]) -> int:
        """Publish a batch of events in order; returns how many were queued."""
        n = 0
        for n, event in enumerate(events, 1):  # noqa: B007
            self.send(event)
        return n

    def send_raw(self, key: str, value: bytes | None) -> None:
        """Publish bytes as they are (for tests and tools that must bypass validation)."""
        self._produce(self.events_topic, key, value)

    def impression(
        self, rec: Recommendation, shown: int | list[str], *, shown_at: float | None = None,
        impression_id: str | None = None, context: dict[str, Scalar] | None = None,
        timestamp: int = 0,
    ) -> Impression:
        """Report that `rec` was shown: its first `shown` items, or the item ids `shown` in the
        page's slot order (an item keeps the list's propensity only at the list's position).
        `shown_at` defaults to now, `impression_id` to a new UUID, `timestamp` as `send`.
        Returns what was sent."""
        imp = impression_of(rec, shown, time.time() if shown_at is None else shown_at,
                            impression_id or uuid.uuid4().hex, context)
        self.send_impression(imp, timestamp=timestamp)
        return imp

    def send_impression(self, impression: Impression, *, timestamp: int = 0) -> None:
        """Validate and publish one impression, keyed by its user id (`timestamp` as `send`)."""
        if self.validate:
            validate_impression(impression)
        self._produce(self.impressions_topic, impression.user_id, encode(impression),
                      timestamp)

    def send_item(self, item: Item) -> None:
        """Publish a catalog entry (compacted topic, key = item id)."""
        self._produce(self.items_topic, item.item_id, encode(item))

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every queued message; raise `DeliveryError` if any failed or timed out."""
        if self._producer is not None:
            left = self._producer.flush(timeout)
            if left:
                self.failures.append(("*", f"{left} message(s) still queued after {timeout}s"))
        if self.failures:
            failures, self.failures = self.failures, []
            refused, self._refused = self._refused, {}
            for topic, err in refused.items():
                not_authorized(err, "WRITE", topic)
            raise DeliveryError(failures)

    def close(self, timeout: float = 60.0) -> None:
        self.flush(timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
