"""`refold bridge`: a shop's own event topic into refold's events topic, exactly once.

Each source record is decoded (JSON, plain or in a schema registry's wire format),
mapped to an `Event` (`refold.core.mapping.EventMapping`: field names, type names, timestamps) and
produced to the events topic keyed by its user id, so every event of a user lands on the
partition that owns the user's state, whatever the source's key was. Records that cannot become
events go to the dead-letter topic with their reason and original bytes; records of types the
mapping skips are counted and dropped. It runs in `consumers.loop.TransactionalLoop`: per batch,
the events, the dead letters and the source offsets commit in one transaction.

An event without an id in the source gets `<topic>-<partition>-<offset>`: a record read again
(after an abort, a crash, a rebalance) maps to the same event, which the workers apply once.

>>> from refold.core.config import Settings
>>> transactional_id(Settings(topic_prefix="shop.", instance_id="bridge-1"))
'shop.refold-bridge-bridge-1'
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Self

import msgspec
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message, TopicPartition

from consumers.batch import Output, WithoutHooks
from consumers.deadletter import DeadLetters, Limits, Rejected
from consumers.instrument import record_lag
from consumers.loop import TransactionalLoop
from refold.core import metrics
from refold.core.config import Settings
from refold.core.errors import ConfigError
from refold.core.mapping import EventMapping, MappingError, Skipped
from refold.core.probes import Probes
from refold.core.schemas import encode

log = logging.getLogger(__name__)
_json = msgspec.json.Decoder()

Decode = Callable[[bytes], Any]
"""Bytes of a source record to the record (a mapping); raises `Rejected` when it cannot."""


def decode_json(value: bytes) -> Any:
    """A JSON record, plain or in the schema-registry wire format (a 0 byte and a 4-byte schema
    id before the JSON of a JSON Schema serializer; no JSON text starts with a 0 byte).

    >>> decode_json(b'{"uid": 1}'), decode_json(bytes([0, 0, 0, 0, 7]) + b'{"uid": 1}')
    ({'uid': 1}, {'uid': 1})
    """
    if value[:1] == b"\x00" and len(value) > 5:
        value = value[5:]
    try:
        return _json.decode(value)
    except msgspec.DecodeError as exc:
        raise Rejected("", f"not valid JSON ({exc})", "not_json") from None


def mapping_of(settings: Settings) -> EventMapping:
    """The bridge's mapping from its settings (`bridge_fields`, `bridge_types` ...)."""
    return EventMapping.from_specs(
        settings.bridge_fields, settings.bridge_types, settings.bridge_time_unit,
        settings.bridge_skip_types, settings.bridge_default_type)


def transactional_id(settings: Settings) -> str:
    """Stable per bridge instance: a restarted instance fences its predecessor."""
    return f"{settings.topic_prefix}{settings.bridge_group}-{settings.instance_id}"


