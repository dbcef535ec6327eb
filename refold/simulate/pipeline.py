"""One refold deployment for one simulated policy: its topics, a refitter and workers as processes.

`Pipeline` creates a fresh set of topics (prefix `<topic_prefix>sim-<run>-<variant>.`), starts a
refitter that refits only when asked and fold-in workers with the variant's settings, each a
real `refold` process with its own /metrics, and exposes what the simulated shop needs:

- `catch_up(sent)`: wait until the refitter has read `sent` events (and the workers committed
  them), so a refit trains on exactly what the shop sent so far;
- `refit()`: ask for a refit on the control topic, wait for its snapshot, then for every worker
  to serve it; the shop calls it at fixed simulated times, so runs are repeatable;
- `measured(impressions)`: once the workers have read that many impressions, what their own
  metrics say (`refold_impression_*`: what Prometheus would chart for this run);
- `close()`: stop the processes (SIGTERM, they commit and leave) and delete the topics.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from consumers.control import RefitRequest, encode_request
from models.rescore import Rescore
from refold.core.config import Settings, environment
from refold.core.errors import AppError
from refold.core.kafka import make_admin, make_producer, produce
from refold.core.topics import create_topics, topic_specs
from refold.demo import Child, spawn
from refold.scrape import total, values


class SimulationError(AppError):
    """The simulated shop's pipeline did not do what was asked in time."""


@dataclass(frozen=True)
class Variant:
    """A policy the shop runs: served by refold with these settings (and fold-in settings), or
    by the shop itself (`popularity`, `popularity-exposure`, `random`, `oracle`)."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    fold_in: Mapping[str, Any] = field(default_factory=dict)
    shop: str | None = None
    """`popularity`, `popularity-exposure`, `random` or `oracle`: the shop draws the lists
    itself, no pipeline."""
    candidate: bool = False
    """Differs from the logging variant in its exploration policy, or in `rerank`, only:
    estimated off-policy from the logging variant's logs, next to its own run's figures."""
    rerank: Rescore | None = None
    """The shop re-ranks each list's logged candidates so (`models.rescore`) and draws its
    page with the list's own exploration policy: another ranking tried in the shop."""
    default: bool = True
    """Run unless `only` names others; False: only when named."""


class Pipeline:
    """Topics, a refitter and workers for one variant (a context manager)."""

    def __init__(self, base: Settings, variant: Variant, run: str, log_dir: Path,
                 workers: int = 1, timeout: float = 600.0) -> None:
        tag = f"sim-{run}-{variant.name}"
        self.settings = base.replace(
            topic_prefix=f"{base.topic_prefix}{tag}.", consumer_group=f"refold-{tag}-foldin",
            refit_group=f"refold-{tag}-refit", **variant.settings)
        self.variant = variant
        self.timeout = timeout
        self.log_dir = log_dir / variant.name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        create_topics(make_admin(self.settings), self.settings)
        env = {**os.environ, **environment(self.settings), "OPENBLAS_NUM_THREADS": "1"}
        fold_in = [a for k, v in variant.fold_in.items() for a in ("--fold-in", f"{k}={v}")]
        self.refitter = spawn("refitter", ["refit", "--every-events", "0", "--every-seconds",
                                           "0", "--checkpoint-seconds", "86400"], env,
                              self.log_dir)
        self.workers: list[Child] = []
        for n in range(workers):
            self.workers.append(spawn(f"worker-{n}", [
                "consume", "--instance-id", str(n), "--no-refit-on-drift",
                "--snapshot-wait", "5", *fold_in], env, self.log_dir))
        self._control = make_producer(self.settings)
        self.version = 0

    def _children(self) -> list[Child]:
        return [self.refitter, *self.workers]

    def check_alive(self) -> None:
        """Raise `SimulationError` with its log's tail if a process has exited."""
        for child in self._children():
            if child.proc.poll() is not None:
                tail = child.log.read_text()[-2000:] if child.log.exists() else ""
                raise SimulationError(f"{child.name} of {self.variant.name} exited with "
                                      f"{child.proc.returncode}:\n{tail}")

    def _wait(self, what: str, predicate: Any) -> None:
        deadline = time.monotonic() + self.timeout
        while not predicate():
            self.check_alive()
            if time.monotonic() > deadline:
                raise SimulationError(f"{self.variant.name}: {what} took over {self.timeout} s")
            time.sleep(0.05)

    def ready(self) -> None:
        """Wait until every process serves /metrics (and so has started)."""
        self._wait("starting the processes", lambda: all(c.scrape() for c in self._children()))

    def catch_up(self, sent: int) -> None:
        """Wait until the refitter has read `sent` events and the workers have handled them."""
        self._wait(f"the refitter reading {sent} events", lambda: total(
            self.refitter.scrape(), "refold_refitter_events_read") >= sent)
        self._wait(f"the workers handling {sent} events", lambda: total(
            [w.scrape() for w in self.workers], "refold_events_consumed_total") >= sent)

    def refit(self, reason: str = "simulator") -> int:
        """A refit of everything read, then every worker serving it; the new version (the
        previous one if the gate refused the candidate)."""
        before = self._refits()
        request = RefitRequest(reason=f"simulated shop: {reason}", detector="simulator",
                               time=time.time(), worker="simulator")
        produce(self._control, self.settings.topic("control"), encode_request(request),
                "simulator")
        self._control.flush(10)
        self._wait("a refit", lambda: self._refits() > before)
        published = values(self.refitter.scrape(), "refold_model_version")
        self.version = int(max(published, default=0))
        self._wait("the workers to serve the new model", lambda: all(
            min(values(w.scrape(), "refold_model_version"), default=0) >= self.version
            for w in self.workers))
        return self.version

    def measured(self, impressions: int) -> dict[str, float]:
        """The workers' view of the run from their /metrics, once they have read `impressions`
        impressions: impressions read, CTR@1 and CTR@3 of the slots they counted."""
        def pages() -> list:
            return [w.scrape() for w in self.workers]

        self._wait(f"the workers reading {impressions} impressions",
                   lambda: total(pages(), "refold_impressions_total") >= impressions)
        samples = pages()

        def rate(slots: tuple[str, ...]) -> float:
            shown = sum(total(samples, "refold_impression_slots_total", slot=s) for s in slots)
            clicked = sum(total(samples, "refold_impression_clicks_total", slot=s)
                          for s in slots)
            return round(clicked / shown, 4) if shown else 0.0

        return {"impressions": int(total(samples, "refold_impressions_total")),
                "ctr_at_1": rate(("1",)), "ctr_at_3": rate(("1", "2", "3"))}

    def _refits(self) -> float:
        return total(self.refitter.scrape(), "refold_refits_total")

    def close(self) -> None:
        for child in self._children():
            child.stop(timeout=30)
        admin = make_admin(self.settings)
        names = [s.name for s in topic_specs(self.settings)]
        for fut in admin.delete_topics(names, request_timeout=30).values():
            with contextlib.suppress(KafkaException):  # a topic left behind is only clutter
                fut.result(30)
        store = (Path(self.settings.home) / "refit"
                 / f"{self.settings.topic('events')}.{self.settings.refit_group}.store")
        store.unlink(missing_ok=True)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
