"""End to end through the real broker: refold's worker next to a pass-through consumer.

Both consumers run `consumers.loop.TransactionalLoop` exactly once (one transaction per micro-batch,
the same consumer and transactional-producer settings, the same batch size), each in a process of
its own so that neither shares an interpreter with the clients that measure it:

- refold: the fold-in worker as `refold consume --model` builds it (catalog reader, dead letters,
  fold-in, top-K, one list per affected user, state changelog, monitor, snapshot follower), serving
  ALS fitted on the dataset at start;
- pass-through: decode each event and re-produce it, keyed by user, to a topic configured like the
  recommendations topic. No model: the Kafka-bound ceiling (`refold.bench.pipeline_consumers`).

Throughput: the events are preloaded into a fresh topic; each consumer reads all of them in a group
of its own, timed from its first batch read to its last commit (the best of `repeat` runs). That
time is split, per 1,000 events, into handling, committing, promoting and the rest of the loop,
next to the process's CPU time (`pipeline_report.split`: where the worker's time goes).

Latency: events are sent at a fixed rate (`EventProducer`, as a service sends them) into a fresh
topic while the consumer runs; a read_committed reader in this process records, per event, the time
from just before its send to the arrival of the first output that covers it. An output covers the
event it names (a Recommendation's `cause`, the pass-through's copy) and the same user's earlier
events not yet covered: the worker publishes one list per user and batch, for the user's last event.

What may stop a consumer for long enough to decide the p99 is reported from the same latency run:
the cyclic garbage collector's full (generation 2) collections and their longest pause, and the
slowest batch's handling and commit (begin .. handled; offsets + commit: the broker's part).

Every topic lives under a throwaway prefix and is deleted at the end, with the consumer groups.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consumers.model_source import fit_log, foldin_config
from consumers.tail import TopicTail
from models.snapshot import Snapshot
from producers.replay import replay
from producers.sdk import EventProducer
from refold.bench.pipeline_consumers import KINDS, BenchError, ConsumerProcess
from refold.bench.pipeline_report import result
from refold.bench.workload import event_log
from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.schemas import Event, Item, decode_event, decode_recommendation
from refold.core.topics import create_topics, delete_topics

WARMUP_EVENTS = 100
"""Sent and covered before the latency stream starts: the consumer has joined and run a batch."""
IDLE_EXIT_S = 60.0
"""A consumer with nothing to read for this long gives up (a safety net; runs end otherwise)."""


@dataclass(frozen=True, eq=False)
class Workload:
    """What is sent (events in order, the catalog) and the model refold serves (a snapshot)."""

    name: str
    events: list[Event]
    catalog: list[Item]
    model: bytes
    fold_in: dict[str, Any] = field(default_factory=dict)
    """`FoldInConfig` settings changed from `foldin_config(settings)`, in the fit and the worker."""


def load_workload(settings: Settings, dataset: str, path: str | Path | None = None,
                  events: int | None = None, seed: int = 0,
                  fold_in: dict[str, Any] | None = None) -> Workload:
    """ml-100k from `path` (its first `events`) or the synthetic world of `events` events, with
    implicit ALS fitted on those events as `refold consume --fit-from` fits it."""
    log, catalog = event_log(dataset, path, events, seed)
    fold_in = dict(fold_in or {})
    f = fit_log(log, settings, foldin_config(settings, **fold_in))
    snap = Snapshot.build(f.version, time.time(), f.item_ids, f.Y, XtX=f.XtX)
    return Workload(dataset, list(log.iter_events(dataset)), list(catalog),
                    bytes(snap.to_bytes()), fold_in)


class Coverage:
    """Which events an output has covered, and how long after their send (module docstring)."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[tuple[str, float | None]]] = {}
        self._user_of: dict[str, str] = {}
        self._cond = threading.Condition()
        self.expected = self.covered = self.outputs = self.unmatched = 0
        self.latencies: list[float] = []

    def expect(self, user_id: str, event_id: str, sent: float | None = None) -> None:
        """An event about to be sent (`sent`: its perf_counter time, None: no latency kept)."""
        with self._cond:
            self._pending.setdefault(user_id, deque()).append((event_id, sent))
            self._user_of[event_id] = user_id
            self.expected += 1

    def saw(self, user_id: str, cause: str, at: float) -> None:
        """An output for `user_id` naming event `cause` arrived at `at`."""
        with self._cond:
            self.outputs += 1
            if self._user_of.get(cause) != user_id:  # not sent, already covered, or wrong user
                self.unmatched += 1
                return
            queue = self._pending[user_id]
            while True:
                event_id, sent = queue.popleft()
                del self._user_of[event_id]
                self.covered += 1
                if sent is not None:
                    self.latencies.append(at - sent)
                if event_id == cause:
                    break
            self._cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        """Whether `n` events are covered within `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.covered >= n, timeout)


def _cause_of(kind: str) -> Callable[[bytes], tuple[str, str]]:
    """(user, event id) named by an output of `kind`."""
    if kind.startswith("refold"):
        def recommendation(value: bytes) -> tuple[str, str]:
            rec = decode_recommendation(value)
            return rec.user_id, rec.cause.event_id if rec.cause else ""
        return recommendation

    def copy(value: bytes) -> tuple[str, str]:
        ev = decode_event(value)
        return ev.user_id, ev.event_id
    return copy


class OutputReader(threading.Thread):
    """Read a consumer's output topic (read_committed, from the start) into a `Coverage`."""

    def __init__(self, settings: Settings, kind: str, coverage: Coverage) -> None:
        super().__init__(name=f"read-{kind}", daemon=True)
        self.tail = TopicTail(settings, settings.topic("recommendations"))
        self.cause_of = _cause_of(kind)
        self.coverage = coverage
        self._done = threading.Event()

    def handle(self, messages: list) -> None:
        at = time.perf_counter()
        for msg in messages:
            self.coverage.saw(*self.cause_of(msg.value()), at)

    def run(self) -> None:
        while not self._done.is_set():
            self.handle(self.tail.poll(0.05))  # as each message arrives (`tail.arrived`)

    def stop(self) -> None:
        self._done.set()
        self.join(10)
        self.tail.close()


