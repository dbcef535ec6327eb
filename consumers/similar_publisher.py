"""The compacted similar-items topic: each item's neighbours, published by the refitter per refit.

`SimilarItemsPublisher.publish` computes every item's `k` nearest neighbours with
`models.similar` (the refit's item factors blended with the session co-visits of the positive
interactions it trained on) and produces one `SimilarItems` record per item, keyed by item id,
each carrying the model version. Items that an earlier publish named and this model no longer has
get a tombstone, so the compacted topic holds one record per item of the live model. The keys of
earlier publishes are read from the topic once, at the first publish after a start.

Delivery is at least once, outside transactions (idempotent producer, flushed at the end): a
refitter that dies mid-publish leaves some items at the previous version, which readers serve
until the next refit; each record says its version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from confluent_kafka import Message, Producer

from consumers.tail import TopicTail
from models.ann import AnnConfig
from models.similar import covisit_counts, named, similar_items
from refold.core.config import Settings
from refold.core.errors import ConsumerError, ModelError
from refold.core.kafka import make_producer, produce
from refold.core.schemas import RecommendedItem, SimilarItems, encode

log = logging.getLogger(__name__)
TOPIC = "similar-items"


class SimilarPublishError(ConsumerError):
    """Some similar-items records were not acknowledged."""


@dataclass(frozen=True)
class SimilarParams:
    """How many neighbours, and the co-visits' weight, window and decay (`models.similar`)."""

    k: int = 50
    """50 rather than 20: on ml-100k, 84% of a list's items are then the neighbour of one of
    the user's five latest items (an explanation names it), against 66% at 20."""
    weight: float = 0.5
    window: int = 10
    decay: float = 0.8
    ann_min_items: int = 200_000
    """From this many items the neighbours' candidates come from a graph index (faiss HNSW;
    exact scores), below it from the exact scan; 0: always exact. On synthetic 64-factor
    catalogs the exact scan took 22 CPU s at 30K items and 198 s at 100K (n²: hours at 1M), the
    graph 12 and 76 s, finding 97% and 90% of the exact top 50 (`refold bench similar`)."""


@dataclass(frozen=True)
class Sequences:
    """Positive interactions as parallel arrays: user indices, item indices (into the model's
    item ids), times."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray


@dataclass(frozen=True)
class PublishedSimilar:
    version: int
    records: int
    tombstones: int
    compute_seconds: float
    publish_seconds: float


class SimilarItemsPublisher:
    """Publishes a model's similar items; `published` holds the keys the topic has now."""

    def __init__(self, settings: Settings, params: SimilarParams | None = None) -> None:
        self.settings = settings
        self.params = params or SimilarParams()
        self.topic = settings.topic(TOPIC)
        self.published: set[str] | None = None
        self._producer: Producer | None = None

    def publish(self, version: int, item_ids: Sequence[str], Y: np.ndarray,
                sequences: Sequences | None = None, generated_at: float | None = None,
                timeout: float = 120.0) -> PublishedSimilar:
        """Compute and publish every item's neighbours; raises `SimilarPublishError` if a
        record was not delivered within `timeout`."""
        t0 = time.perf_counter()
        p = self.params
        C = n = None
        if sequences is not None and len(sequences.items):
            C, n = covisit_counts(sequences.users, sequences.items, sequences.times,
                                  len(item_ids), p.window, p.decay)
        ann = AnnConfig(min_items=p.ann_min_items) if p.ann_min_items > 0 else None
        try:
            idx, val = similar_items(Y, C, n, k=p.k, weight=p.weight, ann=ann)
        except ModelError as exc:  # faiss missing: the exact scan, however long it takes
            if ann is None or "faiss" not in str(exc):
                raise
            log.warning("similar items: %s; scanning every pair instead", exc)
            idx, val = similar_items(Y, C, n, k=p.k, weight=p.weight)
        computed = time.perf_counter() - t0
        if self.published is None:
            self.published = self._keys_on_topic(timeout)
        if self._producer is None:
            self._producer = make_producer(self.settings, {"linger.ms": 50},
                                           purpose="refitter-similar")
        at = time.time() if generated_at is None else generated_at
        errors: list[str] = []
        ids = list(item_ids)
        for item, nbrs in named(ids, idx, val):
            msg = SimilarItems(item_id=item, items=[RecommendedItem(j, s) for j, s in nbrs],
                               model_version=version, generated_at=at)
            self._produce(item, encode(msg), errors)
        gone = self.published - set(ids)
        for item in sorted(gone):
            self._produce(item, None, errors)
        left = self._producer.flush(timeout)
        if left or errors:
            raise SimilarPublishError(f"similar items v{version}: {left} records undelivered, "
                               f"{len(errors)} failed ({'; '.join(errors[:3])})")
        self.published = set(ids)
        out = PublishedSimilar(version, len(ids), len(gone), computed,
                               time.perf_counter() - t0 - computed)
        log.info("similar items v%d: %d items (%d tombstones) to %s, computed in %.2f s, "
                 "published in %.2f s", version, out.records, out.tombstones, self.topic,
                 out.compute_seconds, out.publish_seconds)
        return out

    def _produce(self, key: str, value: bytes | None, errors: list[str]) -> None:
        def delivered(err: object, _: Message) -> None:
            if err is not None:
                errors.append(str(err))

        assert self._producer is not None
        produce(self._producer, self.topic, value, key, on_delivery=delivered)

    def _keys_on_topic(self, timeout: float) -> set[str]:
        """The item ids the topic holds a record for (latest value not a tombstone)."""
        keys: dict[str, bool] = {}

        def keep(messages: list[Message]) -> None:
            for msg in messages:
                keys[(msg.key() or b"").decode("utf-8", "replace")] = msg.value() is not None

        tail = TopicTail(self.settings, self.topic)
        try:
            if not tail.catch_up(keep, timeout):
                log.warning("%s not read to its end: items dropped since may keep a record",
                            self.topic)
        finally:
            tail.close()
        return {k for k, alive in keys.items() if alive}

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None
