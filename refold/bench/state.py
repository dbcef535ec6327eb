"""A worker's state at scale: restart and restore times, and memory, by users held.

`refold bench state --users N`: N users' changelog records (histories of `events_per_user`
events, an event id per event, times spread over 30 days) in a fresh changelog of
`events_partitions` partitions, then, each in a fresh process (a restart is a new process, and
resident memory is only comparable between fresh processes):

1. new disk: empty local stores restore every partition from the changelog
   (`consumers.state.restore`), users' index entries derived, then each partition's own records
   loaded: `restore_seconds_new_disk`;
2. `tail` more records are appended (users who acted since), then same disk: the stores are
   reopened, checked against the changelog, the tail read, the partitions' records loaded:
   `restart_seconds_same_disk`. The same process then serves `serve_events` events of random
   users through the bounded cache (`cache_users`): each user read from its store on a miss,
   one event learned, written back at each commit of 500 (no Kafka here: the cost measured is
   the state's), and reports its resident memory: `rss_mb`;
3. the alternative, for N up to `in_memory_max`: the restore every worker did before the store
   (every user decoded into memory, the changelog read to its end), with its time and memory,
   then the same `serve_events` state updates with every user in memory (the undo copy, the
   recent ids, the event learned, each user encoded at each commit of 500): the store's cost
   side by side, `serve_events_per_second` against `serve_events_per_second_in_memory`.

Topics live under a throwaway prefix and are deleted at the end; the stores in a temporary
directory. The machine's load is printed with the figures: re-run when it is high.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from consumers import changelog
from models.history import UserHistory
from models.packing import pack
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_producer, produce
from refold.core.topics import create_topics, delete_topics, topic_specs

DAY = 86400.0
BASE_TIME = 1.75e9


def run(settings: Settings, users: list[int], *, events_per_user: int = 5,
        tail: int = 1000, cache_users: int = 100_000, serve_events: int = 200_000,
        in_memory_max: int = 1_000_000, progress: Any = None) -> dict[str, Any]:
    """One result per entry of `users` (see the module docstring)."""
    runs = []
    for n in users:
        s = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-s{int(time.time())}.",
                             consumer_group=f"bench-s{int(time.time())}")
        admin = make_admin(s)
        create_topics(admin, s)
        try:
            with tempfile.TemporaryDirectory(prefix="refold-bench-state-") as tmp:
                runs.append(_one(s, n, Path(tmp), events_per_user, tail, cache_users,
                                 serve_events, in_memory_max, progress))
        finally:
            delete_topics(admin, [spec.name for spec in topic_specs(s)])
    machine = _machine()
    return {**runs[0], "machine": machine} if len(runs) == 1 else \
        {"runs": runs, "machine": machine}


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load": [round(x, 2) for x in os.getloadavg()]}


def _one(s: Settings, n: int, tmp: Path, events_per_user: int, tail: int, cache_users: int,
         serve_events: int, in_memory_max: int, progress: Any) -> dict[str, Any]:
    say = progress or (lambda text: None)
    say(f"{n:,} users: writing the changelog")
    t0 = time.perf_counter()
    written = write_changelog(s, range(n), events_per_user, stamp=0)
    write_s = time.perf_counter() - t0
    args = {"settings": _plain(s), "root": str(tmp / "stores"), "cache_users": cache_users,
            "users": n, "serve_events": 0}
    say(f"{n:,} users: restoring on a new disk")
    new = _child("restore", args)
    write_changelog(s, np.random.default_rng(1).integers(0, n, tail).tolist(),
                    events_per_user, stamp=1)
    say(f"{n:,} users: restarting on the same disk, then serving")
    same = _child("restore", {**args, "serve_events": serve_events})
    out = {"users": n, "events_per_user": events_per_user, "partitions": s.events_partitions,
           "changelog_records": written["records"], "changelog_mb": written["bytes"] / 1e6,
           "write_seconds": write_s,
           "restore_seconds_new_disk": new["seconds"], "restored_records": new["records"],
           "restart_seconds_same_disk": same["seconds"], "tail_records": same["records"],
           "rss_mb": same["rss_mb"], "rss_mb_per_million_users": same["rss_mb"] * 1e6 / n,
           "cache_users": cache_users, "served_events": same["served"],
           "serve_events_per_second": same["served_per_s"], "cache_hit_rate": same["hit_rate"],
           "store_mb_on_disk": same["disk_mb"]}
    if n <= in_memory_max:
        say(f"{n:,} users: restoring into memory, as before the store")
        old = _child("in_memory", {**args, "serve_events": serve_events})
        out.update(restore_seconds_in_memory=old["seconds"], rss_mb_in_memory=old["rss_mb"],
                   serve_events_per_second_in_memory=old["served_per_s"])
    say(table({**out, "machine": _machine()}))  # each size's figures as soon as they are in
    return out


# -- the changelog

def write_changelog(s: Settings, users: Any, events_per_user: int, stamp: int
                    ) -> dict[str, int]:
    """Records of `users` (ints) as the worker writes them, and each partition's meta."""
    producer = make_producer(s, {"linger.ms": 50, "batch.size": 1 << 20})
    topic, parts = s.topic("changelog"), s.events_partitions
    templates = _templates(events_per_user, 97)
    records = size = 0
    for u in users:
        head, tail = templates[u % len(templates)]
        ids = b",".join(b'"u%d-%d-%d"' % (u, stamp, k) for k in range(events_per_user))
        value = head + ids + tail
        produce(producer, topic, value, changelog.user_key(f"user-{u}"), partition=u % parts)
        records, size = records + 1, size + len(value)
    for p in range(parts):
        plain = {"events": 0, "t_ref": None, "dirty": [], "items": {}}
        for key, value in changelog.partition_records(p, plain, 0):
            produce(producer, topic, value, key, partition=p)
    producer.flush(300)
    return {"records": records, "bytes": size}


