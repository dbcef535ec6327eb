"""What the refitter has read: its interaction store, the offsets it covers, and its checkpoint.

Events are decoded, checked (`consumers.poison.check_numbers`) and de-duplicated by id over
`dedup_horizon_seconds` of event time across partitions (`consumers.state.seen.SeenIds`, a
local store under `state_dir`), then added to the store. A bad event is skipped and counted (the
workers dead-letter it). The checkpoint is the store written atomically (temp file, fsync,
rename) with the offsets it covers; the refitter starts from it, or from the beginning of the
topic.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from consumers.poison import check_numbers
from consumers.state.seen import SeenIds
from models.expiry import Horizon
from models.store import InteractionStore, StoreConfig
from models.weights import EventWeights
from refold.core.config import Settings
from refold.core.errors import ModelError
from refold.core.kafka import where
from refold.core.schemas import Event, SchemaError, decode_event

log = logging.getLogger(__name__)


class RefitIntake:
    """The refitter's store, the next offset per events partition, de-duplication, checkpoint."""

    def __init__(self, settings: Settings, store_config: StoreConfig | None,
                 weights: EventWeights) -> None:
        self.settings = settings
        self.topic = settings.topic("events")
        self.store = InteractionStore(store_config, weights)
        self.offsets: dict[int, int] = {}
        """Next offset to read per events partition: what the store covers."""
        self.checkpoint_path = (Path(settings.home) / "refit"
                                / f"{self.topic}.{settings.refit_group}.store")
        self.bad_events = 0
        self.duplicates = 0
        """Events whose id was seen within `dedup_horizon_seconds` (any partition): skipped."""
        self.seen: SeenIds | None = None
        self.on_event: Callable[[Event, int], None] | None = None
        """Called with each event the store took and its partition (the hybrid part's replay)."""

    def restore(self) -> None:
        """Load the checkpoint, if there is one."""
        if not self.checkpoint_path.exists():
            return
        blob = self.checkpoint_path.read_bytes()
        self.store = InteractionStore.from_bytes(blob, self.store.config, self.store.weights)
        self.offsets = {int(p): int(o) for p, o in self.store.meta.get("offsets", {}).items()}
        log.info("restored the store from %s: %s, %s", self.checkpoint_path,
                 self.store.stats(), self.where())

    def open_seen(self, admin: AdminClient) -> None:
        """Open the de-duplication's ids, under the state directory (per topic and group); the
        topic's id tells a topic created again from the one they were seen on."""
        topic_id = str(admin.describe_topics(TopicCollection([self.topic]))[self.topic]
                       .result(30).topic_id)
        path = self.settings.state_path / "refit" / f"{self.topic}.{self.settings.refit_group}"
        self.seen = SeenIds(path, Horizon(self.settings.dedup_horizon_seconds), topic_id)

    def consume(self, consumer: Consumer, max_messages: int) -> None:
        for msg in consumer.consume(max_messages, timeout=0.5):
            if msg.error() is not None or msg.topic() != self.topic:
                log.warning("ignored %s: %s", where(msg), msg.error() or "not the events topic")
                continue
            self.offsets[msg.partition()] = msg.offset() + 1
            self.add(msg)

    def add(self, msg: Message) -> None:
        try:
            ev = decode_event(msg.value())
            check_numbers(ev, self.settings.max_abs_weight)
            if self.seen is not None and self.seen.duplicate(
                    ev.event_id, ev.event_time, msg.partition(), msg.offset()):
                self.duplicates += 1
                log.debug("duplicate event %s at %s: skipped", ev.event_id, where(msg))
                return
            self.store.add(ev.user_id, ev.item_id, ev.event_type, ev.event_time, ev.value,
                           ev.weight)
            if self.on_event is not None:
                self.on_event(ev, msg.partition())
        except (SchemaError, ModelError) as exc:  # the worker dead-letters it; here, skip
            self.bad_events += 1
            log.debug("skipped a bad event at %s: %s", where(msg), exc)

    def checkpoint(self, version: int, consumer: Consumer | None) -> Path:
        """Write the store atomically (temp file, fsync, rename), then commit its offsets
        through `consumer` (for lag only)."""
        if self.seen is not None:  # the ids first: they may be ahead of the checkpoint
            self.seen.flush()
            self.seen.prune()
        self.store.meta["offsets"] = {str(p): o for p, o in self.offsets.items()}
        self.store.meta.setdefault("version", version)
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            fh.write(self.store.to_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if consumer is not None and self.offsets:
            tps = [TopicPartition(self.topic, p, o) for p, o in self.offsets.items()]
            try:
                consumer.commit(offsets=tps, asynchronous=False)
            except Exception as exc:  # informational only: the checkpoint is what counts
                log.warning("could not commit offsets: %s", exc)
        log.info("checkpoint %s: %s", path, self.where())
        return path

    def close(self) -> None:
        if self.seen is not None:
            self.seen.close()
            self.seen = None

    def where(self, offsets: dict[int, int] | None = None) -> str:
        """`topic[p]@offset, ...` of `offsets` (default: what the store covers)."""
        offsets = self.offsets if offsets is None else offsets
        return ", ".join(f"{self.topic}[{p}]@{o}" for p, o in sorted(offsets.items())) or "nothing"
