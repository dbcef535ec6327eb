"""What exactly-once costs, and how long a restore takes: `refold bench guarantee`.

Throughput: the same events (a seeded synthetic world, implicit ALS fitted on them) are preloaded
into a fresh events topic; the fold-in worker reads them all once per guarantee, alternately,
`repeat` times, each run in a consumer group of its own with its own output and changelog topics,
in this process; events/s from its first batch read to its last commit, and the time per batch
spent making it durable after `handle` (the medians of the runs are reported: on a shared
machine single runs vary by a third).

- exactly-once: one transaction per micro-batch (lists, dead letters, changelog, input offsets);
- at-least-once: the same outputs and changelog produced and flushed, then the offsets committed
  (no transaction markers, no offset round trip through the transaction coordinator).

Restore: the changelog of `users` users as the worker writes it (full histories of
`history_size` events, `2 * history_size` recent event ids each), with the group's committed
offsets to match; then a worker's `on_partitions_assigned` for every partition, timed: read to the
end (read_committed), decode, install in the recommender. That is the restore of a worker with
every user in memory (`state_store = "memory"`), which happens inside the assignment; a worker
with local stores restores on a thread into its stores, measured by `refold bench state`.

Every topic lives under a throwaway prefix and is deleted at the end.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition

from consumers import changelog
from consumers.assembly import WorkerOptions, assemble_worker
from consumers.model_source import fit_log
from models.foldin import ItemFactors
from models.history import STATE_VERSION
from producers.sdk import EventProducer
from producers.synth import SynthConfig, generate
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_consumer, make_producer, produce
from refold.core.topics import create_topics, delete_topics, topic_specs

GUARANTEES = ("exactly-once", "at-least-once")


def run(settings: Settings, events: int = 20_000, repeat: int = 3,
        users: int = 100_000) -> dict[str, Any]:
    """Throughput per guarantee, side by side, and the restore of `users` users' state."""
    base = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-g{int(time.time())}.")
    admin, made = make_admin(base), []
    try:
        out = {"throughput": _throughput(base, events, repeat, made) if events else None,
               "restore": _restore(base.replace(consumer_group=f"{base.topic_prefix}restore"),
                                   users, made) if users else None}
    finally:
        delete_topics(admin, sorted({t for s in made for t in _topics(s)}))
    return out


def _topics(s: Settings) -> list[str]:
    return [spec.name for spec in topic_specs(s)]