def _templates(events: int, count: int) -> list[tuple[bytes, bytes]]:
    """(before the ids, after the ids) of `count` user records: `user_value` around the ids."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        h = UserHistory(50)
        times = np.sort(BASE_TIME - rng.uniform(0, 30 * DAY, events))
        for t in times.tolist():
            h.add(int(rng.integers(0, 1000)), 0.3, t, session_id="s")
        value = changelog.user_value(h.to_state([f"item-{i}" for i in range(1000)]), ["@"])
        head, _, rest = value.partition(b'"@"')
        packed = pack(times, "<f8")
        out.append((head, rest[:-1] + b',"id_times":"' + packed.encode() + b'"}'))
    return out


# -- measured in fresh processes

def _plain(s: Settings) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ("bootstrap_servers", "topic_prefix", "events_partitions",
                                       "consumer_group", "broker_host", "broker_port")}


def _child(what: str, args: dict[str, Any]) -> dict[str, Any]:
    code = f"from refold.bench.state import child; child({what!r})"
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(args).encode(),
                          capture_output=True, timeout=24 * 3600)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {what} failed: {proc.stderr.decode()[-3000:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def child(what: str) -> None:
    """Entry point of the measuring processes (arguments as JSON on stdin)."""
    args = json.loads(sys.stdin.read())
    s = Settings(**args["settings"])
    result = (_restore if what == "restore" else _in_memory)(s, args)
    print(json.dumps({**result, "rss_mb": rss_mb()}))


def _restore(s: Settings, args: dict[str, Any]) -> dict[str, Any]:
    from consumers.state.local import LocalState, derive_user_indexes
    from consumers.state.restore import StoreRestorer
    from models.expiry import Horizon

    horizon = Horizon(90 * DAY)
    items = [f"item-{i}" for i in range(1000)]
    index = {x: i for i, x in enumerate(items)}
    state = LocalState(args["root"], s.topic("changelog"),
                       new_history=lambda: UserHistory(50), item_ids=lambda: items,
                       item_index=index.__getitem__, cache_users=args["cache_users"],
                       user_horizon=horizon)
    restorer = StoreRestorer(s, s.topic("changelog"), derive=derive_user_indexes(horizon))
    t0 = time.perf_counter()
    records = 0
    for p in range(s.events_partitions):
        store = state.open(p, restorer.topic_id())
        restorer.check(store)
        records += restorer.catch_up(store).records
        state.partition_records(p)
    seconds = time.perf_counter() - t0
    restorer.close()
    served = _serve(state, s, args) if args["serve_events"] else {}
    disk = sum(f.stat().st_size for f in Path(args["root"]).rglob("*") if f.is_file())
    state.close_all()
    return {"seconds": seconds, "records": records, "disk_mb": disk / 1e6, **served}


def _serve(state: Any, s: Settings, args: dict[str, Any]) -> dict[str, Any]:
    """Events of random users through the cache: read on a miss, learn, written at commit."""
    rng = np.random.default_rng(7)
    users = rng.integers(0, args["users"], args["serve_events"]).tolist()
    parts = s.events_partitions
    t0 = time.perf_counter()
    batch: set[str] = set()
    for j, u in enumerate(users):
        uid, p = f"user-{u}", u % parts
        entry = state.user(uid, p, BASE_TIME) or state.new_user(uid, p)
        entry.history.add(j % 1000, 0.3, BASE_TIME)
        state.remember(uid, entry, f"serve-{j}", BASE_TIME, BASE_TIME)
        batch.add(uid)
        if len(batch) >= 500 or j == len(users) - 1:
            for user in batch:
                state.stage_user(user)
            state.commit({})
            batch.clear()
    seconds = time.perf_counter() - t0
    return {"served": len(users), "served_per_s": len(users) / seconds,
            "hit_rate": state.cache.hit_rate}


def _in_memory(s: Settings, args: dict[str, Any]) -> dict[str, Any]:
    """The restore before the store: every user of every partition decoded into memory."""
    from confluent_kafka import TopicPartition

    from consumers.assembly import WorkerOptions, assemble_worker
    from refold.core.kafka import make_consumer

    group = make_consumer(s, s.consumer_group)  # the offsets the state stands at
    group.commit(offsets=[TopicPartition(s.topic("events"), p, 0)
                          for p in range(s.events_partitions)], asynchronous=False)
    group.close()
    s = s.replace(state_store="memory")  # every user decoded into memory, as before the stores
    with assemble_worker(s, options=WorkerOptions.bare()) as assembled:
        worker = assembled.worker
        worker.changelog.timeout = 24 * 3600.0  # measured, not capped
        t0 = time.perf_counter()
        worker.on_partitions_assigned([TopicPartition(s.topic("events"), p)
                                       for p in range(s.events_partitions)])
        seconds = time.perf_counter() - t0
        users = worker.restores[-1].users
        served = _serve_in_memory(worker, s, args)
    return {"seconds": seconds, "users": users, **served}


def _serve_in_memory(worker: Any, s: Settings, args: dict[str, Any]) -> dict[str, Any]:
    """`_serve`'s events with every user in memory (`consumers.state.memory`): the batch's undo
    copy of each user, its recent ids, the event learned, each user encoded at each commit."""
    rng = np.random.default_rng(7)
    users = rng.integers(0, args["users"], args["serve_events"]).tolist()
    rec, mem, parts = worker.recommender, worker.state, s.events_partitions
    t0 = time.perf_counter()
    batch: set[str] = set()
    for j, u in enumerate(users):
        uid, p = f"user-{u}", u % parts
        mem.undo.save_user(uid, p)
        mem.recent.seen(uid, f"serve-{j}")
        item = rec.catalog.index(f"item-{j % 1000}")
        rec.users.get_or_create(uid, p, BASE_TIME).add(item, 0.3, BASE_TIME)
        mem.partition_of.setdefault(uid, p)
        batch.add(uid)
        if len(batch) >= 500 or j == len(users) - 1:
            for user in batch:
                changelog.user_value(rec.user_state(user), mem.recent.by_user[user])
            mem.commit()
            batch.clear()
    seconds = time.perf_counter() - t0
    return {"served": len(users), "served_per_s": len(users) / seconds if users else 0.0}


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def table(r: dict[str, Any]) -> str:
    runs = r.get("runs", [r])
    lines = [f"machine: {r['machine']['cpus']} cores, load {r['machine']['load']}"]
    for x in runs:
        lines.append(
            f"{x['users']:>11,} users ({x['changelog_mb']:,.0f} MB of changelog, "
            f"{x['partitions']} partitions): restart on the same disk "
            f"{x['restart_seconds_same_disk']:.2f} s ({x['tail_records']:,} tail records), "
            f"restore on a new disk {x['restore_seconds_new_disk']:.1f} s; "
            f"RSS {x['rss_mb']:,.0f} MB with {x['cache_users']:,} users cached "
            f"({x['rss_mb_per_million_users']:,.0f} MB per million users held)")
        if "restore_seconds_in_memory" in x:
            lines.append(
                f"{'':>11}  before the store (all users in memory): restore "
                f"{x['restore_seconds_in_memory']:.1f} s, RSS {x['rss_mb_in_memory']:,.0f} MB; "
                f"state updates {x['serve_events_per_second_in_memory']:,.0f}/s against "
                f"{x['serve_events_per_second']:,.0f}/s with the store "
                f"({x['serve_events_per_second'] / x['serve_events_per_second_in_memory']:.2f}x)")
    return "\n".join(lines)
