"""The fold-in worker: events in, one fresh recommendation list per affected user out.

`FoldInWorker` is the `consumers.loop.Processor` of `refold consume`. For a micro-batch it

1. checks every message (`consumers.deadletter`): a bad one becomes a dead letter, in the same
   transaction, and processing goes on;
2. skips an event whose id is among its user's recent event ids (a re-sent event counts once);
3. saves the state of the batch's users and partitions (the undo log), then runs the batch
   through `OnlineRecommender.process_batch` (per-event semantics, one batched solve; state
   other than users' is kept per partition, see `models.partition`);
4. produces one `Recommendation` per affected user, keyed by user id, naming its cause: the
   user's last event of the batch and where it was read;
5. writes the new state of the batch's users and partitions to the changelog
   (`consumers.changelog`), in the same transaction.

After the commit the loop calls `promote` (forget the undo log, count); after an abort,
`rollback` puts the saved states back, so the re-read batch is applied to the state it first saw.
When partitions are assigned, their state is read back from the changelog before any of their
events (`on_partitions_assigned`); when they go, it is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message, TopicPartition

from consumers import changelog
from consumers.catalog_reader import CatalogReader
from consumers.deadletter import DeadLetters, Limits, Rejected, check_event_message
from consumers.loop import Output, TransactionalLoop, next_offsets
from models.foldin import ItemFactors
from models.partition import PartitionUndo
from models.recommender import OnlineRecommender, PreparedFactors, Recs
from refold.core.config import Settings
from refold.core.errors import ModelError
from refold.core.kafka import where
from refold.core.schemas import Cause, Event, Recommendation, RecommendedItem, encode

log = logging.getLogger(__name__)

_NEW = object()
"""Undo-log marker: the user had no state before the batch (roll back = forget the user)."""


@dataclass
class CommittedBatch:
    """What a committed batch did, for `FoldInWorker.on_commit` (metrics, drift, quality)."""

    events: list[Event] = field(default_factory=list)
    """The events applied, in order (not the dead letters or duplicates)."""
    published: list[Recs] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    """The error class of each rejected message."""
    timestamps: list[float] = field(default_factory=list)
    """Each applied event's Kafka timestamp (s): commit time minus it is its freshness."""
    started: float = 0.0
    committed: float = 0.0
    model_version: int | None = None
    users_in_state: int = 0
    user_vector_norm: float | None = None
    """Mean norm of the user vectors folded in for the batch's lists (None: none)."""
    foldin_residual: float | None = None
    """Mean fold-in residual of those users (`models.foldin.residuals`; None: none)."""


