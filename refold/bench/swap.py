"""What a model swap costs the events in flight, through the real broker.

A worker built as `refold consume` builds it (monitored, following the snapshots topic) runs in a
process of its own on throwaway topics and starts on a random `items` × `factors` snapshot (v1,
loaded before its first batch); users are served collaboratively from their first event on
(`full_events=1`), the batched hot path. Events of `users` users on the model's items are sent at
a steady `rate`; a read_committed reader here records, per event, the time from just before its
send to the arrival of the first list that covers it (the list it caused, or a later list of its
user).

The run is `swaps` cycles of `interval` quiet seconds followed by the publication of a new version
(v2, v3, ...), which the worker reads, verifies and lays out on its follower thread, then swaps in
between two batches. Events are classed as

- *no swap*: sent at least `SETTLE_S` after the previous swap and answered before the next
  publication began;
- *during a swap*: sent before a swap ended and served by the version it brought (they waited for
  it: the pause between batches, plus whatever the publication and the follower cost them);
- *swap window*: sent between a publication's start and `SETTLE_S` after its swap.

The catalog is scanned exactly (`ann_min_items` above it): the swap measured is the model's own.
`ann=True` builds each version's candidate index too (`models.ann`, on the follower thread; with
`inline`, between batches), so a version is served only once its index is built.

The worker reports each swap's pause of its processing thread. `inline=True` builds the layout
between batches instead (as before `OnlineRecommender.prepare_factors`), for comparison. The
in-process figures time `swap_factors` alone on the same model: inline, and after preparation.

Measured on 2 shared cores (broker, this process and the worker on the same host), 200K x 64,
100 events/s, 10 swaps each, load average 2.5-2.9: the pause is p50 91 / p99 328 ms inline
against 14 / 23 ms prepared (what is left is freeing the old version); the events that waited on
a swap see p99 749 ms inline, 371 ms prepared, against 240-526 ms without a swap (p50 63-81
ms). The publication and the follower's work (read, verify, lay out: ~1.2-1.3 s from the
publication to the swap) share the cores and the GIL with the processing thread in both modes:
events sent in that window see p99 of 550-730 ms.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import numpy as np

from consumers.snapshot_publisher import SnapshotPublisher
from consumers.tail import TopicTail
from models.foldin import ItemFactors
from models.snapshot import Snapshot
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.schemas import Event, decode_recommendation
from refold.core.topics import create_topics, delete_topics, topic_specs

WARMUP_EVENTS = 200
SETTLE_S = 1.0
"""After a swap, the worker's queue drains and the follower's garbage goes: not a quiet time."""
SERVED_WITHIN_S = 60.0
"""How long a published version may take to be served (ten times that with `ann`)."""


def index_setting(items: int, ann: bool = False) -> dict[str, int]:
    """Fold-in settings that switch a catalog of `items` items' candidate index on or off,
    whatever its size (`ann_min_items`)."""
    return {"ann_min_items": 0 if ann else items + 1}


def random_snapshot(version: int, items: int, factors: int) -> Snapshot:
    rng = np.random.default_rng(version)
    Y = rng.standard_normal((items, factors), dtype=np.float32) / np.sqrt(factors)
    return Snapshot.build(version, time.time(), [f"item-{i}" for i in range(items)], Y)


# -- the worker's process


def _worker(settings: Settings, inline: bool, fold_in: dict[str, int], stop: Any,
            conn: Any) -> None:
    """`refold consume` without the CLI: a monitored worker following snapshots; reports each
    swap as (version, start, end) in Unix seconds."""
    from consumers.assembly import WorkerOptions, assemble_worker

    logging.basicConfig(level=logging.WARNING)
    options = WorkerOptions(fold_in={"full_events": 1, **fold_in}, serve_metrics=False,
                            refit_on_drift=False,
                            snapshot_wait=60, prepare_swaps=not inline)
    swaps: list[tuple[int, float, float]] = []
    with assemble_worker(settings, options=options) as worker:
        worker.worker.on_swap = lambda s: swaps.append((s.version, s.started, s.ended))
        threading.Thread(target=lambda: (stop.wait(), worker.stop()), daemon=True).start()
        stats = worker.run()
    conn.send({"swaps": swaps, "events": worker.worker.counts["events"],
               "batches": stats.batches})


# -- this process: send, read, publish


class Coverage:
    """Per event: send time, arrival of the list covering it, and that list's model version."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.done: dict[str, tuple[float, int | None]] = {}
        self.pending: dict[str, list[str]] = defaultdict(list)
        self.lock = threading.Lock()

    def expect(self, user: str, event_id: str) -> None:
        with self.lock:
            self.sent[event_id] = time.time()
            self.pending[user].append(event_id)

    def saw(self, user: str, cause: str, version: int | None, at: float) -> None:
        with self.lock:
            waiting = self.pending.get(user, [])
            if cause in waiting:
                n = waiting.index(cause) + 1
                for event_id in waiting[:n]:
                    self.done[event_id] = (at, version)
                del waiting[:n]

    def wait(self, event_ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(e in self.done for e in event_ids):
                    return True
            time.sleep(0.05)
        return False


def _read(settings: Settings, coverage: Coverage, stop: threading.Event) -> None:
    tail = TopicTail(settings, settings.topic("recommendations"))
    try:
        while not stop.is_set():
            for msg in tail.poll(0.1):
                at = time.time()
                rec = decode_recommendation(msg.value())
                coverage.saw(rec.user_id, rec.cause.event_id, rec.model_version, at)
    finally:
        tail.close()


class Sender:
    """Events at a steady rate, each a random user and a random model item."""

    def __init__(self, settings: Settings, coverage: Coverage, users: int, items: int) -> None:
        self.producer = EventProducer(settings)
        self.coverage = coverage
        self.users, self.items = users, items
        self.rng = np.random.default_rng(0)
        self.n = 0

    def send(self, n: int, rate: float, until: threading.Event | None = None) -> list[str]:
        ids, t0 = [], time.monotonic()
        for j in range(n):
            if until is not None and until.is_set():
                break
            time.sleep(max(0.0, t0 + j / rate - time.monotonic()))
            user = f"u{int(self.rng.integers(self.users))}"
            event = Event(event_id=f"e{self.n}", user_id=user,
                          item_id=f"item-{int(self.rng.integers(self.items))}",
                          event_type="click", event_time=time.time())
            self.coverage.expect(user, event.event_id)
            self.producer.send(event)
            self.producer.producer.poll(0)
            ids.append(event.event_id)
            self.n += 1
        self.producer.producer.flush(10)
        return ids


def run(settings: Settings, *, items: int = 200_000, factors: int = 64, users: int = 2000,
        rate: float = 100.0, batch_size: int = 100, swaps: int = 6, interval: float = 6.0,
        inline: bool = False, ann: bool = False) -> dict:
    """The figures of `refold bench swap` (see the module docstring)."""
    run_id = uuid.uuid4().hex[:8]
    settings = settings.replace(topic_prefix=f"bench-{run_id}.", events_partitions=2,
                                consumer_group=f"bench-{run_id}-foldin", batch_size=batch_size,
                                factors=factors)
    admin = make_admin(settings)
    create_topics(admin, settings)
    ctx = mp.get_context("spawn")
    stop_worker, (ours, theirs) = ctx.Event(), ctx.Pipe()
    coverage, stop_reading, done_sending = Coverage(), threading.Event(), threading.Event()
    publications: list[tuple[int, float, float]] = []
    proc = None
    try:
        with SnapshotPublisher(settings) as publisher:
            publisher.publish(random_snapshot(1, items, factors))
            proc = ctx.Process(target=_worker, args=(settings, inline, index_setting(items, ann),
                                                     stop_worker, theirs))
            proc.start()
            reader = threading.Thread(target=_read, args=(settings, coverage, stop_reading))
            reader.start()
            sender = Sender(settings, coverage, users, items)
            wait = SERVED_WITHIN_S * (10 if ann else 1)
            if not coverage.wait(sender.send(WARMUP_EVENTS, rate), timeout=3 * wait):
                raise RuntimeError("the worker did not answer the warm-up events")
            measured_from = time.time()
            total = int(rate * (swaps * (interval + 4) + 60))
            sending = threading.Thread(target=sender.send, args=(total, rate, done_sending))
            sending.start()
            for v in range(2, swaps + 2):
                time.sleep(interval)
                snap = random_snapshot(v, items, factors)
                t0 = time.time()
                publisher.publish(snap)
                publications.append((v, t0, time.time()))
                del snap
                if not _wait_served(coverage, v, timeout=wait):
                    raise RuntimeError(f"the worker did not serve v{v}")
            time.sleep(interval)
            done_sending.set()
            sending.join()
            coverage.wait(list(coverage.sent), timeout=30)
        stop_worker.set()
        report = ours.recv() if ours.poll(60) else {"swaps": []}
        proc.join(30)
    finally:
        stop_reading.set()
        if proc is not None and proc.is_alive():
            proc.kill()
        delete_topics(admin, [s.name for s in topic_specs(settings)])
    return _result(coverage, publications, report, measured_from, items=items, factors=factors,
                   users=users, rate=rate, batch_size=batch_size, ann=ann, mode=(
                       "inline" if inline else "prepared"))


def _wait_served(coverage: Coverage, version: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with coverage.lock:
            if any(v == version for _, v in coverage.done.values()):
                return True
        time.sleep(0.05)
    return False


def _result(c: Coverage, publications: list[tuple[int, float, float]], report: dict,
            measured_from: float, **params: Any) -> dict:
    swap_at = {v: (t0, t1) for v, t0, t1 in report["swaps"]}
    pauses = [(t1 - t0) * 1000 for v, (t0, t1) in swap_at.items() if v > 1]
    cycles = []  # (quiet from, publication start, swap end, version)
    start = measured_from
    for v, p0, _ in publications:
        end = swap_at.get(v, (p0, p0))[1]
        cycles.append((start, p0, end, v))
        start = end + SETTLE_S
    quiet, during, window = [], [], []
    for event_id, (at, version) in c.done.items():
        sent = c.sent[event_id]
        ms = (at - sent) * 1000
        for q0, p0, end, v in cycles:
            if q0 <= sent and at < p0:
                quiet.append(ms)
            if sent <= end and version == v and sent >= q0:
                during.append(ms)
            if p0 <= sent <= end + SETTLE_S:
                window.append(ms)

    def pct(xs: list[float], q: float) -> float:
        return float(np.percentile(xs, q)) if xs else float("nan")

    return {
        **params, "swaps": len(pauses), "events": len(c.done),
        "swap_pause_p50_ms": pct(pauses, 50), "swap_pause_p99_ms": pct(pauses, 99),
        "swap_pause_max_ms": max(pauses, default=float("nan")),
        "latency_p50_ms_no_swap": pct(quiet, 50), "latency_p99_ms_no_swap": pct(quiet, 99),
        "latency_p50_ms_during_swap": pct(during, 50),
        "latency_p99_ms_during_swap": pct(during, 99),
        "latency_max_ms_during_swap": max(during, default=float("nan")),
        "latency_p99_ms_swap_window": pct(window, 99),
        "events_no_swap": len(quiet), "events_during_swap": len(during),
        "events_swap_window": len(window),
        "publish_seconds": float(np.mean([t1 - t0 for _, t0, t1 in publications])),
        "publish_to_swap_seconds": float(np.mean([swap_at[v][1] - p0 for v, p0, _ in
                                                  publications if v in swap_at])),
        "swap_factors_ms": swap_costs(params["items"], params["factors"], params["ann"]),
    }


def swap_timings(first: ItemFactors, second: ItemFactors, repeats: int, ann: bool = False,
                 inline: bool = True) -> dict[str, list[float]]:
    """In this process, ms of each of `repeats` swaps back and forth between two versions of a
    catalog (served from `first`): `swap_factors` with the layout built inline (skipped
    without `inline`), the layout alone (`prepare_factors`, the follower thread's share) and
    the swap of the prepared layout (the processing thread's pause)."""
    from models.recommender import FoldInConfig, OnlineRecommender

    pair, serving = (first, second), 0  # each swap serves the version not served
    rec = OnlineRecommender(FoldInConfig(**index_setting(len(first), ann)), factors=first)
    out: dict[str, list[float]] = {"inline": [], "prepare": [], "prepared": []}
    for _ in range(repeats):
        if inline:
            serving = 1 - serving
            t0 = time.perf_counter()
            rec.swap_factors(pair[serving])
            out["inline"].append((time.perf_counter() - t0) * 1000)
        serving = 1 - serving
        t1 = time.perf_counter()
        ready = rec.prepare_factors(pair[serving])
        t2 = time.perf_counter()
        rec.swap_factors(ready)
        out["prepared"].append((time.perf_counter() - t2) * 1000)
        out["prepare"].append((t2 - t1) * 1000)
    return out


def swap_costs(items: int, factors: int, ann: bool = False, repeats: int = 5
               ) -> dict[str, float]:
    """`swap_timings` on random snapshots, the median ms of each."""
    first, second = (random_snapshot(v, items, factors).item_factors() for v in (1, 2))
    return {name: float(np.median(ms)) for name, ms in
            swap_timings(first, second, repeats, ann).items()}


def table(r: dict) -> str:
    s, index = r["swap_factors_ms"], ", with the index" if r["ann"] else ""
    return "\n".join([
        f"{r['items']:,} items x {r['factors']} factors, {r['rate']:g} events/s, batches of "
        f"<= {r['batch_size']}, {r['swaps']} swaps ({r['mode']}{index}), {r['events']:,} events",
        f"swap pause of the processing thread   p50 {r['swap_pause_p50_ms']:7.2f} ms  "
        f"p99 {r['swap_pause_p99_ms']:7.2f} ms",
        f"event latency, no swap                p50 {r['latency_p50_ms_no_swap']:7.1f} ms  "
        f"p99 {r['latency_p99_ms_no_swap']:7.1f} ms  ({r['events_no_swap']:,} events)",
        f"event latency, during a swap          p50 {r['latency_p50_ms_during_swap']:7.1f} ms  "
        f"p99 {r['latency_p99_ms_during_swap']:7.1f} ms  ({r['events_during_swap']:,} events)",
        f"event latency, swap window            p99 {r['latency_p99_ms_swap_window']:7.1f} ms  "
        f"({r['events_swap_window']:,} events: publish {r['publish_seconds']:.2f} s, "
        f"publish to swap {r['publish_to_swap_seconds']:.2f} s)",
        f"swap_factors here: inline {s['inline']:.1f} ms; prepared {s['prepared']:.2f} ms after "
        f"{s['prepare']:.1f} ms of layout on another thread",
    ])
