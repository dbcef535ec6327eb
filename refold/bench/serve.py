"""The read path under load: `refold bench serve`.

`users` lists of 20 items (5 basis items each, over a catalog of `items` with Zipf-distributed
popularity) are published to a fresh recommendations topic, with the catalog and some events for
trending. Then, side by side in one run:

- **serve**: `refold serve` child processes pinned to the same core (core 0), all read to the
  end (`/ready`), one per `VARIANTS`: as shipped (`--gc freeze`, the top-level figures), with
  Python's collector left as it is (`--gc default`, under `baseline`) and as shipped at nice -10
  (under `priority`; only where this user may raise a priority). wrk (Debian's package,
  installed by `deploy/install-wrk.sh` when missing), pinned to the other core (at the highest
  of those priorities: the instrument should not wait), drives them in turns at a fixed `rate`
  (A B C, C B A, ...: `duration` seconds each in all; a Lua script spaces requests by the clock;
  percentiles from wrk's whole histograms, merged per server), then each as fast as
  `connections` connections go (the saturation throughput, `max_rps`). Each request asks for a
  random one of the users, so every answer is a real list. While each server is driven: its own
  time per request (`handler_p99_ms`, from its `/metrics`), its CPU per request, how long its
  event-loop thread waited for the core (`loop_wait_ms_per_s`, the kernel's schedstat run
  delay), its other threads' CPU, and its garbage collector's pauses (`gc_*`); wrk's own wait
  (`wrk_wait_ms_per_s`).
- **view**: the topic-only read, `RecommendationsView.get`, in this process pinned to core 0: as
  many calls as serve answered, each timed.

Memory per million users is measured for both: the bytes of the Python objects that hold the lists
(sampled users, deep sizes, objects shared between users counted once, plus the dictionary's own
table), and the resident size of each process once the lists are in (`rss_mb`, which adds the
interpreter and libraries). Every topic lives under a throwaway prefix and is deleted at the end.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from consumers.recs_view import RecommendationsView
from refold import scrape
from refold.bench.wrk import (
    BenchError,
    Latency,
    drive,
    ensure_wrk,
    may_raise_priority,
    pinned,
    schedstat,
)
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_producer, produce
from refold.core.schemas import Cause, Event, Item, Recommendation, RecommendedItem, encode
from refold.core.topics import create_topics, delete_topics, topic_specs

K, BASIS, CATEGORIES = 20, 5, 12
VARIANTS = {"shipped": ("freeze", 0), "baseline": ("default", 0), "priority": ("freeze", -10)}
"""The servers driven in turns: `refold serve --gc` and the nice level of each. `priority` is
the shipped server with its core's scheduler on its side (nice -10, when this user may): what it
does with a core of its own on a machine whose other processes use the same core."""
__all__ = ["BenchError", "run", "table"]


def run(settings: Settings, users: int = 1_000_000, items: int = 20_000, rate: float = 2000.0,
        duration: float = 15.0, connections: int = 16, seed: int = 0,
        rounds: int = 2) -> dict[str, Any]:
    """Publish the lists, measure serve (two settings) and the view side by side; see the
    module docstring."""
    wrk = ensure_wrk()
    s = settings.replace(topic_prefix=f"{settings.topic_prefix}bench-serve{int(time.time())}.")
    admin = make_admin(s)
    create_topics(admin, s)
    try:
        t0 = time.perf_counter()
        publish(s, users, items, seed)
        published = time.perf_counter() - t0
        out: dict[str, Any] = {"users": users, "items": items, "k": K, "rate": rate,
                               "duration_s": duration, "publish_s": round(published, 1)}
        served = measure_serve(s, wrk, users, rate, duration, connections, seed, rounds)
        out.update(served.pop("shipped"))
        out.update(served)  # baseline, and priority when it could be raised
        out["view"] = measure_view(s, users, out["requests"], seed)
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        return out
    finally:
        delete_topics(admin, [spec.name for spec in topic_specs(s)])


def user_id(n: int) -> str:
    return f"u{n:08d}"


def publish(s: Settings, users: int, items: int, seed: int) -> None:
    """The catalog, `users` lists and a few thousand events (for trending), flushed."""
    rng = np.random.default_rng(seed)
    producer = make_producer(s, {"linger.ms": 50, "batch.size": 1_000_000,
                                 "queue.buffering.max.messages": 1_000_000})
    ids = [f"i{n}" for n in range(items)]
    for n, item in enumerate(ids):
        cats = [f"c{n % CATEGORIES}", f"c{(n * 7 + 3) % CATEGORIES}"]
        produce(producer, s.topic("items"), encode(Item(item_id=item, categories=cats)), item)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    for n in range(min(20_000, users)):
        ev = Event(event_id=f"e{n}", user_id=user_id(n), item_id=ids[rng.choice(items,
                   p=popularity)], event_type="click", event_time=1.7e9 + n)
        produce(producer, s.topic("events"), encode(ev), ev.user_id)
    block = 10_000
    for lo in range(0, users, block):
        picks = rng.choice(items, size=(min(block, users - lo), K + BASIS), p=popularity)
        for j, row in enumerate(picks.tolist()):
            user = user_id(lo + j)
            rec = Recommendation(
                user_id=user, model_version=3, source="collaborative", generated_at=1.7e9,
                items=[RecommendedItem(ids[i], 1.0 - r / K) for r, i in enumerate(row[:K])],
                cause=Cause(event_id=f"e-{user}", event_time=1.7e9, topic=s.topic("events"),
                            partition=0, offset=lo + j))
            produce(producer, s.topic("recommendations"), encode(rec), user)
    producer.flush(120)


def measure_serve(s: Settings, wrk: str, users: int, rate: float, duration: float,
                  connections: int, seed: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Start a server per variant on core 0, wait for /ready, drive them in turn with wrk on
    core 1 (at `rate`, then at saturation); figures per variant."""
    nice = may_raise_priority()
    variants = {k: v for k, v in VARIANTS.items() if nice or v[1] == 0}
    ports = {name: free_port() for name in variants}
    servers = {name: start_server(s, ports[name], *variants[name]) for name in variants}
    wrk_nice = min(n for _, n in variants.values())
    out: dict[str, dict[str, Any]] = {}
    try:
        t0 = time.perf_counter()
        for name, (gc_mode, level) in variants.items():
            wait_ready(ports[name], servers[name], timeout=max(300.0, users / 2000))
            out[name] = {"gc": gc_mode, "nice": level,
                         "ready_s": round(time.perf_counter() - t0, 1)}
        before = {name: metrics(ports[name]) for name in variants}
        runs: dict[str, list[Latency]] = {name: [] for name in variants}
        used = {name: np.zeros(3) for name in variants}  # CPU, loop's CPU, loop's CPU wait
        order = list(variants)
        for r in range(2 * rounds):  # A B C, C B A ...: a trend in the load hits all alike
            for name in order if r % 2 == 0 else order[::-1]:
                before_run = server_times(servers[name].pid)
                runs[name].append(drive(wrk, ports[name], users, duration / (2 * rounds),
                                        connections, rate, seed + r, nice=wrk_nice))
                used[name] += server_times(servers[name].pid) - before_run
        for name in variants:
            after = metrics(ports[name])
            at_max = drive(wrk, ports[name], users, max(duration / 3, 3.0), connections,
                           None, seed + 100, nice=wrk_nice)
            driven = Latency.merge(runs[name])
            out[name].update(driven.figures())
            cpu, loop_cpu, loop_wait = used[name]
            per_s = 1000 / max(driven.seconds, 1e-9)
            out[name].update(
                server_cpu_us_per_request=round(1e6 * cpu / max(driven.requests, 1)),
                loop_wait_ms_per_s=round(loop_wait * per_s, 1),
                other_threads_cpu_ms_per_s=round((cpu - loop_cpu) * per_s, 1),
                handler_p99_ms=round(1000 * handler_quantile(before[name], after, 0.99), 2))
            out[name].update(gc_figures(before[name], after))
            out[name].update(held_figures(after), rss_mb=rss_mb(servers[name].pid),
                             max_rps=at_max.rps, max_rps_p99_ms=at_max.percentile(99) / 1000)
    finally:
        for server in servers.values():
            stop(server)
    return out


