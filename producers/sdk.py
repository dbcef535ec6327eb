"""`EventProducer`: the SDK services use to publish interaction events and catalog items.

It validates before sending (a bad event raises `SchemaError` and never reaches Kafka), keys
events by user id (so one user's events stay in order on one partition), uses an idempotent
producer, surfaces delivery reports, and flushes on close. Use it as a context manager::

    with EventProducer(settings) as producer:
        producer.send(Event(event_id="e1", user_id="u1", item_id="i1",
                            event_type="click", event_time=time.time()))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from refold.core.config import Settings
from refold.core.errors import ProducerError
from refold.core.kafka import AUTHORIZATION, make_producer, not_authorized, produce
from refold.core.schemas import Event, Item, decode_event, encode

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

    def _produce(self, topic: str, key: str, value: bytes | None) -> None:
        produce(self.producer, topic, value, key.encode(), on_delivery=self._report)

    def send(self, event: Event) -> None:
        """Validate and publish one event, keyed by its user id."""
        data = encode(event)
        if self.validate:
            decode_event(data)  # constructors do not check constraints; decoding does
        self._produce(self.events_topic, event.user_id, data)

    def send_many(self, events: Iterable[Event]) -> int:
        """Publish a batch of events in order; returns how many were queued."""
        n = 0
        for n, event in enumerate(events, 1):  # noqa: B007
            self.send(event)
        return n

    def send_raw(self, key: str, value: bytes | None) -> None:
        """Publish bytes as they are (for tests and tools that must bypass validation)."""
        self._produce(self.events_topic, key, value)

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