def _run_settings(base: Settings, run: str, own_events: bool = False) -> Settings:
    """Topics and group of one run: its own output, changelog and group (and events if asked)."""
    return base.replace(
        recommendations_topic=f"{run}.out", changelog_topic=f"{run}.changelog",
        consumer_group=f"{base.topic_prefix}{run}",
        events_topic=f"{run}.events" if own_events else base.events_topic)


def _throughput(kind: str, settings: Settings, workload: Workload, model: Path,
                profile: Path | None) -> dict:
    """One consumer reads the preloaded events; then its output is read back and checked."""
    events = workload.events
    consumer = ConsumerProcess(kind, settings, model, fold_in=workload.fold_in,
                               max_messages=len(events), idle_exit=IDLE_EXIT_S, profile=profile)
    result = consumer.result(timeout=max(300.0, len(events) / 100))
    coverage = Coverage()
    for ev in events:
        coverage.expect(ev.user_id, ev.event_id)
    reader = OutputReader(settings, kind, coverage)
    try:
        if not reader.tail.catch_up(reader.handle, timeout=120):
            raise BenchError(f"{kind}: its output was not read to its end in 120 s")
    finally:
        reader.tail.close()
    return {**result, "events_per_s": result["messages"] / result["seconds"],
            **_checks(coverage)}