def server_times(pid: int) -> np.ndarray:
    """CPU seconds of all the server's threads; CPU and CPU-wait seconds of its main thread,
    which runs the HTTP event loop."""
    return np.array([schedstat(pid)[0], *schedstat(pid, main_only=True)])


def start_server(s: Settings, port: int, gc_mode: str, nice: int) -> subprocess.Popen:
    env = {**os.environ, "REFOLD_TOPIC_PREFIX": s.topic_prefix, "REFOLD_LOG_LEVEL": "WARNING",
           "REFOLD_BOOTSTRAP_SERVERS": s.bootstrap}
    cmd = [sys.executable, "-m", "refold", "serve", "--port", str(port),
           "--events-lookback", "3600", "--gc", gc_mode]
    return subprocess.Popen(cmd, env=env, preexec_fn=pinned(0, nice))


def stop(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def metrics(port: int) -> scrape.Samples:
    return scrape.scrape(f"http://127.0.0.1:{port}/metrics", 10)


def handler_quantile(before: scrape.Samples, after: scrape.Samples, q: float) -> float:
    """The q-quantile of the server's own time per user request (from the ASGI call to the
    last byte handed to the socket; no queueing before it) between two scrapes."""
    name, route = "refold_serve_request_seconds", "recommendations"
    b0, b1 = scrape.buckets(before, name, route=route), scrape.buckets(after, name, route=route)
    return scrape.bucket_quantile(q, {le: b1[le] - b0.get(le, 0.0) for le in b1})


def gc_figures(before: scrape.Samples, after: scrape.Samples) -> dict[str, Any]:
    """The collector's pauses between two scrapes: full (generation 2) collections, and the
    seconds all collections held the process."""
    name = "refold_serve_gc_pause_seconds"

    def delta(sample: str, **labels: str) -> float:
        return scrape.total(after, sample, **labels) - scrape.total(before, sample, **labels)

    return {"gc_full_collections": int(delta(f"{name}_count", generation="2")),
            "gc_pause_ms": round(delta(f"{name}_sum") * 1000, 1),
            "gc_full_pause_ms": round(delta(f"{name}_sum", generation="2") * 1000, 1)}


def held_figures(samples: scrape.Samples) -> dict[str, Any]:
    held = scrape.total(samples, "refold_serve_users")
    lists = scrape.total(samples, "refold_serve_lists_bytes")
    return {"users_held": int(held),
            "memory_mb_per_million_users": round(lists / max(held, 1) * 1e6 / 2**20, 1)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"refold serve exited with {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise BenchError(f"refold serve was not ready after {timeout:.0f} s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def measure_view(s: Settings, users: int, requests: int, seed: int) -> dict[str, Any]:
    """`RecommendationsView.get` of random users, each call timed, on core 0."""
    before = rss_mb(os.getpid())
    with RecommendationsView(s) as view:
        t0 = time.perf_counter()
        if not view.catch_up(timeout=max(120.0, users / 5000)):
            raise BenchError("the recommendations view did not catch up")
        ready_s = time.perf_counter() - t0
        gc.collect()
        rss = rss_mb(os.getpid()) - before
        sample = [user_id(int(n)) for n in
                  np.random.default_rng(seed).integers(0, users, min(users, 2000))]
        seen: set[int] = set()  # what users share (interned item ids) is counted once
        per_user = sum(deep_size(view.get(u), seen) for u in sample) / len(sample)
        table = sys.getsizeof(view.latest) / max(len(view), 1)
        keys = [user_id(int(n)) for n in np.random.default_rng(seed + 2).integers(0, users,
                                                                                 requests)]
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {0})
        try:
            found, times = timed_gets(view, keys)
        finally:
            os.sched_setaffinity(0, affinity)
    total = times.sum() / 1e9
    return {"users": users, "requests": requests, "rps": round(requests / total, 1),
            "p50_ms": float(np.percentile(times, 50)) / 1e6,
            "p99_ms": float(np.percentile(times, 99)) / 1e6,
            "errors": requests - found, "ready_s": round(ready_s, 1),
            "rss_mb": round(rss, 1),
            "memory_mb_per_million_users": round((per_user + table) * 1e6 / 2**20, 1)}


def timed_gets(view: RecommendationsView, keys: list[str]) -> tuple[int, np.ndarray]:
    times = np.empty(len(keys), dtype=np.int64)
    found = 0
    clock = time.perf_counter_ns
    for n, key in enumerate(keys):
        t = clock()
        rec = view.get(key)
        times[n] = clock() - t
        found += rec is not None
    return found, times


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of `obj` and everything it holds (msgspec structs, lists, strings, numbers)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or obj is None:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, list | tuple):
        size += sum(deep_size(x, seen) for x in obj)
    elif isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif hasattr(obj, "__struct_fields__"):
        size += sum(deep_size(getattr(obj, f), seen) for f in obj.__struct_fields__)
    return size


