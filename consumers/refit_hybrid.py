"""What a refit adds for the hybrid ranking: the content model's idf, items' interaction counts,
and the learned mixer, all shipped in the snapshot.

`HybridRefit` is the refitter's part that

1. follows the catalog (the items topic, read like the workers read it) and keeps the document
   frequencies of the items' texts as they come and go (`models.content.DocumentFrequencies`),
   so a refit's idf costs no hashing of the catalog;
2. keeps the newest `mixer_window_events` events it read, with their partitions;
3. on a refit, replays them through a fresh `models.recommender.OnlineRecommender` serving the
   *live* snapshot (the model the workers showed those users, never the candidate, which was
   trained on them), and from the events after the live snapshot's data, a sample of at most
   `mixer_scored_events` positives, records each one's candidates and 1:3 sampled negatives
   (`models.mixer_fit.collect`); the buffer keeps the newest examples across refits, and the
   mixer fitted on it goes into the new snapshot (the live one's is kept while there are too
   few examples, and none is shipped before the first snapshot: the hand-set blend ranks).

The replay starts with empty histories at the window's first event, so users look younger
than they are; the mixer's user-events feature saturates at 100 events, which a 50,000-event
window reaches for active users.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import numpy as np

from consumers.catalog_reader import CatalogReader
from models.content import DocumentFrequencies, TextEncoder
from models.mixer_fit import ExampleBuffer, collect
from models.recommender import OnlineRecommender
from models.snapshot import Snapshot
from models.store import TrainingData
from refold.core.config import Settings
from refold.core.schemas import Event, Item

log = logging.getLogger(__name__)

MIN_POSITIVES = 500
"""Positives the example buffer needs before a mixer is fitted."""


class HybridRefit:
    """The catalog, recent events and mixer examples of a refitter."""

    def __init__(self, settings: Settings, follow_catalog: bool = True) -> None:
        from consumers.model_source import foldin_config

        self.settings = settings
        self.config = foldin_config(settings)
        self.learn_mixer = settings.learn_mixer
        self.scored_events = settings.mixer_scored_events
        self.items: dict[str, Item] = {}
        self.df = DocumentFrequencies()
        self._terms: dict[str, np.ndarray] = {}
        self._encoder = TextEncoder()
        self.recent: deque[tuple[Event, int]] = deque(maxlen=settings.mixer_window_events)
        self.examples = ExampleBuffer(4 * 30_000)
        self.catalog = CatalogReader(settings, apply_many=self.apply_items) \
            if follow_catalog else None
        self.min_positives = MIN_POSITIVES
        self.last: dict[str, Any] = {}
        """What the last mixer fit did (events replayed, examples, seconds)."""

    # -- inputs
    def catch_up(self, timeout: float = 30.0) -> None:
        if self.catalog is not None and not self.catalog.catch_up(timeout):
            log.warning("catalog not read to its end in %.0f s: going on", timeout)

    def poll(self) -> None:
        if self.catalog is not None:
            self.catalog.poll(0.0)

    def apply_items(self, items: list[Item]) -> None:
        """Catalog messages: the items, and their texts' document frequencies."""
        counts = self._encoder.counts([it.text or "" for it in items])
        for r, item in enumerate(items):
            old = self._terms.pop(item.item_id, None)
            if old is not None:
                self.df.remove(old)
            terms = counts.indices[counts.indptr[r]: counts.indptr[r + 1]]
            if len(terms):
                terms = np.unique(terms).astype(np.int64)
                self.df.add(terms)
                self._terms[item.item_id] = terms
            self.items[item.item_id] = item

    def add(self, ev: Event, partition: int) -> None:
        self.recent.append((ev, partition))

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()

    # -- what a refit ships
    def extras(self, item_ids: list[str] | tuple[str, ...], data: TrainingData
               ) -> dict[str, np.ndarray]:
        """The snapshot's optional arrays: items' interaction counts, the catalog's idf."""
        col = {x: j for j, x in enumerate(data.item_ids)}
        users = np.diff((data.full > 0).tocsc().indptr)
        counts = np.array([users[col[x]] if x in col else 0 for x in item_ids],
                          dtype=np.float32)
        return {"counts": counts, **self.df.idf().to_arrays()}

    def mixer(self, live: Snapshot | None) -> dict[str, Any] | None:
        """The mixer to ship with the next version (JSON), fitted on a replay of the recent
        events served by `live`; the live one's when not enough examples; None before any."""
        previous = live.params.get("mixer") if live is not None else None
        if not self.learn_mixer or live is None or not self.recent:
            return previous
        t0 = time.perf_counter()
        events = list(self.recent)
        covered = live.watermark.max_event_time
        split = next((j for j, (ev, _) in enumerate(events) if ev.event_time > covered),
                     len(events))
        rec = OnlineRecommender(self.config, live.item_factors())
        rec.apply_items(list(self.items.values()))
        weigh = self.config.weights.weight
        scored = len(events) - split
        counts = collect(
            rec, (ev for ev, _ in events),
            positive=lambda ev: weigh(ev.event_type, ev.value, ev.weight) > 0,
            buffer=self.examples, score_from=split,
            sample=min(1.0, self.scored_events / max(scored, 1)),
            seed=live.version, partitions=[p for _, p in events])
        fitted = self.examples.fit(self.min_positives)
        self.last = {**counts, "seconds": time.perf_counter() - t0,
                     "buffer_positives": self.examples.positives}
        log.info("mixer: replayed %d events (%d scored, %d examples) in %.1f s; %s",
                 counts["events"], counts["scored"], counts["examples"], self.last["seconds"],
                 "fitted" if fitted is not None else "too few examples: the previous one stays")
        return fitted.to_json() if fitted is not None else previous
