"""`ServeView`: the topics `refold serve` reads, applied to its `ServeState`.

| topic | partitions | from | what it gives |
|---|---|---|---|
| recommendations | the held ones (default: all) | the beginning | each user's latest list |
| items | all | the beginning | active flags, categories, titles |
| similar-items | all | the beginning | each item's neighbours |
| events | all | `events_lookback` seconds ago | trending, and dismissals |

Dismissals come from the events topic itself rather than from a signal the workers would publish:
a worker can only publish after it has processed the event, which is exactly the gap in which the
old list is still served. An event is cheap to read here, and a dismissal is held only until a
list whose cause is that event (or a later one of the user) arrives, so what is held stays small.
The lookback bounds the start-up read; a dismissal older than it is in a list already unless the
workers lag by more than the lookback.

All reads are read_committed, without a consumer group: every replica holds what it needs by
itself. `catch_up` reads every topic to its end (then `/ready` answers 200); `start` follows them
in a daemon thread. A record that does not decode is logged with its topic[partition]@offset and
skipped (the workers dead-letter bad events; here each replica would file its own copy).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

from consumers.catalog_reader import CatalogReader
from consumers.following import Following
from consumers.serve_state import ServeState
from consumers.tail import StartOffsets, TopicTail
from refold.core.config import Settings
from refold.core.kafka import KafkaFatalError, where
from refold.core.schemas import (
    Item,
    SchemaError,
    decode_event,
    decode_recommendation,
    decode_similar,
)

log = logging.getLogger(__name__)
SIMILAR_TOPIC = "similar-items"
BATCH = 200
"""Records per poll: a poll holds the GIL while it applies them, and requests wait meanwhile."""
FETCH_WAIT_MS = 20
"""A dismissal or a new list is seen within this (plus the poll loop) when the topics are idle."""


def since(seconds: float, topic: str) -> StartOffsets:
    """Start offsets: the first message of each partition newer than `seconds` ago."""

    def start(consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        at = int((time.time() - seconds) * 1000)
        found = consumer.offsets_for_times([TopicPartition(topic, p, at) for p in partitions],
                                           timeout=10)
        return {tp.partition: tp.offset if tp.offset >= 0 else OFFSET_END for tp in found}

    return start


class ServeView:
    """Reads the four topics into `state` (see the module docstring)."""

    def __init__(self, settings: Settings, state: ServeState, held: set[int] | None = None,
                 events_lookback: float = 86400.0,
                 on_caught_up: Callable[[], object] | None = None) -> None:
        self.settings, self.state = settings, state
        self.on_caught_up = on_caught_up
        """Called once, after the first read to the end and before `/ready` turns 200."""
        self.recs = TopicTail(settings, settings.topic("recommendations"), BATCH, held,
                              fetch_wait_ms=FETCH_WAIT_MS)
        self.similar = TopicTail(settings, settings.topic(SIMILAR_TOPIC), BATCH,
                                 fetch_wait_ms=FETCH_WAIT_MS)
        events = settings.topic("events")
        self.events = TopicTail(settings, events, BATCH, start=since(events_lookback, events),
                                fetch_wait_ms=FETCH_WAIT_MS)
        self.catalog = CatalogReader(settings, self._item)
        self.records: Counter[str] = Counter()
        """Records applied, by topic kind (`items`, `recommendations`, ...)."""
        self.rejected: Counter[str] = Counter()
        self.caught_up = False
        self.error: str | None = None
        self.last_poll = time.monotonic()
        self._following = Following("serve-view", self._step)
        self._lock = threading.Lock()

    # -- status, for /healthz and /ready
    def healthy(self) -> tuple[bool, str]:
        if self.error is not None:
            return False, self.error
        # while reading to the end at start (a minute per million users) it is alive: /ready
        # says it is not ready yet, and a liveness probe must not restart it for that
        if self._following.running and self.caught_up and \
                time.monotonic() - self.last_poll > 30:
            return False, f"no poll for {time.monotonic() - self.last_poll:.0f} s"
        return True, "following" if self._following.running else "not following"

    def ready(self) -> tuple[bool, str]:
        if not self.caught_up:
            return False, "reading the topics to their end"
        return True, f"{len(self.state.lists):,} users, {len(self.state.catalog.ids):,} items"

    # -- reading
    def catch_up(self, timeout: float = 60.0) -> bool:
        """Read every topic to its current end (catalog first, so lists see the flags)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            ok = self.catalog.catch_up(timeout)
            for tail, apply in self._tails():
                ok = tail.catch_up(apply, max(deadline - time.monotonic(), 0.1)) and ok
        if ok and not self.caught_up and self.on_caught_up is not None:
            self.on_caught_up()
        self.caught_up = self.caught_up or ok
        return ok

    def poll(self, timeout: float = 0.02) -> int:
        """Apply what arrived on every topic; returns how many records."""
        with self._lock:
            n = self.catalog.poll(0)
            for tail, apply in self._tails():
                messages = tail.poll(timeout, fill=True) if tail is self.events else tail.poll(0)
                apply(messages)
                n += len(messages)
        self.last_poll = time.monotonic()
        return n

    def _tails(self) -> list[tuple[TopicTail, Callable[[list[Message]], None]]]:
        return [(self.similar, self._similar), (self.recs, self._lists),
                (self.events, self._events)]

    def _item(self, item: Item) -> None:
        title = (item.attributes or {}).get("title")
        self.state.set_item(item.item_id, item.active, item.categories,
                            title if isinstance(title, str) else None)
        self.records["items"] += 1

    def _lists(self, messages: list[Message]) -> None:
        for msg in messages:
            user = (msg.key() or b"").decode("utf-8", "replace")
            if msg.value() is None:  # tombstone: the user's list was deleted
                self.state.delete_list(user)
                continue
            try:
                rec = decode_recommendation(msg.value())
            except SchemaError as exc:
                self.rejected["recommendations"] += 1
                log.warning("bad recommendation %s: %s", where(msg), exc)
                continue
            self.state.put_list(
                rec.user_id, [i.item_id for i in rec.items], [i.score for i in rec.items],
                rec.source, rec.model_version, rec.generated_at,
                rec.cause.offset if rec.cause is not None and rec.cause.reason == "event"
                else None,  # (a list re-published for the catalog keeps applying dismissals)
                [(b.item_id, b.event_type) for b in rec.basis])
        self.records["recommendations"] += len(messages)

    def _similar(self, messages: list[Message]) -> None:
        for msg in messages:
            if msg.value() is None:
                self.state.delete_similar((msg.key() or b"").decode("utf-8", "replace"))
                continue
            try:
                sim = decode_similar(msg.value())
            except SchemaError as exc:
                self.rejected["similar-items"] += 1
                log.warning("bad similar-items record %s: %s", where(msg), exc)
                continue
            self.state.set_similar(sim.item_id, [(n.item_id, n.score) for n in sim.items],
                                   sim.model_version)
        self.records["similar-items"] += len(messages)

    def _events(self, messages: list[Message]) -> None:
        for msg in messages:
            try:
                ev = decode_event(msg.value())
                self.state.event(ev.user_id, ev.item_id, ev.event_type, ev.event_time,
                                 msg.offset(), ev.value, ev.weight)
            except (SchemaError, ValueError) as exc:
                self.rejected["events"] += 1
                log.debug("bad event %s: %s", where(msg), exc)
        self.records["events"] += len(messages)

    # -- following
    def start(self) -> ServeView:
        self._following.start()
        return self

    def _step(self, stop: threading.Event) -> bool:
        """Read to the end first (however long it takes: /ready says 503 meanwhile), then what
        arrives; False (the thread ends) on an error no retry fixes."""
        try:
            if not self.caught_up:
                self.catch_up(timeout=3600.0)
            elif not self.poll():
                stop.wait(0.005)
        except KafkaFatalError as exc:
            self.error = str(exc)
            log.error("serve view stopped: %s", exc)
            return False
        return True

    def stop(self) -> None:
        self._following.stop()

    def close(self) -> None:
        self.stop()
        with self._lock:
            for tail in (self.recs, self.similar, self.events):
                tail.close()
            self.catalog.close()

    def __enter__(self) -> ServeView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
