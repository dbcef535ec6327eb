"""The state changelog against the real broker: a restore is the state, bit for bit; missing
state is an error; at least once, a crash repeats outputs but not effects; a failed abort."""

from __future__ import annotations

import logging
import signal

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumers.changelog import ChangelogError
from consumers.foldin_worker import FoldInWorker
from refold.core.kafka import make_admin
from refold.core.topics import create_topics, delete_topics
from tests.integration import test_faults as faults
from tests.integration.helpers import committed, wait_for
from tests.integration.outcome import BOTH, assert_same_as
from tests.integration.test_faults import (
    FAST,
    ThreadWorker,
    make_topics,
    publish,
    spawn,
)
from tests.integration.workers import WorkerThread

pytestmark = pytest.mark.slow

world, reference = faults.world, faults.reference  # the fault tests' input and uninterrupted run


def memory(worker: FoldInWorker, users: dict[str, int]) -> dict:
    """A worker's state as plain data: `users` (user -> partition; history, recent ids) as the
    worker sees them (read from its store when not in memory), and its partitions."""
    rec = worker.recommender
    known = {u: (rec.user_state(u), worker.state.event_ids(u, p), p) for u, p in users.items()}
    parts = {p: rec.partition(p).to_plain(rec.catalog.ids, rec.model_version) for p in range(3)}
    for plain in parts.values():
        for entry in plain["items"].values():
            entry.pop("vec", None)  # folded in by a solver: compared by the fault tests, nearly
    return {"users": known, "parts": parts}


@pytest.mark.parametrize("disk", ["same", "new"])
def test_a_new_worker_restores_exactly_the_state_the_last_one_had(bootstrap, unique_prefix,
                                                                  world, disk, tmp_path) -> None:
    """The same disk: the store is kept, only the changelog's tail is read (none here); a new
    disk: the store is rebuilt from the changelog. Users are read from the store on demand."""
    s = make_topics(bootstrap, unique_prefix, world).replace(state_dir=str(tmp_path / "a"))
    half = world.total // 2
    publish(s, world, hi=half)
    a = ThreadWorker(s, world)
    wait_for(lambda: committed(s, topics=BOTH) == half, 60, "half of the input")
    users = {u: p for u, p in user_partitions(s).items()}
    before = memory(a.worker, users)  # idle: nothing left to read
    a.stop()
    if disk == "new":
        s = s.replace(state_dir=str(tmp_path / "b"))
    b = ThreadWorker(s, world)
    wait_for(lambda: b.worker.restores, 30, "the restore")
    after = memory(b.worker, users)
    b.stop()  # (which drops the state: the partitions are revoked)
    report = b.worker.restores[0]
    assert report.partitions == [0, 1, 2] and len(users) > 100
    assert report.users == (len(users) if disk == "new" else 0)
    assert after["users"] == before["users"]
    assert after["parts"] == before["parts"]


def user_partitions(settings) -> dict[str, int]:
    """Every user of the changelog, with the changelog partition that holds it."""
    from consumers.changelog import parse_key
    from consumers.tail import TopicTail

    tail, out = TopicTail(settings, settings.topic("changelog"), batch=10_000), {}

    def keep(messages) -> None:
        for m in messages:
            kind, name = parse_key(m.key())
            if kind == "user":
                out[name] = m.partition()

    try:
        assert tail.catch_up(keep, 30)
    finally:
        tail.close()
    return out


def test_missing_state_is_an_error_not_a_silent_fresh_start(bootstrap, unique_prefix,
                                                            world) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    publish(s, world, hi=300)
    a = ThreadWorker(s, world)
    wait_for(lambda: committed(s, topics=BOTH) == 300, 60, "the input")
    a.stop()
    admin = make_admin(s)
    delete_topics(admin, [s.topic("changelog")])
    wait_for(lambda: s.topic("changelog") not in admin.list_topics(timeout=10).topics, 30,
             "the changelog to go")
    create_topics(admin, s)  # an empty changelog: offsets committed, state gone
    b = ThreadWorker(s, world)
    b.worker.changelog.timeout = 2.0
    b.thread.join(30)
    assert isinstance(b.error, ChangelogError)
    assert "does not reach the committed offset" in str(b.error)


def test_at_least_once_a_crash_repeats_outputs_but_the_state_is_exact(
        bootstrap, unique_prefix, world, reference, tmp_path, refold_process) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    publish(s, world)
    log = tmp_path / "worker.log"
    first = spawn(refold_process, s, world, log, crash="after_produce:12",
                  guarantee="at-least-once")
    assert first.wait(60) == -signal.SIGKILL, log.read_text()[-3000:]
    assert 0 < committed(s, topics=BOTH) < world.total
    last = spawn(refold_process, s, world, log, guarantee="at-least-once")
    try:
        wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the second worker")
    finally:
        last.stop()
    # the batch of the crash was read again: its events skipped as duplicates, by their ids
    assert "skipped as duplicates" in log.read_text()
    assert_same_as(reference, s, dead_letters_at_least_once=True)


class FailingAbort:
    """A transactional producer whose first abort fails as librdkafka's sometimes does."""

    def __init__(self, producer) -> None:
        self._producer, self.failed = producer, False

    def abort_transaction(self, *args):
        if not self.failed:
            self.failed = True
            raise KafkaException(KafkaError(KafkaError.INVALID_TXN_STATE, "injected",
                                            fatal=True))
        return self._producer.abort_transaction(*args)

    def __getattr__(self, name: str):
        return getattr(self._producer, name)


class FailOnce(FoldInWorker):
    """Fails its fourth batch after producing its outputs, as a lost coordinator would."""

    batches = 0

    def handle(self, messages, out) -> None:
        super().handle(messages, out)
        self.batches += 1
        if self.batches == 4:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected",
                                            txn_requires_abort=True))


def test_a_failed_abort_gets_a_new_producer_and_nothing_is_lost(
        bootstrap, unique_prefix, world, reference, monkeypatch, caplog) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    publish(s, world)
    monkeypatch.setattr("consumers.assembly.FoldInWorker", FailOnce)
    caplog.set_level(logging.WARNING, "consumers.loop")
    w = WorkerThread(s, world.factors, join_timeout=60, consumer_extra=FAST)
    w.loop.output.on_producer = FailingAbort
    w.start()
    wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the input")
    w.stop()
    assert w.loop.stats.aborts == 1
    assert "starting a new transactional producer" in caplog.text
    assert_same_as(reference, s)


@pytest.fixture(autouse=True)
def _no_stray_crash_hook(monkeypatch) -> None:
    monkeypatch.delenv("REFOLD_TEST_CRASH_AT", raising=False)
