"""Fixtures of the integration tests (a real broker; `tests/conftest.py` gives `bootstrap` and
`unique_prefix`):

- `make_settings(**changes)`: `Settings` for this test alone (its topic prefix, consumer and
  refit groups, a temporary home) on the broker, with every topic created;
- `settings`: `make_settings()` with the defaults (3 events partitions);
- `refold_process(settings, *args, log=None, env=None)`: `python -m refold ARGS` under those
  settings (`tests.integration.processes.RefoldProcess`); killed when the test ends;
- `worker_thread(settings, factors=None, **options)`: an assembled worker running on a thread
  (`tests.integration.workers.WorkerThread`, options of `WorkerOptions.bare`); stopped when the
  test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.topics import create_topics
from tests.integration.processes import RefoldProcess
from tests.integration.workers import WorkerThread

PARTITIONS = 3


@pytest.fixture
def make_settings(bootstrap: str, unique_prefix: str, tmp_path: Path
                  ) -> Callable[..., Settings]:
    """Settings of this test (its prefix, groups and home), with `changes`; topics created."""

    def make(**changes: Any) -> Settings:
        base = {"bootstrap_servers": bootstrap, "topic_prefix": unique_prefix,
                "events_partitions": PARTITIONS, "consumer_group": f"{unique_prefix}foldin",
                "refit_group": f"{unique_prefix}refit", "home": str(tmp_path / "home")}
        s = Settings(**{**base, **changes})
        create_topics(make_admin(s), s)
        return s

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def refold_process(tmp_path: Path) -> Iterator[Callable[..., RefoldProcess]]:
    """Launch `refold` processes; each one still running at the end of the test is killed."""
    launched: list[RefoldProcess] = []

    def launch(settings: Settings, *args: str, log: Path | None = None,
               env: dict[str, str] | None = None, capture: bool = False) -> RefoldProcess:
        log = log or tmp_path / f"{args[0] if args else 'refold'}-{len(launched)}.log"
        proc = RefoldProcess(settings, *args, log=log, env=env, capture=capture)
        launched.append(proc)
        return proc

    yield launch
    for proc in launched:
        proc.kill()


@pytest.fixture
def worker_thread() -> Iterator[Callable[..., WorkerThread]]:
    """Start assembled workers on threads; those still running at the end are stopped."""
    started: list[WorkerThread] = []

    def start(settings: Settings, factors: Any = None, **options: Any) -> WorkerThread:
        worker = WorkerThread(settings, factors, **options).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.thread.is_alive():
            worker.assembled.stop()
            worker.thread.join(worker.join_timeout)
