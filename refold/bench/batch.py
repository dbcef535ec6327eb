"""The CPU a worker's batch costs, without the broker: `FoldInWorker.handle` + `promote` on
ml-100k (every user in memory, the default exploration policy, a monitor fed each batch), next
to the same worker with its users in local stores (`state_store = "rocksdb"`, a fresh store per
partition in a temporary directory, nothing to restore), the same worker with exploration
`none`, and the per-message work of a pass-through consumer (decode the event, encode it
again), on the same messages.

Through Kafka the worker runs at a fraction of a pass-through consumer's events/s; this is the
part of the gap that is the worker's own CPU, measured with `time.process_time` so that other
processes on the machine do not count. The modes alternate `rounds` times (noise cancels in
the ratios); each round starts from a fresh worker. Native thread pools are held to one thread
(the figures are per core). `profile` writes cProfile stats of one more, uncounted, run of the
worker to that file. `refold bench batch --json` prints
`worker_events_per_cpu_s`, `passthrough_events_per_cpu_s`, `ratio_to_passthrough`,
`worker_us_per_event`, `exploration_us_per_event`, `stores_us_per_event` and
`stores_to_memory` (the stores' events per CPU second over memory's; the stores' own threads
count in their CPU). `fold_in` (`--fold-in KEY=VALUE`) changes fold-in settings in the fit and in
every mode, so a feature's cost is this benchmark run with it switched off, next to a run
without the flag (`--fold-in session_weight=0`: the session co-visits).

`dataset` (`--dataset synth`) replays the synthetic world instead of ml-100k: its users
interleave as a live shop's do, so a batch publishes a list for about every 5th event where
ml-100k's runs of one user's ratings give one for every 36th, and the per-list work (ranking,
the exploration draw with its propensities) weighs more (`refold.bench.workload`).

`items` (`--items N`) grows the fitted model's catalog to N items with synthetic ones
(`refold.bench.factors.padded`): the same events, every per-batch cost that grows with the
catalog on top (scoring, popularity, records). From `ann_min_items` on, the worker ranks with
the approximate index as it would in production; the index is built once before the runs (its
build is not a batch's cost: a worker builds it off the processing thread) and every run
serves its own copy. The JSON says `items` (the catalog's size), `synthetic_items` and `ann`
(whether the worker ranked with the index).
"""

from __future__ import annotations

import copy
import cProfile
import logging
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from consumers.foldin_worker import FoldInWorker
from consumers.model_source import fit_log, foldin_config
from consumers.monitor import Monitor
from models.ann import MipsIndex
from models.foldin import ItemFactors
from models.recommender import OnlineRecommender
from refold.bench.factors import padded
from refold.bench.workload import event_log
from refold.core.config import Settings
from refold.core.errors import AppError
from refold.core.schemas import decode_event, encode

log = logging.getLogger(__name__)


class ShrinkingCatalog(AppError, ValueError):
    """`items` below the catalog the events were fitted on."""


MODES = ("worker", "worker, local stores", "worker, exploration none", "pass-through")


@dataclass(slots=True)
class Message:
    """What the worker reads of a consumed Kafka message."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes
    _ts: int

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts

    def error(self) -> None:
        return None

    def headers(self) -> None:
        return None


class Output:
    """The transaction's producer, counting what was produced (nothing is sent)."""

    def __init__(self, changelog: str) -> None:
        self.changelog = changelog
        self.records = 0
        self.changelog_bytes = 0

    def produce(self, topic: str, value: bytes | None, key: Any = None, headers: Any = None,
                partition: int | None = None, on_delivery: Any = None) -> None:
        self.records += 1
        if topic == self.changelog:
            self.changelog_bytes += len(value or b"")


def messages(settings: Settings, events: list) -> list[Message]:
    """The events as the worker's consumer would hand them over (partitioned by user)."""
    topic, parts = settings.topic("events"), settings.events_partitions
    offsets, out, now = [0] * parts, [], int(time.time() * 1000)
    for ev in events:
        p = zlib.crc32(ev.user_id.encode()) % parts
        out.append(Message(topic, p, offsets[p], ev.user_id.encode(), encode(ev), now))
        offsets[p] += 1
    return out