class Bridge(WithoutHooks):
    """The `Processor` of the bridge: map each record, produce the event or a dead letter."""

    def __init__(self, settings: Settings, mapping: EventMapping, decode: Decode = decode_json,
                 clock: Callable[[], float] = time.time) -> None:
        self.events_topic = settings.topic("events")
        self.mapping = mapping
        self.decode = decode
        self.limits = Limits.of(settings)
        self.dead_letters = DeadLetters(settings)
        self.clock = clock
        self.counts: Counter[str] = Counter()
        """Committed records by outcome: `events`, `skipped`, `dead_letters`."""
        self._staged: Counter[str] = Counter()
        self._rejects: Counter[str] = Counter()
        self.group = settings.bridge_group
        self.consumer: Callable[[], Any] = lambda: None
        """The loop's consumer, for the source topic's lag (set by `assemble_bridge`)."""
        self.lag_interval = 5.0
        self._last_lag = float("-inf")

    def between_batches(self) -> None:
        """Every `lag_interval` seconds: `refold_consumer_lag_messages` of the source topic."""
        now = time.monotonic()
        consumer = self.consumer()
        if consumer is not None and now - self._last_lag >= self.lag_interval:
            self._last_lag = now
            record_lag(consumer, self.group)

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        """Drop the lag series of partitions another replica takes over (it reports them)."""
        for tp in partitions:
            with contextlib.suppress(KeyError):  # no lag was recorded for it yet
                metrics.CONSUMER_LAG.remove(self.group, tp.topic, str(tp.partition))

    def handle(self, messages: list[Message], out: Output) -> None:
        now = self.clock()
        for msg in messages:
            try:
                event = self.map(msg, now)
            except Skipped:
                self._staged["skipped"] += 1
                continue
            except Rejected as err:
                self.dead_letters.send(out, msg, err, now)
                self._staged["dead_letters"] += 1
                self._rejects[err.error_class] += 1
                continue
            out.produce(self.events_topic, encode(event), event.user_id)
            self._staged["events"] += 1

    def map(self, msg: Message, now: float) -> Any:
        """One source message to its event; `Rejected` or `Skipped` when it is none."""
        value = msg.value()
        if value is None:
            raise Rejected("", "empty message (null value)", "null_value")
        if len(value) > self.limits.max_message_bytes:
            raise Rejected("", f"message of {len(value)} bytes exceeds max_message_bytes "
                           f"({self.limits.max_message_bytes})", "oversize")
        record = self.decode(value)
        kind, ms = msg.timestamp()
        fallback = ms / 1000.0 if kind != TIMESTAMP_NOT_AVAILABLE and ms >= 0 else None
        try:
            event = self.mapping.map_record(
                record, fallback_time=fallback,
                fallback_id=f"{msg.topic()}-{msg.partition()}-{msg.offset()}")
        except MappingError as exc:
            raise Rejected(exc.field, exc.reason, exc.error_class) from None
        ahead = event.event_time - now
        if ahead > self.limits.max_future_seconds:
            raise Rejected("event_time", f"{ahead:.0f} s in the future (max_future_seconds is "
                           f"{self.limits.max_future_seconds:g})", "future_time")
        return event

    def promote(self) -> None:
        self.counts.update(self._staged)
        self.dead_letters.count(self._rejects)
        for outcome, n in self._staged.items():
            metrics.BRIDGE_RECORDS.labels(outcome=outcome).inc(n)
        for reason, n in self._rejects.items():
            metrics.DEAD_LETTERS.labels(reason=reason).inc(n)
        self.rollback()

    def rollback(self) -> None:
        self._staged.clear()
        self._rejects.clear()

    def summary(self, seconds: float) -> str:
        c = self.counts
        rate = c["events"] / seconds if seconds > 0 else 0.0
        dead = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letters.counts.items()))
        return (f"{c['events']:,} events, {c['skipped']:,} skipped, {c['dead_letters']:,} dead "
                f"letters{f' ({dead})' if dead else ''} in {seconds:.1f} s ({rate:,.0f}/s)")


class RunningBridge:
    """A bridge as `refold bridge` runs it: its processor (`bridge`), `loop`, `probes` and
    `metrics_port`; `run()` returns the seconds it was busy. A context manager."""

    def __init__(self, settings: Settings, bridge: Bridge, loop: TransactionalLoop,
                 probes: Probes, metrics_port: int | None) -> None:
        self.settings, self.bridge, self.loop = settings, bridge, loop
        self.probes, self.metrics_port = probes, metrics_port

    def run(self) -> float:
        stats = self.loop.run()
        return stats.busy_seconds

    def stop(self) -> None:
        """Finish the current batch, commit it and return from `run` (any thread, signals)."""
        self.loop.stop()

    def stop_on_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def assemble_bridge(settings: Settings, mapping: EventMapping | None = None,
                    decode: Decode = decode_json, serve_metrics: bool = True,
                    **loop_options: Any) -> RunningBridge:
    """The bridge over `settings.bridge_source_topic` as `refold bridge` runs it: the loop, the
    instance check, /metrics, /healthz and /ready on the bridge's port (ready once it joined its
    group)."""
    if not settings.bridge_source_topic:
        raise ConfigError("the bridge needs a source topic (bridge_source_topic, --source)")
    probes = Probes()
    bridge = Bridge(settings, mapping or mapping_of(settings), decode)
    loop = TransactionalLoop(
        settings, bridge, topics=[settings.bridge_source_topic], group_id=settings.bridge_group,
        transactional_id=transactional_id(settings), client_role="bridge", probes=probes,
        **loop_options)
    bridge.consumer = lambda: loop.consumer
    port = metrics.serve(settings, role="bridge", probes=probes) if serve_metrics else None
    return RunningBridge(settings, bridge, loop, probes, port)
