"""The fold-in worker: events in, one fresh recommendation list per affected user out.

`FoldInWorker` is the `consumers.loop.Processor` of `refold consume`. It reads the events and,
partition by partition in timestamp order, the impressions services reported. For a micro-batch
it

1. checks every message (`consumers.admission`): a bad one becomes a dead letter, in the same
   transaction, and processing goes on;
2. skips an event or impression whose id it has applied already (`state.admit`: a re-sent one
   counts once);
3. saves the state of the batch's partitions (`consumers.undo`; users: `state`), applies the users'
   impressions and events up to their last event to their feedback state (`consumers.feedback`),
   then runs the events through `OnlineRecommender.process_batch` (per-event semantics, one
   batched solve; state other than users' is kept per partition, see `models.partition`), which
   ranks each affected user's candidates;
4. draws each list from its candidates (exposure demotion, the exploration policy seeded from
   the list's `rec_id`) and produces one `Recommendation` per affected user, keyed by user id,
   with its log (positions, propensities, policy, candidate scores) and its cause: the user's
   last event of the batch and where it was read; then applies what came after that event;
5. writes the new state of the batch's users and partitions to the changelog
   (`consumers.changelog`), in the same transaction (`state.write`).

Users live in `state`: local stores per partition behind a bounded cache
(`consumers.state.stored`), or all in memory (`state_store = "memory"`). `promote` (after the
commit) hands the batch's records to the stores; `rollback` (after an abort) puts the saved
partitions back and evicts the batch's users, so the re-read batch meets the state it first saw.
Assigned partitions' state is restored before any of their messages is read (on a thread, the
partitions paused until `resumable` names them). A message whose handling keeps raising is
`quarantine`d by the loop (`consumers.isolate`): a dead letter with the exception as reason, or,
if on an empty state it does not raise, its user's stored state is (`consumers.suspects`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from confluent_kafka import Message, TopicPartition

from consumers import changelog
from consumers.admission import Admission, Admitted, Cut
from consumers.batch import SideInput
from consumers.committed import CommittedBatch, Swap
from consumers.crash import CrashPoint
from consumers.deadletter import DeadLetters
from consumers.feedback import Feedback
from consumers.loop import Output, next_offsets
from consumers.republish import Republisher
from consumers.state.memory import MemoryState
from consumers.state.stored import StoreState
from consumers.suspects import Suspects
from consumers.undo import BatchUndo
from models.foldin import ItemFactors
from models.recommender import OnlineRecommender, PreparedFactors, Recs
from models.snapshot import Snapshot
from refold.core import metrics as M
from refold.core.config import Settings
from refold.core.schemas import Cause, Event, encode

log = logging.getLogger(__name__)


class FoldInWorker:
    """Fold a micro-batch of events into `recommender` and publish the affected users' lists."""

    def __init__(
        self,
        settings: Settings,
        recommender: OnlineRecommender,
        *,
        side_inputs: Sequence[SideInput] = (),
        clock: Callable[[], float] = time.time,
        dedup_window: int | None = None,
        on_commit: Callable[[CommittedBatch], None] | None = None,
        on_swap: Callable[[Swap], None] | None = None,
        exact_restore: bool = True,
        prepare_swaps: bool = True,
    ) -> None:
        self.settings = settings
        self.recommender = recommender
        self.side_inputs = list(side_inputs)
        """Readers applied between batches, never mid-batch (the catalog is one)."""
        self.clock = clock
        self.prepare_swaps = prepare_swaps
        self.recs_topic = settings.topic("recommendations")
        self.events_topic = settings.topic("events")
        self.feedback = Feedback(recommender, keep_lists=settings.republish_inactive)
        self.changelog = changelog.ChangelogReader(settings, exact=exact_restore)
        self.dead_letters = DeadLetters(settings)
        self.state: StoreState | MemoryState
        if settings.state_store == "memory":
            self.state = MemoryState(recommender, self.changelog,
                                     dedup_window or 2 * settings.history_size)
        else:  # rocksdb (the settings allow no other value)
            self.state = StoreState(settings, recommender, committed=self.changelog.committed,
                                    exact=exact_restore)
        self.inputless = Republisher(recommender, self.state, self.feedback, clock=clock,
                                     recs_topic=self.recs_topic, items_topic=settings.topic(
                                         "items")) if settings.republish_inactive else None
        """Lists holding an item the catalog deactivated, published again between batches."""
        self.counts: Counter[str] = Counter()
        """Committed totals: events, impressions, duplicates, recommendations, demoted (lists
        exposure feedback changed), dead_letters, changelog_records, changelog_bytes."""
        self.undo = BatchUndo(recommender, {}, {})
        """The batch's partitions as they were (users: `state`)."""
        self.suspects = Suspects(self.state.reset_user, self.dead_letters, self.changelog.topic)
        """Messages whose handling kept raising (`consumers.suspects`)."""
        self.admission = Admission(settings, recommender, self.state, self.suspects,
                                   self.dead_letters)
        """Steps 1-2: which of a batch's messages are applied (`consumers.admission`)."""
        self._crash = CrashPoint.from_env()
        self._swaps = 0
        self._held: set[int] = set()
        """Partitions whose state is installed (restored)."""
        self.deleted_items: set[str] = set()
        """Items deleted from the catalog: their partition state goes, with tombstones."""
        self._tombstones: dict[tuple[int, str], None] = {}
        """(partition, item) whose records the next committed batch tombstones."""
        self._staged: Counter[str] = Counter()
        self._staged_dead: Counter[str] = Counter()
        self._next_model: PreparedFactors | ItemFactors | None = None
        self._next_lock = threading.Lock()
        self.on_commit = on_commit
        """Called with each committed batch (the monitor's feed)."""
        self.on_swap = on_swap
        """Called after a new model version is swapped in (`refold bench swap` times it)."""
        self._batch = CommittedBatch()

    # -- the loop's Processor protocol

    def handle(self, messages: list[Message], out: Output) -> None:
        """Steps 1-5 for a micro-batch."""
        now = self.clock()
        self._batch = done = CommittedBatch(started=now)
        admitted = self.admission.admit(messages, out, now)
        done.dead_letters.extend(admitted.dead_letters)
        self._staged_dead.update(admitted.dead_letters)
        self._staged.update(admitted.counts)
        touched = {m.partition(): [] for m in messages if m.topic() == self.events_topic}
        for ev, msg in admitted.events:
            touched[msg.partition()].append(ev.item_id)
        self.undo.save_partitions(touched)
        self._apply_in_order(admitted, out, now, done)
        self._staged["impressions"] += len(admitted.ops) - len(admitted.events)
        records, size = self.state.write(
            out, {**self.suspects.reset_users, **{op[0].user_id: None for op in admitted.ops}},
            [tp for tp in next_offsets(messages) if tp.topic == self.events_topic],
            list(self._tombstones))  # impressions change users only
        self._staged["changelog_records"] += records
        self._staged["changelog_bytes"] += size

    def _apply_in_order(self, admitted: Admitted, out: Output, now: float,
                        done: CommittedBatch) -> None:
        """Steps 3-4, in segments cut where a user is renewed (`admitted.cuts`): a user found
        expired after earlier messages of theirs in the batch starts anew only once those are
        applied to the old state, so each segment is applied and published, then the user
        renewed, as if the batch had ended just before the message that found them expired."""
        ops, events = admitted.ops, admitted.events
        o0 = b0 = 0
        for o, b, user, p in [*admitted.cuts, Cut(len(ops), len(events), None, 0)]:
            before, after = self.feedback.split(ops[o0:o])
            self.feedback.apply(before, done.feedback)
            if b > b0:
                self._publish(events[b0:b], out, now, done)
            self.feedback.apply(after, done.feedback)
            if user is not None:
                self.state.renew(user, p)
            o0, b0 = o, b

    def _publish(self, batch: list[tuple[Event, Message]], out: Output, now: float,
                 done: CommittedBatch) -> None:
        """Steps 3-4 for the batch's events: learn, rank, draw and produce the lists."""
        read_at = {id(ev): msg for ev, msg in batch}
        guarded = self.recommender.guard_stats.totals()
        lists, decided = len(done.published), len(done.feedback.decisions)  # earlier parts
        results = self.recommender.process_batch(
            [ev for ev, _ in batch], [msg.partition() for _, msg in batch],
            k=self.feedback.depth)
        for ev, candidates in results:
            msg = read_at[id(ev)]
            d = self.feedback.decide(ev, candidates, done.feedback)
            recs = Recs(candidates.user_id, d.items, d.scores, candidates.source,
                        candidates.model_version)
            cause = Cause(event_id=ev.event_id, event_time=ev.event_time, topic=msg.topic(),
                          partition=msg.partition(), offset=msg.offset())
            basis = self.recommender.basis(recs.user_id)
            out.produce(self.recs_topic, encode(Feedback.message(ev, cause, recs, d, now, basis)),
                        ev.user_id)
            done.published.append(recs)
        done.events += [ev for ev, _ in batch]  # `handle` may publish a batch in parts
        counted = self.recommender.guard_stats.totals()
        done.guard = {k: done.guard.get(k, 0) + counted[k] - guarded[k] for k in counted}
        done.user_vector_norm = self.recommender.batch_vector_norm  # of the last part
        done.foldin_residual = self.recommender.batch_residual
        done.timestamps += [msg.timestamp()[1] / 1000 for _, msg in batch]
        self._staged["events"] += len(batch)
        self._staged["recommendations"] += len(done.published) - lists
        self._staged["demoted"] += sum(d.demoted > 0 for d in done.feedback.decisions[decided:])

    def promote(self) -> None:
        """The batch committed: its state is the state; count what it did."""
        self.state.commit()
        self.undo.clear()
        self._tombstones.clear()
        self.suspects.commit()
        self.counts.update(self._staged)
        M.STATE_USERS_RESET.inc(self._staged["users_reset"])
        M.DUPLICATES.inc(self._staged["duplicates"])
        self.counts["dead_letters"] += sum(self._staged_dead.values())
        self.dead_letters.count(self._staged_dead)
        self._staged.clear()
        self._staged_dead.clear()
        if self.on_commit is not None:
            done, self._batch = self._batch, CommittedBatch()
            done.committed = self.clock()
            done.model_version = self.recommender.model_version
            done.users_in_state = self.state.users_in_state
            done.guard_users = self.recommender.guard_stats.automated_users()
            try:
                self.on_commit(done)
            except Exception:  # watching must not stop the work: the batch is committed
                log.exception("on_commit failed")

    def rollback(self) -> None:
        """The batch aborted: put back every touched user's state and the popularity."""
        _, partitions = self.undo.revert()
        self.state.abort()
        self.suspects.abort()
        log.warning("rolled back the state of %d partition(s) and their users", partitions)
        self._staged.clear()
        self._staged_dead.clear()
        self._batch = CommittedBatch()

    def between_batches(self) -> None:
        """Apply side inputs (catalog changes) and a pending model version: never in the
        middle of a batch."""
        started = time.time()
        for side in self.side_inputs:
            side.poll(0.0)
        with self._next_lock:
            prepared, self._next_model = self._next_model, None
        if prepared is not None:
            self._swaps += 1
            if self._crash is not None and self._crash.due("swap", self._swaps):
                self._crash.kill()  # the fault tests: killed with a new version on its way in
            t0 = time.perf_counter()
            self.recommender.swap_factors(prepared)
            log.info("serving model version %s (swapped in %.1f ms)", prepared.version,
                     (time.perf_counter() - t0) * 1000)
            if self.on_swap is not None:
                self.on_swap(Swap(prepared.version, started, time.time()))

    def on_partitions_assigned(self, partitions: list[TopicPartition]
                               ) -> list[TopicPartition]:
        """Restore the partitions' state, as of their committed offsets, before any of their
        events is read (this runs inside the consumer's poll); returns those still restoring,
        for the loop to pause until `resumable` names them."""
        mine = sorted(tp.partition for tp in partitions if tp.topic == self.events_topic)
        if not mine:
            return []
        waiting = set(self.state.assign(mine))
        self._installed([p for p in mine if p not in waiting])
        return [tp for tp in partitions if tp.topic == self.events_topic and
                tp.partition in waiting]

    def resumable(self) -> list[TopicPartition]:
        """Partitions restored since the last call (their state installed now)."""
        ready = self.state.ready()
        self._installed(ready)
        return [TopicPartition(self.events_topic, p) for p in ready]

    def _installed(self, partitions: list[int]) -> None:
        """Restored partitions forget what the catalog deleted meanwhile."""
        self._held.update(partitions)
        for item in self.deleted_items:
            self._forget(item, partitions)
        if self.inputless is not None:
            self.inputless.installed(partitions)

    def forget_item(self, item_id: str) -> None:
        """An item left the catalog (between batches): its state in every partition goes, and
        the next batch writes tombstones for its records."""
        self.deleted_items.add(item_id)
        self._forget(item_id, sorted(self._held))

    def _forget(self, item_id: str, partitions: list[int]) -> None:
        i = self.recommender.catalog.get(item_id)
        for p in self.recommender.partitions.forget(i, partitions) if i >= 0 else []:
            self._tombstones[(p, item_id)] = None

    def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
        """Forget the state of partitions that moved away (their new owner restores it)."""
        gone = sorted({tp.partition for tp in partitions if tp.topic == self.events_topic})
        self.state.revoke(gone)
        if self.inputless is not None:
            self.inputless.revoked(gone)
        self._held.difference_update(gone)
        self._tombstones = {k: None for k in self._tombstones if k[0] not in gone}
        for p in gone:
            self.recommender.drop_partition(p)

    @property
    def restores(self) -> list[changelog.RestoreReport]:
        """One report per assignment whose partitions were all restored."""
        return self.state.reports

    def quarantine(self, msg: Message, exc: BaseException) -> None:
        """`msg` raised whenever it was handled: when it is read again, handle it on its user's
        reset state, or, if it raised so already, reject it (`consumers.suspects`)."""
        self.suspects.isolated((msg.topic(), msg.partition(), msg.offset()), exc)

    # -- start, stop and hooks for other processes

    def start(self, timeout: float = 30.0) -> None:
        """Read the side inputs (the catalog) to their end before the first batch."""
        for side in self.side_inputs:
            if not side.catch_up(timeout):
                log.warning("%s not read to its end in %.0f s: going on", type(side).__name__,
                            timeout)

    def close(self) -> None:
        for side in self.side_inputs:
            side.close()
        self.state.close()
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
        prepared = self.recommender.prepare_factors(factors) if self.prepare_swaps else factors
        with self._next_lock:
            self._next_model = prepared

    def swap_snapshot(self, snapshot: Snapshot) -> None:
        """`swap_model` with a snapshot's factors (what a `SnapshotFollower` hands over)."""
        self.swap_model(snapshot.item_factors())

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