def _worker(settings: Settings, factors: ItemFactors, fold_in: dict[str, Any],
            index: MipsIndex | None = None) -> tuple[FoldInWorker, Output]:
    """A fresh worker serving `factors` (with a copy of `index`, built over them, if given)."""
    rec = OnlineRecommender(foldin_config(settings, **fold_in))
    rec.swap_factors(rec.served.prepare(factors, copy.deepcopy(index)))
    worker = FoldInWorker(settings, rec)
    if settings.state_store == "rocksdb":  # empty stores: nothing to restore from a changelog
        for p in range(settings.events_partitions):
            worker.state.local.open(p)  # type: ignore[union-attr]
    catalog = rec.catalog
    monitor = Monitor(settings.k, weights=rec.config.weights, categories=lambda i: (),
                      catalog_size=lambda: int(catalog.active.sum()),
                      summary_interval=settings.metrics_summary_seconds)
    worker.on_commit = monitor.on_commit
    return worker, Output(settings.topic("changelog"))


def _run_worker(settings: Settings, factors: ItemFactors, msgs: list[Message], batch: int,
                profile: str | None, fold_in: dict[str, Any] | None = None,
                index: MipsIndex | None = None) -> dict[str, Any]:
    worker, out = _worker(settings, factors, fold_in or {}, index)

    def run() -> None:
        for b in range(0, len(msgs), batch):
            worker.handle(msgs[b:b + batch], out)
            worker.promote()

    c0 = time.process_time()
    if profile:
        prof = cProfile.Profile()
        prof.runcall(run)
        prof.dump_stats(profile)
    else:
        run()
    cpu = time.process_time() - c0
    worker.state.close()
    return {"cpu_s": cpu, "changelog_bytes_per_event": out.changelog_bytes / len(msgs),
            "lists": worker.counts["recommendations"]}


def _run_passthrough(msgs: list[Message]) -> dict[str, Any]:
    c0 = time.process_time()
    for m in msgs:
        encode(decode_event(m.value()))
    return {"cpu_s": time.process_time() - c0}


