"""Restores of newly assigned partitions, on a thread, while the worker's loop keeps polling.

A worker that blocked in its rebalance callback until a big restore finished would miss
`max.poll.interval.ms` and be thrown out of the group, and its partitions would move to the next
worker, which would hit the same wall. So the loop pauses a newly assigned partition and this
thread brings its store up to date (`consumers.state.restore`: from the store's checkpoint, no
time limit, progress logged and reported); the loop asks `ready()` between batches, installs the
partition's own records and resumes it. Other partitions go on meanwhile.

A partition is ready when its state stands at the group's committed offset for it (the meta
record's events offset; fetched once no transaction is pending): under exactly-once exactly
equal (the changelog's commit marker may land a moment after the offsets': it reads on), at
least the committed one under at-least-once. State ahead of the committed offsets, or state
where the group has none, is an error (`ChangelogError`), never a silent fresh start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from consumers.changelog import ChangelogError, meta_key
from consumers.state.local import LocalState
from consumers.state.restore import RestoreProgress, StoreRestorer

log = logging.getLogger(__name__)

WAIT_LOG_EVERY_S = 10.0


_UNKNOWN = object()


@dataclass
class _Job:
    partition: int
    started: float
    target: object = _UNKNOWN
    """The group's committed offset (None: none), once asked."""
    progress: list[RestoreProgress] = field(default_factory=list)
    logged: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class Restored:
    """A partition whose store stands at the committed offset."""

    partition: int
    offset: int | None
    """The events offset the state covers (None: no state yet)."""
    progress: list[RestoreProgress]
    seconds: float


class PartitionRestores:
    """Brings assigned partitions' stores up to their committed offsets, one at a time, on a
    thread of its own (`start`, then `ready` from the loop's thread between batches)."""

    def __init__(self, local: LocalState, restorer: StoreRestorer,
                 committed: Callable[[list[int]], dict[int, int | None]], *,
                 exact: bool = True, group: str = "") -> None:
        self.local = local
        self.restorer = restorer
        self.committed = committed
        self.exact = exact
        self.group = group
        self._todo: queue.Queue[int | None] = queue.Queue()
        self._done: queue.Queue[Restored] = queue.Queue()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._busy = threading.Lock()
        """Held by the thread while it works on a store."""
        self._jobs: dict[int, _Job] = {}
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.pending: set[int] = set()

    def start(self, partitions: list[int]) -> None:
        """Restore `partitions` (their stores are opened in the loop's thread, now)."""
        for p in partitions:
            with self._lock:
                self._cancelled.discard(p)
                self.pending.add(p)
            self.local.open(p, self.restorer.topic_id())
            self._todo.put(p)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="state-restore", daemon=True)
            self._thread.start()

    def cancel(self, partitions: list[int]) -> None:
        """Partitions revoked before their restore finished: stopped at the next chunk; returns
        once the thread has let go of their stores (the caller may close them then)."""
        with self._lock:
            self._cancelled.update(partitions)
            self.pending.difference_update(partitions)
            for p in partitions:
                job = self._jobs.get(p)
                if job is not None:
                    job.stop.set()
        with self._busy:  # the step in progress, if any, ends at its next chunk
            pass

    def ready(self) -> list[Restored]:
        """Partitions restored since the last call; re-raises what the thread raised."""
        if self.error is not None:
            raise self.error
        out = []
        while True:
            try:
                r = self._done.get_nowait()
            except queue.Empty:
                return out
            with self._lock:
                if r.partition in self._cancelled:
                    continue
                self.pending.discard(r.partition)
            out.append(r)

    def wait(self, timeout: float | None = None) -> list[Restored]:
        """Block until no restore is pending (tests and benchmarks); returns them all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[Restored] = []
        while True:
            out += self.ready()
            with self._lock:
                if not self.pending:
                    return out
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(self.pending)} not restored")
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for job in self._jobs.values():
                job.stop.set()
        self._todo.put(None)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    # -- the thread
    def _run(self) -> None:
        """Partitions in turn, each caught up and checked, until each stands at its offset
        (one waiting for a commit marker does not hold the others back)."""
        active = self._jobs
        try:
            while not self._stop.is_set():
                try:
                    p = self._todo.get(timeout=0.05 if active else None)
                    if p is None:
                        return
                    with self._lock:
                        active[p] = _Job(p, time.monotonic())
                    continue  # take every partition queued before working
                except queue.Empty:
                    pass
                for p in list(active):
                    with self._busy:
                        done = self._is_cancelled(p) or self._step(active[p])
                    if done:
                        with self._lock:
                            del active[p]
        except BaseException as exc:  # the loop re-raises it in `ready`
            log.exception("restore failed")
            self.error = exc

    def _is_cancelled(self, p: int) -> bool:
        with self._lock:
            return p in self._cancelled

    def _step(self, job: _Job) -> bool:
        """Catch partition `job.partition` up once; True when it stands at its offset."""
        p, store = job.partition, self.local.stores[job.partition]
        if job.target is _UNKNOWN:
            reason = self.restorer.check(store)
            if reason is not None:
                log.warning("partition %d: the local store is rebuilt from the changelog: %s",
                            p, reason)
            job.target = self.committed([p])[p]
        job.progress.append(self.restorer.catch_up(store, job.stop))
        if job.stop.is_set():
            return True
        offset = self._state_offset(p)
        if self._stands_at(p, offset, job.target):  # type: ignore[arg-type]
            self._done.put(Restored(p, offset, job.progress, time.monotonic() - job.started))
            return True
        if not self.restorer.open_transaction(p):
            # read to its end with no transaction open: the state will never get there, unless
            # the last one closed just now (read again once before saying so)
            job.progress.append(self.restorer.catch_up(store, job.stop))
            offset = self._state_offset(p)
            if not self._stands_at(p, offset, job.target):  # type: ignore[arg-type]
                raise ChangelogError(
                    f"{self.restorer.topic}: state of partition {p} does not reach the committed "
                    f"offset {job.target} (it stands at {offset}, and no transaction is open on "
                    "the changelog): the changelog lost records (re-created?)")
            self._done.put(Restored(p, offset, job.progress, time.monotonic() - job.started))
            return True
        if time.monotonic() - job.logged >= WAIT_LOG_EVERY_S:
            job.logged = time.monotonic()
            log.info("partition %d: state at events offset %s, the group's committed offset is "
                     "%s: waiting for the changelog's commit (a transaction of the previous "
                     "owner is still open)", p, offset, job.target)
        return False

    def _state_offset(self, p: int) -> int | None:
        raw = self.local.stores[p].get(meta_key(p))
        return None if raw is None else int(msgspec.json.decode(raw)["offset"])

    def _stands_at(self, p: int, offset: int | None, target: int | None) -> bool:
        topic = self.restorer.topic
        if target is None:
            if offset is not None and self.exact:
                raise ChangelogError(
                    f"{topic}[{p}] holds state up to events offset {offset} but the group "
                    f"{self.group!r} has no committed offset there (expired or reset?): reset "
                    "the group to that offset, or delete the changelog to start over")
            return True
        if offset is None or offset < target:
            return False
        if offset > target and self.exact:
            raise ChangelogError(f"{topic}[{p}] holds state up to events offset {offset}, "
                                 f"beyond the committed {target}: the group's offsets were "
                                 "moved back")
        if offset > target:
            log.info("%s[%d]: state at offset %d, committed %s: the events in between are read "
                     "again and skipped as duplicates", topic, p, offset, target)
        return True