def _latency(kind: str, settings: Settings, workload: Workload, model: Path, rate: float,
             n: int) -> dict:
    """Send `n` events at `rate` while the consumer runs; per event, send → covering output."""
    warmup, stream = workload.events[:WARMUP_EVENTS], workload.events[WARMUP_EVENTS:][:n]
    coverage = Coverage()
    reader = OutputReader(settings, kind, coverage)
    reader.start()
    consumer = ConsumerProcess(kind, settings, model, fold_in=workload.fold_in,
                               idle_exit=IDLE_EXIT_S)
    try:
        with EventProducer(settings) as producer:
            for ev in warmup:
                coverage.expect(ev.user_id, ev.event_id)
                producer.send(ev)
            producer.flush()
            if not coverage.wait(len(warmup), timeout=120):
                raise BenchError(f"{kind}: warm-up events not covered in 120 s")
            seconds = _send_paced(producer, stream, rate, coverage)
        coverage.wait(len(warmup) + len(stream), timeout=60)
    finally:
        consumer.stop()  # SIGTERM: it commits its batch and leaves
        reader.stop()
    result = consumer.result(timeout=60)
    ms = np.asarray(coverage.latencies) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (np.nan,) * 3
    return {**result, "sent_events_per_s": len(stream) / seconds, "latency_events": len(ms),
            "latency_p50_ms": p50, "latency_p95_ms": p95, "latency_p99_ms": p99,
            "latency_max_ms": ms.max() if len(ms) else np.nan, **_checks(coverage)}


def _send_paced(producer: EventProducer, events: Sequence[Event], rate: float,
                coverage: Coverage) -> float:
    """Send event i at start + i/rate (late sends go at once); returns the seconds it took."""
    start_at = time.perf_counter()
    for i, ev in enumerate(events):
        delay = start_at + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        coverage.expect(ev.user_id, ev.event_id, time.perf_counter())
        producer.send(ev)
    return max(time.perf_counter() - start_at, 1e-9)


def _checks(c: Coverage) -> dict:
    return {"expected": c.expected, "covered": c.covered, "outputs_read": c.outputs,
            "unmatched_outputs": c.unmatched}


def _clean_up(admin: AdminClient, prefix: str, groups: list[str]) -> None:
    """Delete every topic under `prefix`, and the consumer groups."""
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    if names:
        delete_topics(admin, names)
    for fut in (admin.delete_consumer_groups(groups).values() if groups else ()):
        with suppress(KafkaException):  # a group that never committed does not exist
            fut.result(30)


def run(settings: Settings, workload: Workload, *, rate: float = 1000.0,
        latency_events: int = 10_000, repeat: int = 3, profile_dir: Path | None = None) -> dict:
    """Throughput and latency at `rate` of refold and the pass-through, `repeat` times each;
    the best run of each is reported (the highest events/s; the lowest p99)."""
    base = settings.replace(
        topic_prefix=f"{settings.topic_prefix}bench-pipeline-{time.time_ns() // 1000}.")
    admin, groups = make_admin(base), []
    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    live: dict[str, list[dict]] = {k: [] for k in KINDS}

    def fresh(run: str, own_events: bool = False) -> Settings:
        s = _run_settings(base, run, own_events)
        create_topics(admin, s)
        groups.append(s.consumer_group)
        return s

    with TemporaryDirectory() as tmp:
        base = base.replace(state_dir=str(Path(tmp) / "state"))  # the workers' local stores
        model = Path(tmp) / "model.snapshot"
        model.write_bytes(workload.model)
        try:
            create_topics(admin, base)
            with EventProducer(base) as producer:
                replay(workload.events, producer, catalog=workload.catalog, progress=False)
            for r in range(1, repeat + 1):
                for kind in KINDS:
                    prof = profile_dir / f"{kind}-{r}.prof" if profile_dir else None
                    runs[kind].append(_throughput(kind, fresh(f"{kind}-{r}"), workload, model,
                                                  prof))
                for kind in KINDS:
                    live[kind].append(_latency(kind, fresh(f"{kind}-live-{r}", True), workload,
                                               model, rate, latency_events))
        finally:
            _clean_up(admin, base.topic_prefix, groups)
    return result(settings, workload, runs, live, rate, repeat)