class RecentIds:
    """Each user's last `size` event ids, oldest first, to apply a re-sent event only once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.by_user: dict[str, dict[str, None]] = {}

    def seen(self, user_id: str, event_id: str) -> bool:
        """Whether `event_id` is recent for the user; if not, remember it."""
        ids = self.by_user.setdefault(user_id, {})
        if event_id in ids:
            return True
        ids[event_id] = None
        if len(ids) > self.size:
            del ids[next(iter(ids))]
        return False


class FoldInWorker:
    """Fold a micro-batch of events into `recommender` and publish the affected users' lists."""

    def __init__(
        self,
        settings: Settings,
        recommender: OnlineRecommender,
        *,
        catalog: CatalogReader | None = None,
        clock: Callable[[], float] = time.time,
        dedup_window: int | None = None,
        on_commit: Callable[[CommittedBatch], None] | None = None,
        exact_restore: bool = True,
    ) -> None:
        self.settings = settings
        self.recommender = recommender
        self.catalog = catalog
        self.clock = clock
        self.limits = Limits.of(settings)
        self.recs_topic = settings.topic("recommendations")
        self.events_topic = settings.topic("events")
        self.changelog_topic = settings.topic("changelog")
        self.changelog = changelog.ChangelogReader(settings, exact=exact_restore)
        self.restores: list[changelog.RestoreReport] = []
        self.dead_letters = DeadLetters(settings)
        self.recent = RecentIds(dedup_window or 2 * settings.history_size)
        self.partition_of: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        """Committed totals: events, duplicates, recommendations, dead_letters,
        changelog_records, changelog_bytes."""
        self._undo: dict[str, tuple[Any, dict[str, None] | None, int | None]] = {}
        self._undo_parts: dict[int, PartitionUndo] = {}
        self._staged: Counter[str] = Counter()
        self._staged_dead: Counter[str] = Counter()
        self._next_model: PreparedFactors | None = None
        self._next_lock = threading.Lock()
        self.on_commit = on_commit
        self._batch = CommittedBatch()

    # -- the loop's Processor protocol

    def handle(self, messages: list[Message], out: Output) -> None:
        now = self.clock()
        self._batch = done = CommittedBatch(started=now)
        batch: list[tuple[Event, Message]] = []
        for msg in messages:
            try:
                event = self._check(msg, now)
            except Rejected as err:
                self.dead_letters.send(out, msg, err, now)
                self._staged_dead[err.error_class] += 1
                done.dead_letters.append(err.error_class)
                continue
            self._save(event.user_id, msg.partition())
            if self.recent.seen(event.user_id, event.event_id):
                log.info("duplicate event %s at %s: skipped", event.event_id, where(msg))
                self._staged["duplicates"] += 1
                continue
            batch.append((event, msg))
        self._save_partitions(messages, batch)
        if batch:
            read_at = {id(ev): msg for ev, msg in batch}
            results = self.recommender.process_batch(
                [ev for ev, _ in batch], [msg.partition() for _, msg in batch])
            for ev, recs in results:
                msg = read_at[id(ev)]
                out.produce(self.recs_topic, encode(self._recommendation(ev, msg, recs, now)),
                            ev.user_id)
                done.published.append(recs)
            done.events = [ev for ev, _ in batch]
            done.user_vector_norm = self.recommender.batch_vector_norm
            done.foldin_residual = self.recommender.batch_residual
            done.timestamps = [msg.timestamp()[1] / 1000 for _, msg in batch]
            self._staged["events"] += len(batch)
            self._staged["recommendations"] += len(done.published)
        self._write_changelog(out, messages, {ev.user_id: None for ev in done.events})

    def promote(self) -> None:
        """The batch committed: its state is the state; count what it did."""
        self._undo.clear()
        self._undo_parts.clear()
        self.counts.update(self._staged)
        self.counts["dead_letters"] += sum(self._staged_dead.values())
        self.dead_letters.count(self._staged_dead)
        self._staged.clear()
        self._staged_dead.clear()
        if self.on_commit is not None:
            done, self._batch = self._batch, CommittedBatch()
            done.committed = self.clock()
            done.model_version = self.recommender.model_version
            done.users_in_state = len(self.partition_of)
            try:
                self.on_commit(done)
            except Exception:  # watching must not stop the work: the batch is committed
                log.exception("on_commit failed")

    def rollback(self) -> None:
        """The batch aborted: put back every touched user's state and the popularity."""
        rec = self.recommender
        for user, (state, ids, partition) in self._undo.items():
            if state is _NEW:
                rec.drop_user(user)
            else:
                rec.restore_user(user, state)
            if ids is None:
                self.recent.by_user.pop(user, None)
            else:
                self.recent.by_user[user] = ids
            if partition is None:
                self.partition_of.pop(user, None)
            else:
                self.partition_of[user] = partition
        for p, undo in self._undo_parts.items():
            rec.revert_partition(p, undo)
        log.warning("rolled back the state of %d user(s) and %d partition(s)", len(self._undo),
                    len(self._undo_parts))
        self._undo.clear()
        self._undo_parts.clear()
        self._staged.clear()
        self._staged_dead.clear()
        self._batch = CommittedBatch()

    def between_batches(self) -> None:
        """Apply catalog changes and a pending model version: never in the middle of a batch."""
        if self.catalog is not None:
            self.catalog.poll(0.0)
        with self._next_lock:
            prepared, self._next_model = self._next_model, None
        if prepared is not None:
            t0 = time.perf_counter()
            self.recommender.swap_factors(prepared)
            log.info("serving model version %s (swapped in %.1f ms)", prepared.version,
                     (time.perf_counter() - t0) * 1000)

    def on_partitions_assigned(self, partitions: list[TopicPartition]) -> None:
        """Restore the partitions' state from the changelog, as of their committed offsets,
        before any of their events is read (this runs inside the consumer's poll)."""
        mine = sorted(tp.partition for tp in partitions if tp.topic == self.events_topic)
        if not mine:
            return
        restored, report = self.changelog.restore(mine)
        rec = self.recommender
        for p, part in restored.items():
            for user, (history, ids) in part.users.items():
                rec.restore_user(user, history, partition=p)
                self.recent.by_user[user] = dict.fromkeys(ids)
                self.partition_of[user] = p
            plain = part.plain()
            if plain is not None:
                rec.restore_partition(p, plain)
        self.restores.append(report)
        log.info("%s", report)

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        """Forget the state of partitions that moved away (their new owner restores it)."""
        gone = {tp.partition for tp in partitions if tp.topic == self.events_topic}
        users = [u for u, p in self.partition_of.items() if p in gone]
        for user in users:
            self.recommender.drop_user(user)
            self.recent.by_user.pop(user, None)
            del self.partition_of[user]
        for p in gone:
            self.recommender.drop_partition(p)
        if users:
            log.info("dropped the state of %d user(s) of revoked partitions", len(users))

    # -- start, stop and hooks for other processes

    def start(self, timeout: float = 30.0) -> None:
        """Read the catalog to its end before the first batch (then between batches)."""
        if self.catalog is not None and not self.catalog.catch_up(timeout):
            log.warning("catalog not read to its end in %.0f s: going on", timeout)

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()
        self.changelog.close()

    def swap_model(self, factors: ItemFactors) -> None:
        """Serve `factors` from the next batch on; call it from another thread (a snapshot
        follower's): the layout is built there, and between batches the worker only exchanges
        references, so the swap is atomic. What the processing thread still pays is freeing the
        old version where its last reference goes (`refold bench swap`: ~8 ms at 200K x 64,
        against ~65 ms with the layout built between batches).

        Users are folded in again lazily, on their next event (the recommender caches vectors
        per model version), not eagerly at the swap: a pause proportional to the active users
        would hold every partition back; a user's list only changes when the user acts (the
        list of someone idle is published on their next event anyway); and re-folding the
        recently active would publish lists nobody asked for, in a burst of output and CPU.
        """
        prepared = self.recommender.prepare_factors(factors)
        with self._next_lock:
            self._next_model = prepared

    # -- internals

    def _check(self, msg: Message, now: float) -> Event:
        event = check_event_message(msg.key(), msg.value(), self.limits, now)
        try:  # the model's own rules (e.g. event weights) are part of "usable"
            self.recommender.config.weights.weight(event.event_type, event.value, event.weight)
        except ModelError as exc:
            raise Rejected("", str(exc), "model") from None
        return event

    def _save(self, user_id: str, partition: int) -> None:
        """Undo log: the user's state before the batch first touched it."""
        if user_id in self._undo:
            return
        state = self.recommender.user_state(user_id)
        ids = self.recent.by_user.get(user_id)
        self._undo[user_id] = (
            _NEW if state is None else state,
            None if ids is None else dict(ids),
            self.partition_of.get(user_id),
        )
        self.partition_of[user_id] = partition

    def _save_partitions(self, messages: list[Message], batch: list[tuple[Event, Message]]
                         ) -> None:
        """Undo log: the state of every partition of the batch before the batch."""
        items: dict[int, list[str]] = {msg.partition(): [] for msg in messages}
        for ev, msg in batch:
            items[msg.partition()].append(ev.item_id)
        for p, ids in items.items():
            self._undo_parts[p] = self.recommender.save_partition(p, ids)

    def _write_changelog(self, out: Output, messages: list[Message],
                         users: dict[str, None]) -> None:
        """The new state of the batch's users and partitions, each partition's records last
        with the events offset they cover, into the changelog partition of the events'."""
        rec, topic = self.recommender, self.changelog_topic
        records, size = 0, 0
        for user in users:
            state = rec.user_state(user)
            assert state is not None
            value = changelog.user_value(state, self.recent.by_user[user])
            out.produce(topic, value, changelog.user_key(user), partition=self.partition_of[user])
            records, size = records + 1, size + len(value)
        for tp in next_offsets(messages):
            plain = rec.partition_changes(tp.partition)
            for key, value in changelog.partition_records(tp.partition, plain, tp.offset):
                out.produce(topic, value, key, partition=tp.partition)
                records, size = records + 1, size + len(value)
        self._staged["changelog_records"] += records
        self._staged["changelog_bytes"] += size

    def _recommendation(self, ev: Event, msg: Message, recs: Recs, now: float) -> Recommendation:
        return Recommendation(
            user_id=recs.user_id,
            items=[RecommendedItem(i, s) for i, s in zip(recs.items, recs.scores, strict=True)],
            model_version=recs.model_version,
            source=recs.source,
            generated_at=now,
            cause=Cause(event_id=ev.event_id, event_time=ev.event_time, topic=msg.topic(),
                        partition=msg.partition(), offset=msg.offset()),
        )

    def summary(self, seconds: float) -> str:
        """One line: what was done, how fast."""
        c = self.counts
        rate = c["events"] / seconds if seconds > 0 else 0.0
        dead = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letters.counts.items()))
        return (f"{c['events']:,} events, {c['recommendations']:,} recommendations, "
                f"{c['dead_letters']:,} dead letters{f' ({dead})' if dead else ''}, "
                f"{c['duplicates']:,} duplicates in {seconds:.1f} s ({rate:,.0f} events/s)")


