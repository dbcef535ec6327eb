"""`refold refit`: read events into the interaction store, refit on triggers, gate, publish.

The refitter is a singleton in its own consumer group (`settings.refit_group`, read_committed):
one started next to a live one refuses to start, and one that raced past that check fences the
other's publisher. Its store (`consumers.refit_intake`, events de-duplicated by id) is
authoritative for what it has read: partitions start at the offsets of its checkpoint (an atomic
file under `settings.home`), or at the beginning of the topic (the store is rebuilt from what
retention keeps). The group's committed offsets follow each checkpoint, for lag only.

A refit runs when the live model is `every_events` events behind, every `every_seconds`, on
`request_refit(reason)` (e.g. a drift alarm, from any thread), on a worker's refit request on the
control topic newer than the last refit started (`consumers.control`), or once with
`run(once=True)`, and never while the refitter is still catching up with the topic. One refit, in
steps:

1. `store.training_data`: the CSR (decayed weights) and a holdout the live model has not seen;
2. `models.refit.train`: implicit ALS warm-started from the live snapshot, a log line per iteration;
3. `Gate.check`: NaN/inf, dimensions, holdout recall@K against the live snapshot; meanwhile, on
   the other core, the live model's holdout score and the learned mixer's fit on a replay of
   recent events served by the live model (`consumers.refit_hybrid`);
4. `SnapshotPublisher.publish`: chunks, then the manifest, in one transaction; the version is
   live once it commits. It carries the mixer, the items' interaction counts and the catalog's
   idf;
5. `SimilarItemsPublisher.publish`: every item's neighbours (the new factors blended with the
   co-visits of the store's positive interactions) to the compacted similar-items topic.

SIGTERM (`stop`) aborts a training in progress at its next iteration, lets a publish finish,
writes the checkpoint, commits and returns 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from consumers import instrument
from consumers.control import RefitRequestReader
from consumers.instances import ensure_alone
from consumers.refit_hybrid import HybridRefit
from consumers.refit_intake import RefitIntake
from consumers.similar_publisher import (
    Sequences,
    SimilarItemsPublisher,
    SimilarParams,
    SimilarPublishError,
)
from consumers.snapshot_publisher import SnapshotPublisher
from consumers.snapshots import SnapshotFollower
from models.refit import Gate, RefitParams, train
from models.snapshot import CHUNK_BYTES, Snapshot, Watermark
from models.store import InteractionStore, StoreConfig
from models.weights import EventWeights
from refold.core.config import Settings
from refold.core.errors import ConsumerError, ModelError
from refold.core.kafka import KafkaFatalError, make_admin, make_consumer, watermarks
from refold.core.probes import Probes

log = logging.getLogger(__name__)

SESSION_TIMEOUT_S = 10.0
"""A refitter restarted after a crash gets its partitions back within this (heartbeats run in the
background, so a long training does not miss them); a second one waits this long for the
group to empty before refusing to start."""


@dataclass(frozen=True)
class Triggers:
    """When to refit (0 turns a trigger off) and how often to checkpoint the store."""

    every_events: int = 100_000
    every_seconds: float = 3600.0
    checkpoint_seconds: float = 300.0


DEFAULT_SIMILAR = SimilarParams()
"""Similar items are published on every refit unless a refitter is given `similar=None`."""


class RefitAborted(ConsumerError):
    """Shutdown was requested during a training."""


class Refitter:
    """The refit process; counters are plain attributes (`refits`, `published`, `refused`...)."""

    def __init__(self, settings: Settings, params: RefitParams | None = None,
                 store_config: StoreConfig | None = None, triggers: Triggers | None = None,
                 weights: EventWeights | None = None, keep_versions: int = 3,
                 chunk_bytes: int = CHUNK_BYTES, flush_every: int = 64,
                 publish_pause: float = 0.0,
                 similar: SimilarParams | None = DEFAULT_SIMILAR) -> None:
        self.settings = settings
        self.topic = settings.topic("events")
        self.params = params or RefitParams(
            factors=settings.factors, regularization=settings.regularization,
            alpha=settings.alpha, iterations=settings.iterations, k=settings.k)
        self.triggers = triggers or Triggers()
        if weights is None:  # the fold-in's weights: trained and served users must agree
            from consumers.model_source import foldin_config

            weights = foldin_config(settings).weights
        self.intake = RefitIntake(settings, store_config, weights)
        """The store, the offsets it covers, de-duplication and the checkpoint."""
        self.gate = Gate(self.params)
        self.publisher = SnapshotPublisher(
            settings, keep_versions, chunk_bytes, flush_every, publish_pause,
            transactional_id=publisher_transactional_id(settings))
        self.similar = None if similar is None else SimilarItemsPublisher(settings, similar)
        """Publishes each version's similar items (None: off)."""
        self.hybrid = HybridRefit(settings)
        """The catalog's idf, items' counts and the learned mixer each version ships."""
        self.intake.on_event = self.hybrid.add
        self.live: Snapshot | None = None
        self.next_version = 1
        self.refits = self.published = self.refused = self.failed = self.aborted = 0
        self.requests_taken = self.requests_answered = 0
        """Workers' refit requests acted upon, and those a refit had answered already."""
        self.last_refit: dict[str, float] = {}
        self._requested: list[str] = []
        self._lock = threading.Lock()
        self._side = ThreadPoolExecutor(1, thread_name_prefix="refit-live-score")
        """Scores the live model on a refit's holdout while the candidate trains."""
        self.probes = Probes(catching_up="reading the events topic to its end")
        """/healthz and /ready: ready once the store has caught up with the topic."""
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        self._requests: RefitRequestReader | None = None
        self._answered = 0.0
        """Unix time at which the last refit started: workers' requests before it are answered."""
        self._baseline = 0
        self._last_attempt = time.monotonic()

    @property
    def store(self) -> InteractionStore:
        return self.intake.store

    @property
    def offsets(self) -> dict[int, int]:
        """Next offset to read per events partition: what the store covers."""
        return self.intake.offsets

    @property
    def checkpoint_path(self) -> Path:
        return self.intake.checkpoint_path

    @property
    def duplicates(self) -> int:
        """Events whose id was seen within `dedup_horizon_seconds` (any partition): skipped."""
        return self.intake.duplicates

    # -- control, from any thread
    def request_refit(self, reason: str) -> None:
        """Refit at the next batch boundary (the drift alarm's hook)."""
        with self._lock:
            self._requested.append(reason)

    def stop(self) -> None:
        """Abort a training in progress, let a publish finish, checkpoint and return from
        `run` (any thread, signals)."""
        self._stopping.set()

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT call `stop()`."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    # -- start
    def restore(self, timeout: float = 60.0) -> None:
        """Load the checkpoint and the live snapshot; pick the next version number."""
        self.intake.restore()
        with SnapshotFollower(self.settings) as follower:
            self.live = follower.load_latest(timeout)
            seen = max(follower.max_version_seen, self.live.version if self.live else 0,
                       int(self.store.meta.get("version", 0)))
        self.next_version = seen + 1
        self._answered = self.live.created_at if self.live is not None else 0.0
        if self.live is not None:
            instrument.record_live(self.live.version, self.live.created_at)
            log.info("live snapshot v%d covers %s", self.live.version,
                     self._where(self.live.watermark.offsets))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = self.offsets.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info("assigned %s", ", ".join(f"{self.topic}[{tp.partition}]@{tp.offset}"
                                          for tp in partitions))

    # -- the loop
    def run(self, once: bool = False, restore_timeout: float = 60.0) -> int:
        """Consume and refit until `stop()` (or, with `once`, until one refit at the end).

        A refitter is alone in its group: one started next to a live one refuses to start
        (`DuplicateInstance`), and publishing is transactional with one id per group, so even
        two that raced past that check cannot both publish: the later fences the earlier,
        whose open version is aborted, before it picks its next version number."""
        admin = make_admin(self.settings, purpose="refitter-check")
        ensure_alone(admin, self.settings.refit_group, "refitter", SESSION_TIMEOUT_S)
        self.publisher.fence()
        self.intake.open_seen(admin)
        self.restore(restore_timeout)
        consumer = self._consumer = make_consumer(self.settings, self.settings.refit_group, {
            "partition.assignment.strategy": "range", "max.poll.interval.ms": 3_600_000,
            "session.timeout.ms": int(SESSION_TIMEOUT_S * 1000)}, purpose="refitter")
        consumer.subscribe([self.topic], on_assign=self._on_assign)
        self._requests = RefitRequestReader(self.settings)
        self.hybrid.catch_up()
        ends = watermarks(consumer, self.topic)
        caught_up = False
        last_checkpoint = last_lag = time.monotonic()
        try:
            while not self._stopping.is_set():
                self.probes.beat()
                self.intake.consume(consumer, self.settings.batch_size * 10)
                self._read_requests()
                self.hybrid.poll()
                if time.monotonic() - last_lag >= 5.0:
                    instrument.record_lag(consumer, self.settings.refit_group)
                    last_lag = time.monotonic()
                if not caught_up and all(max(self.offsets.get(p, lo), lo) >= hi
                                         for p, (lo, hi) in ends.items()):
                    caught_up = True
                    self.probes.clear("catching_up")
                    log.info("caught up: %s; store %s", self._where(), self.store.stats())
                    if once:
                        self.refit("once")
                        break
                    self._baseline = sum((self.live.watermark.offsets if self.live else
                                          {}).values())
                if caught_up and (reason := self._due()):
                    with self.probes.working("refit"):
                        self.refit(reason)
                instrument.record_refitter_read(self.offsets)  # after the refit they made due
                if time.monotonic() - last_checkpoint >= self.triggers.checkpoint_seconds:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
        finally:
            self.checkpoint()
            consumer.close()
            self._consumer = None
            if self._requests is not None:
                self._requests.close()
            self.publisher.close()
            self.hybrid.close()
            if self.similar is not None:
                self.similar.close()
            self.intake.close()
        log.info("refitter stopped: %d refits, %d published, %d refused, %d failed",
                 self.refits, self.published, self.refused, self.failed)
        return 0

    def _read_requests(self) -> None:
        """Ask for a refit on each worker's request newer than the last refit started."""
        if self._requests is None:
            return
        try:
            requests = self._requests.poll(0)
        except KafkaFatalError as exc:  # no control topic: `refold topics create` makes it
            log.warning("refit requests of the workers are not read: %s", exc)
            self._requests.close()
            self._requests = None
            return
        for req in requests:
            if req.time <= self._answered:
                self.requests_answered += 1
                log.info("refit request answered already: %s", req.reason)
                continue
            self.requests_taken += 1
            instrument.record_refit_request(req.detector)
            self.request_refit(req.reason)

    def _due(self) -> str | None:
        with self._lock:
            if self._requested:
                reason = "; ".join(self._requested)
                self._requested.clear()
                return reason
        behind = sum(self.offsets.values()) - self._baseline
        t = self.triggers
        if t.every_events and behind >= t.every_events:
            return f"{behind} events since the last refit"
        if t.every_seconds and behind > 0 and \
                time.monotonic() - self._last_attempt >= t.every_seconds:
            return f"{t.every_seconds:g} s since the last refit"
        return None

    # -- one refit
    def refit(self, reason: str) -> Snapshot | None:
        """Train, gate and publish one version; None when skipped, refused or failed."""
        self.refits += 1
        self._baseline, self._last_attempt = sum(self.offsets.values()), time.monotonic()
        self._answered = time.time()
        t0 = time.perf_counter()
        after = self.live.watermark.max_event_time if self.live is not None else None
        data = self.store.training_data(self.params.holdout_fraction, holdout_after=after)
        t_data = time.perf_counter() - t0
        if data.matrix.nnz == 0:
            log.info("refit skipped (%s): no interactions yet", reason)
            return None
        version = self.next_version
        log.info("refit v%d (%s): %d users x %d items, nnz %d, data to %s", version, reason,
                 *data.matrix.shape, data.full.nnz, self._where())
        # The live model's holdout score needs no candidate: on the other core, while training.
        live_score = self._side.submit(self.gate.live_recall_of, self.live, data)
        mixer = self._side.submit(self.hybrid.mixer, self.live)  # a replay on the live model
        try:
            cand = train(data, self.params, self.live, self._iteration(version))
        except RefitAborted:
            self.aborted += 1
            log.warning("refit v%d aborted: shutting down", version)
            return None
        except ModelError as exc:
            self.failed += 1
            instrument.record_refit(time.perf_counter() - t0, "failed")
            log.error("refit v%d failed: %s", version, exc)
            return None
        t_fit = time.perf_counter() - t0 - t_data
        verdict = self.gate.check(cand, self.live, data, live_score.result())
        t_gate = time.perf_counter() - t0 - t_data - t_fit
        scores = {"recall_at_k": (verdict.metrics.get("recall_at_k", float("nan")),
                                  verdict.metrics.get("live_recall_at_k"))}
        if not verdict.passed:
            self.refused += 1
            instrument.record_refit(time.perf_counter() - t0, "refused",
                                    training_events=data.full.nnz, scores=scores)
            log.warning("refit v%d refused by the gate: %s", version, verdict.reason)
            return None
        mixed = mixer.result()
        snap = Snapshot.build(
            version, time.time(), cand.item_ids, cand.Y, XtX=cand.XtX,
            watermark=Watermark(dict(self.offsets), data.max_event_time),
            params={**asdict(self.params), "reason": reason,
                    **({"mixer": mixed} if mixed is not None else {})},
            metrics={**cand.metrics, **verdict.metrics, "store_seconds": t_data,
                     "gate_seconds": t_gate,
                     **{f"mixer_{k}": float(v) for k, v in self.hybrid.last.items()}},
            extras=self.hybrid.extras(cand.item_ids, data))
        published = self.publisher.publish(snap)
        instrument.record_refit(time.perf_counter() - t0, "accepted",
                                training_events=data.full.nnz, scores=scores)
        instrument.record_published(version, snap.created_at, published.bytes)
        self.live, self.next_version = snap, version + 1
        self.published += 1
        self.store.meta["version"] = version
        self.last_refit = {"store_seconds": t_data, "fit_seconds": t_fit, "gate_seconds": t_gate,
                           "publish_seconds": published.seconds,
                           "refit_seconds": time.perf_counter() - t0, "bytes": published.bytes}
        log.info("refit v%d published in %.2f s: recall@%d %.4f (live was %.4f), loss %.5f",
                 version, self.last_refit["refit_seconds"], self.params.k,
                 verdict.metrics.get("recall_at_k", float("nan")),
                 verdict.metrics.get("live_recall_at_k", float("nan")),
                 cand.metrics.get("train_loss", float("nan")))
        self._publish_similar(snap)
        return snap

    def _publish_similar(self, snap: Snapshot) -> None:
        """The version's similar items, once it is live (workers do not wait for them); a
        failure is logged, and the topic keeps the previous version's records."""
        if self.similar is None:
            return
        try:
            users, items, times = self.store.positive_interactions(snap.item_ids)
            self.similar.publish(snap.version, snap.item_ids, snap.Y,
                                 Sequences(users, items, times), snap.created_at)
        except (SimilarPublishError, KafkaException, ModelError) as exc:
            log.error("similar items of v%d not published: %s", snap.version, exc)

    def _iteration(self, version: int):
        def callback(iteration: int, seconds: float, loss: float | None) -> None:
            log.info("refit v%d: iteration %d/%d in %.2f s", version, iteration + 1,
                     self.params.iterations, seconds)
            if self._stopping.is_set():
                raise RefitAborted

        return callback

    def checkpoint(self) -> Path:
        """Write the store's checkpoint (`RefitIntake.checkpoint`)."""
        return self.intake.checkpoint(self.next_version - 1, self._consumer)

    def _where(self, offsets: dict[int, int] | None = None) -> str:
        return self.intake.where(offsets)


def publisher_transactional_id(settings: Settings) -> str:
    """One per refit group, not per instance: a second refitter of the group, whatever its
    instance id, fences the first's publisher."""
    return f"{settings.topic_prefix}{settings.refit_group}-publisher"
