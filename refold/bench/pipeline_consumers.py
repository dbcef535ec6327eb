"""The two consumers of `refold bench pipeline`, each run in a process of its own.

`refold` is the fold-in worker as `refold consume --model` builds it (with its monitor and its
snapshot follower; `fold_in` changes `FoldInConfig` settings), `refold-memory` the same with every
user in memory (`state_store = "memory"`, the state as it was before the local stores);
`passthrough` is
`PassThrough` in the same `TransactionalLoop`: same consumer and transactional-producer settings,
same batch size, no model. `python -m refold.bench.pipeline_consumers SPEC` runs one (SPEC: the
JSON `ConsumerProcess` writes) and prints what its loop did (`LoopStats` and its processor's
counts, the pauses of Python's cyclic garbage collector by generation, and its slowest batch) as
one JSON line; SIGTERM lets it commit its batch and leave, as `refold consume` does.
"""

from __future__ import annotations

import cProfile
import gc
import json
import logging
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from consumers.batch import WithoutHooks
from consumers.loop import Output, TransactionalLoop
from refold.core.config import Settings
from refold.core.errors import AppError
from refold.core.schemas import decode_event, encode

KINDS = ("refold", "refold-memory", "passthrough")
"""refold with its users in local stores (the default); refold with every user in memory
(`state_store = "memory"`, as before the stores); the pass-through."""
MODULE = "refold.bench.pipeline_consumers"


class BenchError(AppError):
    """A consumer process failed, or a run did not finish."""


class PassThrough(WithoutHooks):
    """A `Processor` that decodes every event and re-produces it, keyed by its user."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.counts: Counter[str] = Counter()
        self._staged = 0

    def handle(self, messages: list[Message], out: Output) -> None:
        for msg in messages:
            event = decode_event(msg.value())
            out.produce(self.topic, encode(event), event.user_id)
        self._staged = len(messages)

    def promote(self) -> None:
        self.counts["events"] += self._staged
        self.counts["outputs"] += self._staged
        self._staged = 0

    def rollback(self) -> None:
        self._staged = 0

    def close(self) -> None:
        pass


def _build(kind: str, settings: Settings, model: Path, fold_in: dict[str, Any],
           **loop_options: Any) -> tuple[TransactionalLoop, Any, str]:
    """The loop, its processor (with `counts` and `close`), and the name of its count of
    outputs."""
    from consumers.foldin_worker import transactional_id

    if kind in ("refold", "refold-memory"):  # as `refold consume --model` runs it: monitored,
        from consumers.assembly import WorkerOptions, assemble_worker  # following snapshots
        from consumers.model_source import load_item_factors

        if kind == "refold-memory":
            settings = settings.replace(state_store="memory")
        options = WorkerOptions(fold_in=fold_in, snapshot_wait=10.0, refit_on_drift=False,
                                **loop_options)
        worker = assemble_worker(settings, load_item_factors(model), options).start()
        return worker.loop, _Counted(worker), "recommendations"
    if kind == "passthrough":
        proc = PassThrough(settings.topic("recommendations"))
        loop = TransactionalLoop(
            settings, proc, topics=[settings.topic("events")], group_id=settings.consumer_group,
            transactional_id=transactional_id(settings), **loop_options)
        return loop, proc, "outputs"
    raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


class GcClock:
    """Counts and times the cyclic collector's pauses per generation while entered
    (`gc.callbacks`): whether full collections fall inside a run, and how long they stop it.

    >>> with GcClock() as clock:
    ...     _ = gc.collect()
    >>> clock.summary()["gc_collections"][2] >= 1
    True
    """

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        g, took = info["generation"], time.perf_counter() - self._started
        self.counts[g] += 1
        self.seconds[g] += took
        self.longest[g] = max(self.longest[g], took)

    def summary(self) -> dict[str, list]:
        """Per generation (0, 1, 2): collections, their total and longest pause in ms."""
        return {"gc_collections": list(self.counts),
                "gc_pause_ms": [s * 1000 for s in self.seconds],
                "gc_longest_ms": [s * 1000 for s in self.longest]}


class _Counted:
    """An assembled worker as `serve` reads it: its worker's counts, and `close`."""

    def __init__(self, worker: Any) -> None:
        self.counts, self.close = worker.worker.counts, worker.close


def serve(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one consumer until it is done (or SIGTERM); what its loop did."""
    from consumers.assembly import settle_process

    settings = Settings(**spec["settings"])
    loop, processor, outputs = _build(spec["kind"], settings, Path(spec["model"]),
                                      spec["fold_in"], max_messages=spec["max_messages"],
                                      idle_exit=spec["idle_exit"])
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    settle_process(settings)  # as `refold consume` does
    try:
        cpu = time.process_time()
        with GcClock() as clock:
            if spec["profile"] is None:
                stats = loop.run()
            else:
                profiler = cProfile.Profile()
                stats = profiler.runcall(loop.run)
                profiler.dump_stats(spec["profile"])
    finally:
        processor.close()
    counts = processor.counts
    return {"seconds": stats.busy_seconds, "messages": stats.messages, "batches": stats.batches,
            "aborts": stats.aborts, "outputs": counts[outputs], "counts": dict(counts),
            "longest_handle_ms": stats.longest_handle_seconds * 1000,
            "longest_commit_ms": stats.longest_commit_seconds * 1000,
            "handle_seconds": stats.handle_seconds, "commit_seconds": stats.commit_seconds,
            "promote_seconds": stats.promote_seconds, "cpu_seconds": time.process_time() - cpu,
            **clock.summary()}


class ConsumerProcess:
    """One consumer in a child process: `stop()` it or let it end, then read its `result()`."""

    def __init__(self, kind: str, settings: Settings, model: Path, *,
                 fold_in: dict[str, Any] | None = None, max_messages: int | None = None,
                 idle_exit: float, profile: Path | None = None) -> None:
        self.kind = kind
        spec = {"kind": kind, "settings": settings.model_dump(mode="json"), "model": str(model),
                "fold_in": fold_in or {},
                "max_messages": max_messages, "idle_exit": idle_exit,
                "profile": None if profile is None else str(profile)}
        self.proc = subprocess.Popen([sys.executable, "-m", MODULE, json.dumps(spec)],
                                     stdout=subprocess.PIPE, text=True)

    def stop(self) -> None:
        """SIGTERM: the loop commits its current batch and leaves the group."""
        if self.proc.poll() is None:
            self.proc.terminate()

    def result(self, timeout: float) -> dict:
        """What the process reported; `BenchError` if it failed or took longer than `timeout`."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise BenchError(f"the {self.kind} consumer took over {timeout:.0f} s") from None
        if self.proc.returncode != 0 or not out.strip():
            raise BenchError(f"the {self.kind} consumer exited with code {self.proc.returncode} "
                             "(its error is above)")
        return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(serve(json.loads(sys.argv[1]))), flush=True)