def transactional_id(settings: Settings) -> str:
    """Stable per worker slot: a restarted instance fences its predecessor."""
    return f"{settings.topic_prefix}{settings.consumer_group}-{settings.instance_id}"


def build_worker(
    settings: Settings, recommender: OnlineRecommender, guarantee: str = "exactly-once",
    monitor: Any = None, **loop_options: Any,
) -> tuple[FoldInWorker, TransactionalLoop]:
    """A worker that follows the catalog, and the loop that drives it with `guarantee`.

    With a `consumers.monitor.Monitor`, the worker is returned wrapped in
    `consumers.instrument.Monitored` (same interface, plus `swap_snapshot`), which feeds it.
    """

    def apply(item: Any) -> None:
        recommender.set_item_active(item.item_id, item.active, item.categories)

    worker = FoldInWorker(settings, recommender, catalog=CatalogReader(settings, apply),
                          exact_restore=guarantee == "exactly-once")
    if monitor is not None:
        from consumers.instrument import Monitored

        worker = Monitored(worker, monitor, settings.consumer_group)  # type: ignore[assignment]
    loop = TransactionalLoop(
        settings, worker, topics=[settings.topic("events")], group_id=settings.consumer_group,
        transactional_id=transactional_id(settings), guarantee=guarantee, **loop_options)
    if monitor is not None:
        worker.attach(loop)  # type: ignore[attr-defined]
    return worker, loop