def _throughput(base: Settings, n: int, repeat: int, made: list[Settings]) -> dict[str, Any]:
    log, catalog, _ = generate(SynthConfig(n_events=n, seed=0))
    factors = fit_log(log, base)
    create_topics(make_admin(base), base)
    made.append(base)
    with EventProducer(base) as producer:
        for item in catalog:
            producer.send_item(item)
        producer.send_many(log.iter_events("bench"))
    runs: dict[str, list[dict[str, float]]] = {g: [] for g in GUARANTEES}
    for r in range(repeat):
        for guarantee in GUARANTEES:
            name = f"{guarantee}-{r}"
            s = base.replace(recommendations_topic=f"{name}.out",
                             changelog_topic=f"{name}.changelog",
                             consumer_group=f"{base.topic_prefix}{name}")
            create_topics(make_admin(s), s)
            made.append(s)
            runs[guarantee].append(_one_run(s, factors, guarantee, n))
    median = {g: {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
              for g, rs in runs.items()}
    eos, alo = median["exactly-once"]["events_per_s"], median["at-least-once"]["events_per_s"]
    return {"events": n, "partitions": base.events_partitions, "batch_size": base.batch_size,
            "repeat": repeat, "median": median, "runs": runs,
            "exactly_once_over_at_least_once": eos / alo}


def _one_run(s: Settings, factors: ItemFactors, guarantee: str, n: int) -> dict[str, float]:
    options = WorkerOptions.bare(guarantee=guarantee, max_messages=n, idle_exit=60.0)
    with assemble_worker(s, factors, options) as worker:
        stats = worker.run()
    if stats.messages != n:
        raise RuntimeError(f"{guarantee}: read {stats.messages} of {n} events")
    return {"events_per_s": n / stats.busy_seconds, "seconds": stats.busy_seconds,
            "batches": stats.batches, "ms_per_batch": 1000 * stats.busy_seconds / stats.batches,
            "commit_ms_per_batch": 1000 * stats.commit_seconds / stats.batches}


def _restore(s: Settings, users: int, made: list[Settings]) -> dict[str, Any]:
    """Write `users` users' state into a fresh changelog, then restore every partition."""
    create_topics(make_admin(s), s)
    made.append(s)
    parts = s.events_partitions
    producer = make_producer(s, {"linger.ms": 50, "batch.size": 1 << 20})
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for u in range(users):
        key = f"user-{u}"
        value = changelog.user_value(_history(rng, s.history_size), _ids(u, 2 * s.history_size))
        produce(producer, s.topic("changelog"), value, key.encode(), partition=u % parts)
    for p in range(parts):
        plain = {"events": 0, "t_ref": None, "dirty": [], "items": {}}
        for key, value in changelog.partition_records(p, plain, 0):
            produce(producer, s.topic("changelog"), value, key, partition=p)
    producer.flush(120)
    written = time.perf_counter() - t0
    group = make_consumer(s, s.consumer_group)  # the offsets the state stands at
    group.commit(offsets=[TopicPartition(s.topic("events"), p, 0) for p in range(parts)],
                 asynchronous=False)
    group.close()

    s = s.replace(state_store="memory")  # restored inside the assignment (module docstring)
    with assemble_worker(s, options=WorkerOptions.bare()) as assembled:
        worker = assembled.worker
        t0 = time.perf_counter()
        worker.on_partitions_assigned([TopicPartition(s.topic("events"), p)
                                       for p in range(parts)])
        total = time.perf_counter() - t0
    report = worker.restores[-1]
    if report.users != users:
        raise RuntimeError(f"restored {report.users} of {users} users")
    return {"users": users, "history_size": s.history_size, "partitions": parts,
            "records": report.records, "mb": report.bytes / 1e6, "write_s": written,
            "read_and_decode_s": report.seconds, "install_s": total - report.seconds,
            "total_s": total, "s_per_100k_users": total * 100_000 / users}


def _history(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """A full `UserHistory.to_state` of `n` events (one session every 8 events)."""
    start = int(rng.integers(1_000_000))
    items = rng.integers(0, 50_000, n)
    return {"v": STATE_VERSION, "max_events": n, "max_age": None, "max_excluded": 1000,
            "seq": start + n, "session_id": f"s{(start + n - 1) // 8}",
            "session_no": (n - 1) // 8, "n_sessions": (n - 1) // 8 + 1,
            "items": [f"i{i}" for i in items.tolist()],
            "weights": rng.choice([1.0, 3.0, 5.0, -2.0], n).astype(np.float32).tolist(),
            "times": (1.7e9 + np.sort(rng.uniform(0, 86_400 * 30, n))).tolist(),
            "seqs": list(range(start, start + n)), "sessions": [k // 8 for k in range(n)],
            "blocked": [], "consumed": [f"i{i}" for i in items[:3].tolist()],
            "first": 1.7e9}


def _ids(u: int, n: int) -> list[str]:
    return [f"bench-{u}-{k}" for k in range(n)]


def table(r: dict[str, Any]) -> str:
    lines = []
    t = r["throughput"]
    if t is not None:
        lines.append(f"{t['events']:,} events, {t['partitions']} partitions, batches of "
                     f"{t['batch_size']}, median of {t['repeat']}")
        for g, b in t["median"].items():
            lines.append(f"  {g:14} {b['events_per_s']:10,.0f} ev/s  "
                         f"{b['ms_per_batch']:6.1f} ms/batch, of which "
                         f"{b['commit_ms_per_batch']:5.1f} ms to commit")
        lines.append(f"  exactly-once / at-least-once: {t['exactly_once_over_at_least_once']:.2f}")
    s = r["restore"]
    if s is not None:
        lines.append(f"restore of {s['users']:,} users ({s['history_size']} events each, "
                     f"{s['records']:,} records, {s['mb']:.0f} MB, {s['partitions']} partitions): "
                     f"{s['total_s']:.1f} s = read+decode {s['read_and_decode_s']:.1f} s + "
                     f"install {s['install_s']:.1f} s; {s['s_per_100k_users']:.1f} s per 100K "
                     "users")
    return "\n".join(lines)
