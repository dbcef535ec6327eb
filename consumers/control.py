"""Refit requests from the workers to the refitter, over the compacted control topic.

A worker's `consumers.monitor.Monitor` calls its `request_refit(detector)` hook when a drift
detector named in its `refit_on` fires (at most once per `refit_cooldown` seconds): with
`RefitRequester` as that hook, the request becomes one JSON `RefitRequest` on the control topic,
keyed by the worker, so compaction keeps each worker's latest request only.

The refitter reads the whole topic without a group (`RefitRequestReader`) and asks itself for a
refit for each request newer than the last refit it started: one older than that was answered
already (or, for the one read at start, by the live snapshot), so a restarted refitter does not
refit again for alarms of the past.

>>> r = decode_request(encode_request(RefitRequest(reason="drift detected by hit_rate",
...     detector="hit_rate", time=1.7e9, worker="refold-foldin/0")))
>>> r.detector, r.worker
('hit_rate', 'refold-foldin/0')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
from confluent_kafka import KafkaError, Message, Producer

from consumers.tail import TopicTail
from refold.core.config import Settings
from refold.core.errors import ConsumerError
from refold.core.kafka import make_producer, where

log = logging.getLogger(__name__)


class RefitRequest(msgspec.Struct, kw_only=True):
    """One worker's request for a refit: why, which detector, when (Unix s), which worker."""

    reason: str
    detector: str
    time: float
    worker: str


class ControlError(ConsumerError, ValueError):
    """A control message does not decode."""


def encode_request(request: RefitRequest) -> bytes:
    return msgspec.json.encode(request)


def decode_request(data: bytes | None) -> RefitRequest:
    try:
        return msgspec.json.decode(data or b"", type=RefitRequest)
    except msgspec.DecodeError as exc:
        raise ControlError(str(exc)) from None


def worker_name(settings: Settings) -> str:
    """`<consumer group>/<instance id>`: the key of a worker's requests."""
    return f"{settings.consumer_group}/{settings.instance_id}"


class RefitRequester:
    """A `Monitor`'s `request_refit` hook: publish a `RefitRequest` (the producer is created on
    the first request; delivery is not waited for, a failure is logged)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.topic = settings.topic("control")
        self.worker = worker_name(settings)
        self.settings = settings
        self.clock = clock
        self.sent = 0
        self._producer: Producer | None = None

    def __call__(self, detector: str) -> None:
        request = RefitRequest(reason=f"drift detected by {detector} on {self.worker}",
                               detector=detector, time=self.clock(), worker=self.worker)
        if self._producer is None:
            self._producer = make_producer(self.settings, purpose="worker-control")
        self._producer.produce(self.topic, encode_request(request), self.worker,
                               on_delivery=self._delivered)
        self._producer.poll(0)
        self.sent += 1
        log.info("asked the refitter for a refit: %s", request.reason)

    @staticmethod
    def _delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            log.error("refit request not delivered to %s: %s", msg.topic(), err)

    def close(self, timeout: float = 10.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)


class RefitRequestReader:
    """The refitter's side: the requests that arrived since the last `poll`."""

    def __init__(self, settings: Settings) -> None:
        self.tail = TopicTail(settings, settings.topic("control"), batch=100)
        self.bad = 0

    def poll(self, timeout: float = 0.0) -> list[RefitRequest]:
        out = []
        for msg in self.tail.poll(timeout):
            try:
                out.append(decode_request(msg.value()))
            except ControlError as exc:
                self.bad += 1
                log.warning("ignored a control message at %s: %s", where(msg), exc)
        return out

    def close(self) -> None:
        self.tail.close()