def table(r: dict[str, Any]) -> str:
    v = r["view"]
    head = (f"{'':30}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'p99.9':>8}{'errors':>7}"
            f"{'MB/1M users':>12}{'RSS MB':>8}{'ready s':>8}")

    def row(name: str, x: dict[str, Any], digits: int = 2) -> str:
        p999 = f"{x['p999_ms']:>8.{digits}f}" if "p999_ms" in x else f"{'':>8}"
        return (f"{name:30}{x['rps']:>8,.0f}{x['p50_ms']:>8.{digits}f}{x['p99_ms']:>8.{digits}f}"
                f"{p999}{x['errors']:>7}{x['memory_mb_per_million_users']:>12,.0f}"
                f"{x['rss_mb']:>8,.0f}{x['ready_s']:>8.1f}")

    def why(name: str, x: dict[str, Any]) -> str:
        return (f"{name}: own time p99 {x['handler_p99_ms']} ms, {x['server_cpu_us_per_request']}"
                f" CPU µs a request; the loop waited for its core {x['loop_wait_ms_per_s']} ms/s,"
                f" other threads ran {x['other_threads_cpu_ms_per_s']} ms/s (wrk waited "
                f"{x['wrk_wait_ms_per_s']} ms/s); {x['gc_full_collections']} full collections "
                f"({x['gc_full_pause_ms']} ms), {x['gc_pause_ms']} ms in all; at saturation "
                f"{x['max_rps']:,.0f} req/s, p99 {x['max_rps_p99_ms']:.2f} ms")

    servers = [("serve (HTTP)", r)] + [
        (f"serve --gc {r[k]['gc']}, nice {r[k]['nice']}", r[k]) for k in ("baseline", "priority")
        if k in r]
    return "\n".join([
        f"{r['users']:,} users x {r['k']} items, {r['items']:,} items; servers on core 0, wrk on "
        f"core 1 at {r['rate']:,.0f} req/s, {r['duration_s']:.0f} s each in turns "
        f"(load average {', '.join(map(str, r['load_avg']))})", head,
        *(row(name, x) for name, x in servers), row("view.get (in-process)", v, 4),
        *(why(name, x) for name, x in servers)])
