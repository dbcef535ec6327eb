"""The fault tests of the local stores: kill -9 in the middle of a restore from the changelog,
and during a model swap with snapshots followed; the final state and lists equal an
uninterrupted run's (`tests.integration.test_faults`: its input, helpers and equality)."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from refold.core.config import Settings
from tests.conftest import delete_prefixed

from . import test_faults as faults
from .helpers import committed, wait_for
from .outcome import BOTH, Final, assert_same_as, final_lists, final_state
from .test_faults import (
    FAST,
    TXN_TIMEOUT_MS,
    Input,
    make_topics,
    publish,
    spawn,
)

pytestmark = pytest.mark.slow

world, reference = faults.world, faults.reference  # the fault tests' input and uninterrupted run


def test_kill_9_during_a_restore_which_the_next_worker_finishes(
        bootstrap, unique_prefix, world, reference, tmp_path, refold_process) -> None:
    """A worker on a new disk is killed while it restores its stores from the changelog; the
    next one, on that disk, goes on from the chunks the first one checkpointed."""
    s = make_topics(bootstrap, unique_prefix, world)
    log, half = tmp_path / "worker.log", world.total // 2
    publish(s, world, hi=half)
    first = spawn(refold_process, s, world, log, static=True)
    wait_for(lambda: committed(s, topics=BOTH) == half, 60, "the first half")
    first.kill()
    assert first.wait(30) == -signal.SIGKILL
    new_disk = s.replace(state_dir=str(tmp_path / "new-disk"), state_restore_chunk_records=60)
    second = spawn(refold_process, new_disk, world, log, crash="restore_chunk:4", static=True)
    assert second.wait(60) == -signal.SIGKILL, log.read_text()[-3000:]
    killed_at = len(log.read_text())
    publish(s, world, lo=half)
    last = spawn(refold_process, new_disk, world, log, static=True)
    try:
        wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the last worker")
    finally:
        last.stop()
    after = log.read_text()[killed_at:]
    starts = [int(line.split("from ")[1].split(")")[0].replace(",", ""))
              for line in after.splitlines() if "restore of partition" in line]
    assert starts and max(starts) > 0, after[-3000:]  # went on from a checkpoint
    assert_same_as(reference, s)


def swap_run(refold_process, s: Settings, world: Input, log: Path, crash: str | None) -> None:
    """The first half with the model of `--model`; then a new version on the snapshots topic,
    which the worker (following snapshots) swaps in, or is killed while swapping in (`crash`:
    its successor loads it at start); then the second half."""
    from consumers.snapshot_publisher import SnapshotPublisher
    from models.snapshot import Snapshot

    half = world.total // 2
    publish(s, world, hi=half)
    args = ["consume", "--model", str(world.model_path), "--instance-id", "0",
            "--batch-size", str(s.batch_size), "--k", str(s.k), "--no-refit-on-drift",
            "--snapshot-wait", "5", "--producer-config", f"transaction.timeout.ms={TXN_TIMEOUT_MS}",
            *(arg for k, v in FAST.items() for arg in ("--consumer-config", f"{k}={v}")),
            "--consumer-config", f"group.instance.id={s.topic_prefix}0"]
    env = {"REFOLD_TEST_CRASH_AT": crash} if crash else None
    worker = refold_process(s, *args, log=log, env=env)
    wait_for(lambda: committed(s, topics=BOTH) == half, 60, "the first half")
    f = world.factors
    y = f.Y * np.float32(0.9) + np.float32(0.01)  # another version of the same items
    with SnapshotPublisher(s) as publisher:
        publisher.publish(Snapshot.build(f.version + 1, time.time(), f.item_ids, y))
    if crash:
        assert worker.wait(60) == -signal.SIGKILL, log.read_text()[-3000:]
        worker = refold_process(s, *args, log=log)
    worker.wait_for_line(f"serving model version {f.version + 1}", 60)
    publish(s, world, lo=half)
    try:
        wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the second half")
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def swap_reference(bootstrap: str, world: Input, tmp_path_factory) -> Final:
    """`swap_run` uninterrupted."""
    from .processes import RefoldProcess

    s = make_topics(bootstrap, f"t-swapref{random.randrange(1 << 30):x}.", world)
    log, made = tmp_path_factory.mktemp("swapref") / "worker.log", []

    def launch(settings, *args, log, env=None):
        made.append(RefoldProcess(settings, *args, log=log, env=env))
        return made[-1]

    try:
        swap_run(launch, s, world, log, crash=None)
        return Final(final_state(s), final_lists(s))
    finally:
        for proc in made:
            proc.kill()
        delete_prefixed(bootstrap, s.topic_prefix)


def test_kill_9_during_a_model_swap_with_snapshots_followed(
        bootstrap, unique_prefix, world, swap_reference, tmp_path, refold_process) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    log = tmp_path / "worker.log"
    swap_run(refold_process, s, world, log, crash="swap:1")
    assert "REFOLD_TEST_CRASH_AT=swap:1: killing this process" in log.read_text()
    versions = {v[3] for v in final_lists(s).values()}
    assert versions == {world.factors.version, world.factors.version + 1}  # both served
    assert_same_as(swap_reference, s)
