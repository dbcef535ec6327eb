"""Publishing model snapshots on the snapshots topic, in chunks, then a manifest.

A version is published as chunks keyed `<version>/<index>` and then a manifest keyed
`<version>/manifest` naming the chunks' first offset (`models.snapshot` has the format). The
manifest is produced only after every chunk is acknowledged, so a publisher killed mid-way leaves
chunks without a manifest, which no reader ever uses (`consumers.snapshots` reads them).

The refitter publishes each version in one transaction of a transactional.id per refit group:
a second refitter started by mistake fences the first when it starts (the first's open version
is aborted and never visible to read_committed readers), and the first can publish no more.
Versions older than the last `keep` are pruned (records deleted before them).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from models.snapshot import CHUNK_BYTES, Snapshot, encode_chunks, extend_manifest
from refold.core.config import Settings
from refold.core.errors import ConsumerError
from refold.core.kafka import (
    make_admin,
    make_producer,
    not_authorized,
    produce,
    raise_fatal_cause,
)

log = logging.getLogger(__name__)
MB = 1e6


class SnapshotPublishError(ConsumerError):
    """A chunk or the manifest was not acknowledged: the version is not live."""


@dataclass(frozen=True)
class Published:
    version: int
    first_offset: int
    manifest_offset: int
    chunks: int
    bytes: int
    seconds: float


class SnapshotPublisher:
    """Publishes snapshots with an idempotent producer, then prunes versions beyond `keep`."""

    def __init__(self, settings: Settings, keep: int = 3, chunk_bytes: int = CHUNK_BYTES,
                 flush_every: int = 64, pause_seconds: float = 0.0,
                 transactional_id: str | None = None) -> None:
        self.settings = settings
        self.topic = settings.topic("snapshots")
        self.keep = keep
        self.chunk_bytes = chunk_bytes
        self.flush_every = flush_every
        self.pause_seconds = pause_seconds
        """A throttle: sleep after each `flush_every` chunks, to spare the brokers' bandwidth."""
        self.published: deque[Published] = deque()
        self.transactional_id = transactional_id
        """Publish each version in a transaction of this id: a second publisher with the same
        id (another refitter) fences this one, whose versions then never become visible."""
        self._producer = None
        self._admin = None

    def publish(self, snap: Snapshot, timeout: float = 120.0) -> Published:
        """Chunks, flush, then the manifest (in one transaction when transactional); raises
        `SnapshotPublishError` if any is lost, `KafkaFatalError` once fenced."""
        try:
            return self._publish(snap, timeout)
        except SystemError as exc:
            raise_fatal_cause(exc)
            raise
        except SnapshotPublishError:
            self._abort()  # its chunks never become visible; the next version starts clean
            raise

    def _publish(self, snap: Snapshot, timeout: float) -> Published:
        t0 = time.perf_counter()
        payload = snap.to_bytes()
        size = len(payload)
        chunks, manifest = encode_chunks(payload, snap.version, self.chunk_bytes)
        del payload  # the chunks hold a copy
        self.fence()
        if self.transactional_id is not None:
            self._producer.begin_transaction()
        offsets: list[int] = []
        log.info("publishing snapshot v%d: %d chunks, %.1f MB to %s", snap.version, len(chunks),
                 size / MB, self.topic)
        for i, chunk in enumerate(chunks, 1):
            self._produce(chunk.key, chunk.value, chunk.headers, offsets)
            if i % self.flush_every == 0 and i < len(chunks):
                self._flush(timeout, offsets, i)
                log.info("snapshot v%d: %d/%d chunks delivered, %s[0]@%d", snap.version, i,
                         len(chunks), self.topic, offsets[-1])
                time.sleep(self.pause_seconds)
        self._flush(timeout, offsets, len(chunks))
        first = min(offsets)
        manifest = extend_manifest(manifest, {
            "first_offset": first, "created_at": snap.created_at, "items": len(snap.item_ids),
            "factors": snap.factors, "watermark": snap.watermark.to_json()})
        done: list[int] = []
        self._produce(manifest.key, manifest.value, manifest.headers, done)
        self._flush(timeout, done, 1)
        if self.transactional_id is not None:
            try:
                self._producer.commit_transaction(timeout)
            except KafkaException as exc:
                raise SnapshotPublishError(f"snapshot v{snap.version} not committed: "
                                           f"{exc.args[0]}") from exc
        result = Published(snap.version, first, done[0], len(chunks), size,
                           time.perf_counter() - t0)
        log.info("snapshot v%d live: %s[0]@%d..%d, %.1f MB in %.2f s", snap.version, self.topic,
                 first, done[0], size / MB, result.seconds)
        self.published.append(result)
        self.prune()
        return result

    def fence(self) -> None:
        """Make the producer; a transactional one is initialised now, which fences any other
        publisher of the same id and aborts what it left open."""
        if self._producer is not None:
            return
        extra = {"compression.type": "none", "linger.ms": 20}  # factors do not compress
        if self.transactional_id is not None:
            extra.update({"transactional.id": self.transactional_id,
                          "transaction.timeout.ms": 600_000})
        self._producer = make_producer(self.settings, extra, purpose="refitter-snapshots")
        if self.transactional_id is not None:
            try:
                self._producer.init_transactions(60)
            except KafkaException as exc:
                not_authorized(exc.args[0], "WRITE", self.transactional_id)
                raise

    def _abort(self) -> None:
        """Abort an open transaction after a failed publish (nothing to do without one)."""
        if self.transactional_id is None or self._producer is None:
            return
        try:
            self._producer.abort_transaction(30)
        except KafkaException as exc:
            log.warning("aborting the snapshot transaction: %s", exc.args[0])

    def _produce(self, key: str, value: bytes, headers: dict[str, bytes], acks: list) -> None:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            acks.append(err if err is not None else msg.offset())

        produce(self._producer, self.topic, value, key, headers=list(headers.items()),
                on_delivery=delivered)

    def _flush(self, timeout: float, acks: list, expected: int) -> None:
        left = self._producer.flush(timeout)
        errors = [a for a in acks if isinstance(a, KafkaError)]
        if left or errors or len(acks) < expected:
            raise SnapshotPublishError(f"{len(acks)}/{expected} acknowledged, {left} in flight, "
                                       f"errors: {errors[:3]}")

    def prune(self) -> None:
        """Delete the records before the oldest of the last `keep` versions this process wrote."""
        if self.keep <= 0 or len(self.published) <= self.keep:
            return
        while len(self.published) > self.keep:
            self.published.popleft()
        before = self.published[0].first_offset
        if self._admin is None:  # kept: futures of a collected client never complete
            self._admin = make_admin(self.settings, purpose="refitter-admin")
        futures = self._admin.delete_records([TopicPartition(self.topic, 0, before)])
        for fut in futures.values():
            try:
                fut.result(30)
                log.info("pruned %s[0] before @%d (keeping %d versions)", self.topic, before,
                         self.keep)
            except Exception as exc:  # retention by size still bounds the topic
                log.warning("could not prune %s before @%d: %s", self.topic, before, exc)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)

    def __enter__(self) -> SnapshotPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