def run(path: str | Path | None, events: int = 100_000, batch: int = 500, partitions: int = 6,
        rounds: int = 2, profile: str | None = None, progress: Any = None,
        profile_mode: str = "worker", fold_in: dict[str, Any] | None = None,
        items: int | None = None, dataset: str = "ml-100k") -> dict[str, Any]:
    """Events per CPU second of each mode (`MODES`), best of `rounds` alternated runs;
    `profile` profiles one more run of `profile_mode`; `fold_in`: fold-in settings changed for
    the fit and every mode (e.g. `{"session_weight": 0}`: what the co-visits cost), exploration
    aside in the mode without it; `items`: the catalog grown to that many items (see the
    module docstring); `dataset`: ml-100k from `path`, or the synthetic world (users
    interleave: `refold.bench.workload`)."""
    base = Settings(topic_prefix="bench-batch.", state_store="memory",
                    events_partitions=partitions)
    events_log, _ = event_log(dataset, path, events)
    fold_in = dict(fold_in or {})
    config = foldin_config(base, **fold_in)  # refuses bad settings
    factors = fit_log(events_log, base, config)
    fitted = len(factors)
    if items is not None and items < fitted:
        raise ShrinkingCatalog(f"--items {items} is below the {fitted} items the events were "
                               "fitted on")
    factors = padded(factors, items or 0)
    ann, index = config.ann_config(), None
    if ann is not None and ann.enabled_for(len(factors)):
        log.info("building the index over %d items (once; each run serves a copy)",
                 len(factors))
        index = MipsIndex(factors.Y, ann)
    changes = {m: {**fold_in, "exploration": "none"} if m == "worker, exploration none"
               else fold_in for m in MODES}
    msgs = messages(base, list(events_log.iter_events(dataset)))
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    with threadpool_limits(1), tempfile.TemporaryDirectory(prefix="refold-bench-batch-") as d:
        n = iter(range(1 << 30))

        def settings(mode: str) -> Settings:  # the stores: a fresh directory each run
            return {"worker": base, "worker, exploration none": base.replace(exploration="none"),
                    "worker, local stores": base.replace(state_store="rocksdb",
                                                         state_dir=f"{d}/{next(n)}")}[mode]

        for _ in range(rounds):
            for mode in MODES:
                runs[mode].append(_run_passthrough(msgs) if mode == "pass-through" else
                                  _run_worker(settings(mode), factors, msgs, batch, None,
                                              changes[mode], index))
                if progress is not None:
                    progress(1)
        if profile:
            _run_worker(settings(profile_mode), factors, msgs, batch, profile,
                        changes[profile_mode], index)
    out: dict[str, Any] = {"dataset": dataset, "events": len(msgs), "items": len(factors),
                           "synthetic_items": len(factors) - fitted, "ann": index is not None,
                           "batch": batch, "partitions": partitions,
                           "rounds": rounds, "loadavg": os.getloadavg(),
                           "exploration": fold_in.get("exploration", base.exploration),
                           "fold_in": fold_in, "modes": {}}
    for mode, rs in runs.items():
        best = min(rs, key=lambda x: x["cpu_s"])
        out["modes"][mode] = {
            "events_per_cpu_s": round(len(msgs) / best["cpu_s"]),
            "us_per_event": round(best["cpu_s"] / len(msgs) * 1e6, 1),
            "us_per_event_runs": [round(x["cpu_s"] / len(msgs) * 1e6, 1) for x in rs],
            **{k: round(v, 1) for k, v in best.items() if k not in ("cpu_s",)}}
    worker = out["modes"]["worker"]
    out["worker_events_per_cpu_s"] = worker["events_per_cpu_s"]
    out["worker_us_per_event"] = worker["us_per_event"]
    out["passthrough_events_per_cpu_s"] = out["modes"]["pass-through"]["events_per_cpu_s"]
    out["ratio_to_passthrough"] = round(
        worker["events_per_cpu_s"] / out["passthrough_events_per_cpu_s"], 4)
    out["exploration_us_per_event"] = round(
        worker["us_per_event"] - out["modes"]["worker, exploration none"]["us_per_event"], 1)
    stores = out["modes"]["worker, local stores"]
    out["stores_us_per_event"] = stores["us_per_event"]
    out["stores_to_memory"] = round(stores["events_per_cpu_s"] / worker["events_per_cpu_s"], 4)
    return out


def table(result: dict) -> str:
    catalog = ""
    if result.get("synthetic_items"):
        catalog = (f", a catalog of {result['items']:,} items ({result['synthetic_items']:,} "
                   f"synthetic; {'ANN' if result['ann'] else 'exact'} ranking)")
    lines = [f"{result['events']:,} {result.get('dataset', 'ml-100k')} events in batches of "
             f"{result['batch']} over {result['partitions']} partitions{catalog}, best of "
             f"{result['rounds']} alternated rounds (load {result['loadavg'][0]:.1f})"
             + "".join(f"; {k}={v}" for k, v in result.get("fold_in", {}).items()),
             "| mode | events per CPU second | µs per event (each round) | lists |",
             "|---|---|---|---|"]
    for mode, r in result["modes"].items():
        runs = ", ".join(f"{x:,.1f}" for x in r["us_per_event_runs"])
        lines.append(f"| {mode} | {r['events_per_cpu_s']:,} | {r['us_per_event']:,.1f} "
                     f"({runs}) | {r.get('lists', '')} |")
    lines.append(f"worker / pass-through: {result['ratio_to_passthrough']:.4f}×; exploration "
                 f"({result['exploration']}) {result['exploration_us_per_event']} µs per event; "
                 f"local stores / memory: {result['stores_to_memory']:.4f}×")
    return "\n".join(lines)
