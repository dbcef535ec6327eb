"""A worker under a steady stream and a growing user population: `refold bench soak`.

A `refold consume` process (the production worker, exactly once, serving random item factors of
`items` x `factors`) reads events sent at `rate` per second for `minutes`; each event is from a
brand-new user with probability `new_user_share`, else from one of the users seen so far, so the
population grows all along (`rate x minutes x new_user_share` users in the end). Every
`sample_seconds` the bench records the worker's resident memory (VmRSS of its process), the
group's lag (end offsets minus committed offsets of the events topic) and the latency of the
lists published in the interval (from the event's time, which is its send time, to the moment
the list is visible to a read_committed reader), and from the worker's /metrics: the memory of
its local stores (RocksDB's block cache with the memtables charged to it, bounded by
`state_cache_mb`), the users its bounded cache holds, and its full collections of Python's cyclic
garbage collector so far. `errors` counts dead letters, a worker exit and log lines at ERROR or
above.

Memory grows while the two caches fill, and is meant to be flat after. `rss_slope_mb_per_min` is
the least-squares slope of memory over the samples taken once both are full (the users' cache at
`cache_users`, the stores' at 90% of `state_cache_mb` or more), from `rss_slope_from_minute`;
with no such sample, over the second half (`rss_slope_from_minute` says which). The largest rise
between two samples after that (`rss_step_max_mb`) tells a step from a steady climb. The curves
go to a PNG. Topics live under a throwaway prefix, deleted at the end.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from consumers import model_source
from consumers.tail import arrived
from models.foldin import ItemFactors
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_consumer, watermarks
from refold.core.schemas import Event, decode_recommendation
from refold.core.topics import create_topics, delete_topics, topic_specs

STORE_FULL = 0.9
"""The stores' cache counts as full from this share of `state_cache_mb` (RocksDB keeps some
slack below its capacity)."""


def run(settings: Settings, *, minutes: float = 30.0, rate: float = 1000.0,
        new_user_share: float = 0.3, items: int = 5000, factors: int = 32,
        cache_users: int = 100_000, sample_seconds: float = 60.0, png: str | None = None,
        worker_env: dict[str, str] | None = None, progress: Any = None) -> dict[str, Any]:
    s = settings.replace(topic_prefix=f"{settings.topic_prefix}soak-{uuid.uuid4().hex[:6]}.",
                         consumer_group=f"soak-{uuid.uuid4().hex[:6]}")
    admin = make_admin(s)
    create_topics(admin, s)
    say = progress or (lambda text: None)
    with tempfile.TemporaryDirectory(prefix="refold-soak-") as tmp:
        model = Path(tmp) / "model.npz"
        rng = np.random.default_rng(0)
        model_source.save_npz(model, ItemFactors(
            [f"i{i}" for i in range(items)],
            (rng.standard_normal((items, factors)) * 0.1).astype(np.float32), version=1))
        port = _free_port()
        worker, log = _start_worker(s, model, Path(tmp), cache_users,
                                    {"REFOLD_METRICS_PORT": str(port), **(worker_env or {})})
        sender = Sender(s, rate, new_user_share, items, minutes * 60.0)
        lists = ListWatcher(s)
        samples: list[dict[str, float]] = []
        latencies: list[float] = []
        try:
            lists.start()
            sender.start()
            t0 = time.monotonic()
            while sender.is_alive() or time.monotonic() - t0 < minutes * 60.0:
                time.sleep(max(0.0, t0 + (len(samples) + 1) * sample_seconds
                               - time.monotonic()))
                samples.append(_sample(s, worker, sender, lists, time.monotonic() - t0,
                                       latencies) | _scrape(port))
                say(_line(samples[-1]))
                if worker.poll() is not None:
                    break
        finally:
            sender.stop()
            lists.stop()
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
            delete_topics(admin, [spec.name for spec in topic_specs(s)])
        errors = _errors(log.read_text(), lists.dead_letters, worker.returncode)
    result = _result(samples, latencies, sender, errors, minutes, rate, cache_users,
                     new_user_share, s.state_cache_mb)
    if png:
        plot(samples, result, png)
        result["png"] = png
    return result


def _start_worker(s: Settings, model: Path, tmp: Path, cache_users: int,
                  extra: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "REFOLD_BOOTSTRAP_SERVERS": s.bootstrap,
           "REFOLD_TOPIC_PREFIX": s.topic_prefix, "REFOLD_CONSUMER_GROUP": s.consumer_group,
           "REFOLD_HOME": str(tmp), "REFOLD_STATE_CACHE_USERS": str(cache_users),
           "REFOLD_STATE_CACHE_MB": str(s.state_cache_mb), **extra}
    log = tmp / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from refold.cli import main; main()", "consume",
         "--model", str(model), "--no-follow-snapshots", "--no-refit-on-drift"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    return proc, log


class Sender(threading.Thread):
    """Events at `rate`/s, a growing population; event time = send time."""

    def __init__(self, s: Settings, rate: float, new_share: float, items: int,
                 seconds: float) -> None:
        super().__init__(name="soak-sender", daemon=True)
        self.s, self.rate, self.new_share, self.items = s, rate, new_share, items
        self.seconds = seconds
        self.sent = self.users = 0
        self.passed_cache_at: dict[int, float] = {}
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        rng = random.Random(1)
        t0 = time.monotonic()
        with EventProducer(self.s) as producer:
            while not self._halt.is_set() and time.monotonic() - t0 < self.seconds:
                due = int((time.monotonic() - t0) * self.rate)
                for _ in range(due - self.sent):
                    if self.users == 0 or rng.random() < self.new_share:
                        self.users += 1
                        user = self.users - 1
                    else:
                        user = rng.randrange(self.users)
                    item = min(int(rng.paretovariate(1.2)) - 1, self.items - 1)
                    producer.send(Event(event_id=f"soak-{self.sent}", user_id=f"u{user}",
                                        item_id=f"i{item}", event_type="click",
                                        event_time=time.time()))
                    self.sent += 1
                time.sleep(0.01)
            producer.flush()


class ListWatcher(threading.Thread):
    """Reads the recommendations (read_committed): latency of each list from its cause's event
    time; and counts dead letters."""

    def __init__(self, s: Settings) -> None:
        super().__init__(name="soak-lists", daemon=True)
        self.s = s
        self.latencies: list[float] = []
        self.taken = 0
        self.dead_letters = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def take(self) -> list[float]:
        """The latencies (ms) seen since the last call."""
        with self._lock:
            out, self.latencies = self.latencies, []
        return out

    def run(self) -> None:
        c = make_consumer(self.s, f"{self.s.consumer_group}.watch",
                          {"auto.offset.reset": "latest", "fetch.wait.max.ms": 20})
        recs, dead = self.s.topic("recommendations"), self.s.topic("dead_letter")
        c.subscribe([recs, dead])
        try:
            while not self._halt.is_set():
                for msg in arrived(c, 1000, 0.2):
                    if msg.error() is not None:
                        continue
                    if msg.topic() == dead:
                        self.dead_letters += 1
                        continue
                    cause = decode_recommendation(msg.value()).cause
                    if cause is not None:
                        with self._lock:
                            self.latencies.append((time.time() - cause.event_time) * 1000)
        finally:
            c.close()


def _sample(s: Settings, worker: subprocess.Popen, sender: Sender, lists: ListWatcher,
            at: float, every: list[float]) -> dict[str, float]:
    lat = lists.take()
    if at > 60.0:  # the first minute (start, catalog, first fetches) is a warm-up
        every.extend(lat)
    return {"minute": at / 60.0, "rss_mb": _rss_mb(worker.pid), "lag": _lag(s),
            "sent": sender.sent, "users": sender.users,
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat else float("nan"),
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat else float("nan"),
            "lists": len(lat)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> dict[str, float]:
    """From the worker's /metrics: its stores' memory (MB), the users it holds in memory, and
    its full (generation 2) collections so far (NaN: not answered)."""
    got = {"store_cache_mb": float("nan"), "users_cached": float("nan"),
           "gc_full_collections": float("nan")}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return got
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "refold_state_store_memory_bytes":
                got["store_cache_mb"] = sample.value / (1 << 20)
            elif sample.name == "refold_users_in_state":
                got["users_cached"] = sample.value
            elif sample.name == "python_gc_collections_total" and \
                    sample.labels.get("generation") == "2":
                got["gc_full_collections"] = sample.value
    return got


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _lag(s: Settings) -> int:
    topic = s.topic("events")
    c = make_consumer(s, s.consumer_group)
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        ends = watermarks(c, topic)  # after the committed offsets: never below them
        return sum(max(ends[tp.partition][1] - max(tp.offset, ends[tp.partition][0]), 0)
                   for tp in got)
    finally:
        c.close()


def _errors(log_text: str, dead_letters: int, returncode: int | None) -> int:
    logged = sum(1 for line in log_text.splitlines() if " ERROR " in line or
                 " CRITICAL " in line or line.startswith("Traceback"))
    crashed = returncode not in (None, 0, -15)
    return logged + dead_letters + int(crashed)


def full(x: dict[str, float], cache_users: int, cache_mb: int) -> bool:
    """Whether both caches were full at sample `x` (module docstring)."""
    return x["users"] > cache_users and x.get("users_cached", cache_users) >= cache_users \
        and x.get("store_cache_mb", 0.0) >= STORE_FULL * cache_mb


def _slope(samples: list[dict[str, float]], cache_users: int, cache_mb: int
           ) -> tuple[float, float, float]:
    """(MB/min, the minute it is fitted from, the largest rise between two samples since)."""
    first = next((i for i, x in enumerate(samples) if full(x, cache_users, cache_mb)), None)
    after = [x for x in samples[len(samples) // 2 if first is None else first:]
             if np.isfinite(x["rss_mb"])]
    if len(after) < 2:
        return float("nan"), float("nan"), float("nan")
    m = np.array([x["minute"] for x in after])
    r = np.array([x["rss_mb"] for x in after])
    return float(np.polyfit(m, r, 1)[0]), float(m[0]), float(np.diff(r).max())


def _result(samples: list[dict[str, float]], latencies: list[float], sender: Sender,
            errors: int, minutes: float, rate: float, cache_users: int, share: float,
            cache_mb: int) -> dict[str, Any]:
    if not latencies:  # a run of a minute or less: its warm-up is all there is
        latencies = [x["latency_p99_ms"] for x in samples if np.isfinite(x["latency_p99_ms"])]
    slope, since, step = _slope(samples, cache_users, cache_mb)
    gcs = [x["gc_full_collections"] for x in samples if np.isfinite(x["gc_full_collections"])]
    return {"minutes": minutes, "events": sender.sent, "users": sender.users, "rate": rate,
            "new_user_share": share, "cache_users": cache_users, "state_cache_mb": cache_mb,
            "rss_mb_start": samples[0]["rss_mb"] if samples else float("nan"),
            "rss_mb_end": samples[-1]["rss_mb"] if samples else float("nan"),
            "rss_slope_mb_per_min": slope, "rss_slope_from_minute": since,
            "caches_full": any(full(x, cache_users, cache_mb) for x in samples),
            "rss_step_max_mb": step,
            "gc_full_collections": gcs[-1] - gcs[0] if len(gcs) > 1 else float("nan"),
            "errors": errors, "lag_max": max((x["lag"] for x in samples), default=0),
            "latency_p99_ms": float(np.percentile(latencies, 99)) if latencies
            else float("nan"),
            "samples": samples, "machine": {"cpus": os.cpu_count(),
                                            "load": [round(x, 2) for x in os.getloadavg()]}}


def _line(x: dict[str, float]) -> str:
    return (f"{x['minute']:6.1f} min: {x['sent']:,} sent, {x['users']:,} users "
            f"({x.get('users_cached', float('nan')):,.0f} cached), RSS {x['rss_mb']:,.0f} MB "
            f"(stores {x.get('store_cache_mb', float('nan')):,.1f}), lag {x['lag']:,}, p99 "
            f"{x['latency_p99_ms']:,.0f} ms, full GCs {x.get('gc_full_collections', 0):,.0f}")


def plot(samples: list[dict[str, float]], result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = [x["minute"] for x in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(m, [x["rss_mb"] for x in samples], marker=".", label="worker RSS")
    axes[0].plot(m, [x.get("store_cache_mb", np.nan) for x in samples], marker=".",
                 label="of which RocksDB cache + memtables")
    axes[0].set_ylabel("MB")
    axes[0].legend(loc="center right")
    passed = next((x["minute"] for x in samples if x["users"] > result["cache_users"]), None)
    if passed is not None:
        for ax in axes:
            ax.axvline(passed, color="grey", linestyle=":")
        axes[0].annotate("users > cache", (passed, axes[0].get_ylim()[0]), color="grey")
    since = result["rss_slope_from_minute"]
    if result["caches_full"] and np.isfinite(since):
        for ax in axes:
            ax.axvline(since, color="black", linestyle="--")
        axes[0].annotate(f"both caches full: {result['rss_slope_mb_per_min']:+.2f} MB/min",
                         (since, axes[0].get_ylim()[1]), color="black", va="top")
    axes[1].plot(m, [x["lag"] for x in samples], marker=".")
    axes[1].set_ylabel("lag (events)")
    axes[2].plot(m, [x["latency_p99_ms"] for x in samples], marker=".", label="p99")
    axes[2].plot(m, [x["latency_p50_ms"] for x in samples], marker=".", label="p50")
    axes[2].set_ylabel("latency (ms, log scale)")
    axes[2].set_yscale("log")  # the first minute's start-up would flatten the rest
    axes[2].set_xlabel("minutes")
    axes[2].legend()
    fig.suptitle(f"soak: {result['rate']:,.0f} events/s, {result['users']:,} users in the end, "
                 f"cache {result['cache_users']:,} users")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(r: dict[str, Any]) -> str:
    return "\n".join([
        *(_line(x) for x in r["samples"]),
        f"{r['minutes']:g} min, {r['events']:,} events, {r['users']:,} users (cache "
        f"{r['cache_users']:,}; stores {r['state_cache_mb']} MB): RSS {r['rss_mb_start']:,.0f} "
        f"-> {r['rss_mb_end']:,.0f} MB; lag max {r['lag_max']:,}; latency p99 "
        f"{r['latency_p99_ms']:,.0f} ms; full GCs {r['gc_full_collections']:,.0f}; errors "
        f"{r['errors']}",
        f"RSS slope {r['rss_slope_mb_per_min']:+.2f} MB/min from minute "
        f"{r['rss_slope_from_minute']:.1f} "
        + ("(after the cache filled: both caches full)" if r["caches_full"] else
           "(second half: the caches never both filled)")
        + f", largest rise between samples since {r['rss_step_max_mb']:+.1f} MB",
        f"machine: {r['machine']['cpus']} cores, load {r['machine']['load']}"])
