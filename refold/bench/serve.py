"""The read path under load: `refold bench serve`.

`users` lists of 20 items (5 basis items each, over a catalog of `items` with Zipf-distributed
popularity) are published to a fresh recommendations topic, with the catalog and some events for
trending. Then, side by side in one run:

- **serve**: `refold serve` in a child process pinned to one core (core 0), read to the end
  (`/ready`), then driven by wrk (Debian's package, installed by `deploy/install-wrk.sh` when
  missing) pinned to the other core: first at a fixed `rate` for `duration` seconds (a Lua script
  spaces requests by the clock; latency percentiles from wrk's histogram), then as fast as
  `connections` connections go (the saturation throughput, `max_rps`). Each request asks for a
  random one of the users, so every answer is a real list.
- **view**: the topic-only read, `RecommendationsView.get`, in this process pinned to core 0: as
  many calls as serve answered, each timed.

Memory per million users is measured for both: the bytes of the Python objects that hold the lists
(sampled users, deep sizes, plus the dictionary's own table), and the resident size of each process
once the lists are in (`rss_mb`, which adds the interpreter and libraries). Every topic lives under
a throwaway prefix and is deleted at the end.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
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
from refold.core.config import Settings
from refold.core.errors import AppError
from refold.core.kafka import make_admin, make_producer, produce
from refold.core.schemas import Cause, Event, Item, Recommendation, RecommendedItem, encode
from refold.core.topics import create_topics, delete_topics, topic_specs

K, BASIS, CATEGORIES = 20, 5, 12
INSTALL_WRK = Path(__file__).resolve().parents[2] / "deploy" / "install-wrk.sh"
LUA = Path(__file__).with_name("serve_wrk.lua")


class BenchError(AppError):
    """The benchmark could not run (no wrk, a server that did not get ready ...)."""


def run(settings: Settings, users: int = 1_000_000, items: int = 20_000, rate: float = 2000.0,
        duration: float = 15.0, connections: int = 16, seed: int = 0) -> dict[str, Any]:
    """Publish the lists, measure serve and the view side by side; see the module docstring."""
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
        out.update(measure_serve(s, wrk, users, rate, duration, connections, seed))
        out["view"] = measure_view(s, users, out["requests"], seed)
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
        return out
    finally:
        delete_topics(admin, [spec.name for spec in topic_specs(s)])


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages by the project script when missing."""
    if (path := shutil.which("wrk")) is None:
        print(f"wrk is missing: running {INSTALL_WRK}", file=sys.stderr)
        subprocess.run(["sh", str(INSTALL_WRK)], check=False)
        path = shutil.which("wrk")
    if path is None:
        raise BenchError(f"wrk is not installed and {INSTALL_WRK} could not install it")
    return path


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
                  connections: int, seed: int) -> dict[str, Any]:
    """Start `refold serve` on core 0, wait for /ready, run wrk on core 1 (rate, then max)."""
    port = free_port()
    env = {**os.environ, "REFOLD_TOPIC_PREFIX": s.topic_prefix, "REFOLD_LOG_LEVEL": "WARNING",
           "REFOLD_BOOTSTRAP_SERVERS": s.bootstrap}
    cmd = [sys.executable, "-m", "refold", "serve", "--port", str(port),
           "--events-lookback", "3600"]
    server = subprocess.Popen(cmd, env=env, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    try:
        t0 = time.perf_counter()
        wait_ready(port, server, timeout=max(120.0, users / 5000))
        ready_s = time.perf_counter() - t0
        metrics = scrape(port)
        at_rate = drive(wrk, port, users, duration, connections, rate, seed)
        at_max = drive(wrk, port, users, max(duration / 3, 3.0), connections, None, seed + 1)
        rss = rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    held = metrics.get("refold_serve_users", 0.0)
    return {**at_rate, "max_rps": at_max["rps"], "max_rps_p99_ms": at_max["p99_ms"],
            "ready_s": round(ready_s, 1), "users_held": int(held), "rss_mb": rss,
            "memory_mb_per_million_users": round(
                metrics.get("refold_serve_lists_bytes", 0.0) / max(held, 1) * 1e6 / 2**20, 1)}


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


def scrape(port: int) -> dict[str, float]:
    """The unlabelled samples of /metrics."""
    out = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def drive(wrk: str, port: int, users: int, duration: float, connections: int,
          rate: float | None, seed: int) -> dict[str, Any]:
    """One wrk run on core 1: at `rate` requests/s (None: as fast as it goes)."""
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration:.0f}s", "-s", str(LUA),
           f"http://127.0.0.1:{port}", "--", str(users), str(rate or 0), str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60,
                          preexec_fn=lambda: os.sched_setaffinity(0, {1}))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("refold-result ")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    r = json.loads(lines[-1].removeprefix("refold-result "))
    seconds = r["duration_us"] / 1e6
    return {"requests": r["requests"], "rps": round(r["requests"] / seconds, 1),
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "p999_ms": r["p999_us"] / 1000, "max_ms": r["max_us"] / 1000,
            "errors": r["errors"] + r["non2xx"]}


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
        per_user = np.mean([deep_size(view.get(u)) + deep_size(u) for u in sample])
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
    rows = [
        f"{r['users']:,} users x {r['k']} items, {r['items']:,} items; serve on core 0, wrk on "
        f"core 1 at {r['rate']:,.0f} req/s for {r['duration_s']:.0f} s "
        f"(load average {', '.join(map(str, r['load_avg']))})",
        f"{'':24}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'MB/1M users':>13}"
        f"{'RSS MB':>9}{'ready s':>9}",
        f"{'serve (HTTP, wrk)':24}{r['rps']:>10,.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
        f"{r['errors']:>8}{r['memory_mb_per_million_users']:>13,.0f}{r['rss_mb']:>9,.0f}"
        f"{r['ready_s']:>9.1f}",
        f"{'view.get (in-process)':24}{v['rps']:>10,.0f}{v['p50_ms']:>9.4f}{v['p99_ms']:>9.4f}"
        f"{v['errors']:>8}{v['memory_mb_per_million_users']:>13,.0f}{v['rss_mb']:>9,.0f}"
        f"{v['ready_s']:>9.1f}",
        f"serve at saturation ({r['max_rps']:,.0f} req/s): p99 {r['max_rps_p99_ms']:.2f} ms",
    ]
    return "\n".join(rows)
