"""The demo pipeline: a refitter and fold-in workers as child processes, fed by a replay.

Each child is a real `refold` process with its own /metrics endpoint; the demo reads those
endpoints (the same numbers Prometheus would scrape) for its live progress line and its summary.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from refold.core.config import Settings
from refold.scrape import Samples, histogram_quantile, scrape, total, values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """A `refold` subprocess with its /metrics port and log file."""

    name: str
    proc: subprocess.Popen
    port: int
    log: Path

    def scrape(self, timeout: float = 2.0) -> Samples:
        """Every sample of its /metrics (empty if it does not answer yet)."""
        return scrape(f"http://127.0.0.1:{self.port}/metrics", timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """Start `python -m refold ARGS --metrics-port P` with its output in `log_dir/name.log`."""
    port = free_port()
    log = log_dir / f"{name}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "refold", *args, "--metrics-port", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Child(name, proc, port, log)


@dataclass
class Reading:
    """What the children report at one moment."""

    consumed: float = 0.0
    dead: float = 0.0
    recs: float = 0.0
    lag: float = 0.0
    versions: list[int] = field(default_factory=list)
    published: float = 0.0
    published_version: int = 0
    refitter_read: float = math.inf
    """Events the refitter has read, and refitted on if a refit was due (inf: no refitter)."""
    hit_rate: float = math.nan
    p50: float = math.nan
    p99: float = math.nan

    @classmethod
    def read(cls, workers: list[Child], refitter: Child | None) -> Reading:
        ws = [w.scrape() for w in workers]
        judged = total(ws, "refold_online_evaluated_events_total")
        hits = total(ws, "refold_online_hits_total")
        snap = cls(
            consumed=total(ws, "refold_events_consumed_total"),
            dead=total(ws, "refold_dead_letters_total"),
            recs=total(ws, "refold_recommendations_published_total"),
            lag=total(ws, "refold_consumer_lag_messages"),
            versions=[int(v) for v in values(ws, "refold_model_version")],
            hit_rate=hits / judged if judged else math.nan,
            p50=histogram_quantile(ws, "refold_event_to_recommendation_seconds", 0.5),
            p99=histogram_quantile(ws, "refold_event_to_recommendation_seconds", 0.99),
        )
        if refitter is not None:
            r = refitter.scrape()
            snap.published = total(r, "refold_snapshots_published_total")
            snap.refitter_read = total(r, "refold_refitter_events_read")
            snap.published_version = int(max(values(r, "refold_model_version"), default=0))
        return snap

    def serving_latest(self) -> bool:
        """Every worker serves the refitter's last published version (or none was published)."""
        return not self.published_version or min(self.versions or [0]) >= self.published_version

    def line(self, sent: int, total_events: int) -> str:
        version = max(self.versions) if self.versions else 0
        return (f"sent {sent:,}/{total_events:,} | processed {self.consumed + self.dead:,.0f} "
                f"| lists {self.recs:,.0f} | lag {self.lag:,.0f} | model v{version} "
                f"| hit-rate@K {self.hit_rate:.3f} | e2e p50 {self.p50 * 1000:,.0f} ms")


def child_env(settings: Settings) -> dict[str, str]:
    """The children's environment: the demo's topics, groups and cluster."""
    env = dict(os.environ)
    env.update({
        "REFOLD_TOPIC_PREFIX": settings.topic_prefix,
        "REFOLD_CONSUMER_GROUP": settings.consumer_group,
        "REFOLD_REFIT_GROUP": settings.refit_group,
        "REFOLD_HOME": settings.home,
    })
    if settings.bootstrap_servers:
        env["REFOLD_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    return env


class Feeder(threading.Thread):
    """Replays events into Kafka in the background, counting what was acknowledged."""

    def __init__(self, settings: Settings, events: Iterable, catalog: Iterable, rate: float | None):
        super().__init__(daemon=True, name="replay")
        self.settings, self.events, self.catalog, self.rate = settings, events, catalog, rate
        self.report = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from producers.replay import replay
        from producers.sdk import EventProducer

        try:
            with EventProducer(self.settings) as producer:
                self.report = replay(self.events, producer, catalog=self.catalog,
                                     rate=self.rate, progress=False)
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def wait_until(predicate, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
