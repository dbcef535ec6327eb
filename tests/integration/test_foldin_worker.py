"""The fold-in worker against the real broker: exact lists, one or two workers, aborts, SIGTERM.

Lists are compared with an offline recompute: the same `OnlineRecommender` fed the same events,
each in the partition it was read from. State other than a user's (popularity, co-visitation) is
kept per partition, so the comparison is exact whatever the batches were (the exploration
policy's draw too: it is seeded by the list's id); the recommender here is configured so that
every user with an event is served collaboratively (ratings count as positive, CF from the first
event on). `test_faults` compares popular and blended lists too.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.feedback import Facts, Feedback
from consumers.foldin_worker import FoldInWorker
from consumers.model_source import fit_log
from consumers.recs_view import RecommendationsView
from models.recommender import FoldInConfig, OnlineRecommender
from models.weights import EventWeights
from producers.datasets import load_movielens
from producers.replay import replay
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_consumer

from .workers import WorkerThread

ROOT = Path(__file__).resolve().parents[2]
ML100K = Path(os.environ.get("REFOLD_ML100K", ROOT.parent / "shared" / "datasets" / "ml-100k"))
N_EVENTS = 5000
CONFIG = FoldInConfig(k=10, full_events=1, weights=EventWeights(ratings_as_positive=True))

FAST_REBALANCE = {"heartbeat.interval.ms": 250}
"""Members learn of a rebalance at their next heartbeat; cooperative rebalancing takes two."""
needs_data = pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")


@pytest.fixture(scope="module")
def data():
    """The first N_EVENTS of ml-100k as events, the catalog, and ALS fitted on that slice."""
    log, catalog = load_movielens(ML100K)
    log = log[:N_EVENTS]
    factors = fit_log(log, Settings(factors=16, iterations=5), CONFIG)
    return list(log.iter_events("ml")), list(catalog), factors


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=3, batch_size=250)


def recommender(factors) -> OnlineRecommender:
    return OnlineRecommender(CONFIG, factors)


def offline(events, catalog, factors, partitions) -> dict:
    """What every user's last list must be: the events learned in order, ranked once, and the
    list drawn from the candidates by the exploration policy (seeded by the list's id)."""
    rec = recommender(factors)
    for item in catalog:
        rec.set_item_active(item.item_id, item.active, item.categories)
    fb = Feedback(rec)
    return {recs.user_id: (ev, recs, fb.decide(ev, recs, Facts()))
            for ev, recs in rec.process_batch(events, partitions, k=fb.depth)}


def publish(settings, events, catalog=()) -> None:
    with EventProducer(settings) as producer:
        replay(events, producer, catalog=catalog, progress=False)


def committed(settings: Settings) -> dict[int, int]:
    """The group's committed offset per events partition (-1001: none)."""
    topic = settings.topic("events")
    consumer = make_consumer(settings, settings.consumer_group)
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def wait_until(predicate, timeout: float, what: str, *workers: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        states = [(w.loop.assigned, w.loop.stats, w.error, w.thread.is_alive()) for w in workers]
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {states}"
        time.sleep(0.2)


class Worker(WorkerThread):
    """A worker in a thread (`start`, then `stop`), serving `CONFIG` on `factors`."""

    def __init__(self, settings: Settings, factors, **options) -> None:
        options.setdefault("consumer_extra", FAST_REBALANCE)
        super().__init__(settings, recommender=recommender(factors), **options)


def wait_committed(settings: Settings, total: int, *workers: Worker, timeout: float = 60.0
                   ) -> None:
    wait_until(lambda: sum(max(o, 0) for o in committed(settings).values()) >= total,
               timeout, f"{total} committed events", *workers)


def assert_matches_offline(settings, events, catalog, factors) -> dict:
    read_in = {eid: p for p, rows in read_events(settings).items() for _, _, eid in rows}
    expected = offline(events, catalog, factors, [read_in[ev.event_id] for ev in events])
    with RecommendationsView(settings) as view:
        assert view.catch_up(20)
        got = dict(view.latest)
    assert set(got) == {ev.user_id for ev in events}
    for user, (ev, want, drawn) in expected.items():
        rec = got[user]
        assert rec.rec_id == drawn.rec_id and rec.policy.name == CONFIG.exploration, user
        assert [it.item_id for it in rec.items] == drawn.items, user
        assert [it.score for it in rec.items] == pytest.approx(drawn.scores, abs=1e-4), user
        assert [it.propensity for it in rec.items] == pytest.approx(drawn.propensities,
                                                                    rel=1e-4), user
        assert (rec.source, rec.model_version) == (want.source, want.model_version) == (
            "collaborative", factors.version)
        assert (rec.cause.event_id, rec.cause.event_time) == (ev.event_id, ev.event_time)
        assert rec.cause.topic == settings.topic("events")
    return got


@needs_data
def test_every_user_gets_the_list_an_offline_recompute_gives(settings, data):
    events, catalog, factors = data
    publish(settings, events, catalog)
    w = Worker(settings, factors, max_messages=len(events), idle_exit=30)
    batches = []
    w.worker.on_commit = batches.append
    t0 = time.perf_counter()
    w.start()
    w.thread.join(60)
    w.stop()
    stats = w.loop.stats
    print(f"\n{len(events)} events in {stats.busy_seconds:.2f} s busy, "
          f"{time.perf_counter() - t0:.2f} s with start: "
          f"{len(events) / stats.busy_seconds:,.0f} events/s")
    assert stats.messages == len(events) and stats.aborts == 0
    assert w.worker.counts["events"] == len(events)
    applied = [ev.event_id for b in batches for ev in b.events]
    assert sorted(applied) == sorted(ev.event_id for ev in events)
    assert sum(len(b.published) for b in batches) == w.worker.counts["recommendations"]
    assert all(b.model_version == factors.version and b.committed >= b.started for b in batches)
    got = assert_matches_offline(settings, events, catalog, factors)
    # the cause points at the user's last event where it was read
    offsets = committed(settings)
    for rec in got.values():
        assert rec.cause.offset < offsets[rec.cause.partition]
    assert sum(offsets.values()) == len(events)


@needs_data
def test_two_workers_split_the_partitions_and_agree_with_one(settings, data):
    events, catalog, factors = data
    events = events[:2000]
    publish(settings, [], catalog)
    a = Worker(settings.replace(instance_id="a"), factors, idle_exit=60).start()
    b = Worker(settings.replace(instance_id="b"), factors, idle_exit=60).start()
    # Events go out once both own partitions: a partition that moves after its users' first
    # events would need their state restored on assignment (the changelog, not built yet).
    everything = {0, 1, 2}
    wait_until(lambda: a.loop.assigned and b.loop.assigned
               and {p for _, p in a.loop.assigned | b.loop.assigned} == everything,
               30, "both workers to own partitions", a, b)
    publish(settings, events)
    wait_committed(settings, len(events), a, b)
    assert not ({p for _, p in a.loop.assigned} & {p for _, p in b.loop.assigned})
    a.stop()
    b.stop()
    assert a.worker.counts["events"] > 0 and b.worker.counts["events"] > 0
    assert a.worker.counts["events"] + b.worker.counts["events"] == len(events)
    assert_matches_offline(settings, events, catalog, factors)


class FailOnce(FoldInWorker):
    """Fails the third batch after producing its lists, as a lost coordinator would."""

    batches = 0

    def handle(self, messages, out) -> None:
        super().handle(messages, out)
        self.batches += 1
        if self.batches == 3:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected",
                                            txn_requires_abort=True))


@needs_data
def test_an_aborted_batch_is_rolled_back_and_read_again(settings, data, monkeypatch):
    events, catalog, factors = data
    events = events[:1500]
    dup = events[-10:]  # re-sent events: the same ids again, applied once
    publish(settings, events + dup, catalog)
    monkeypatch.setattr("consumers.assembly.FoldInWorker", FailOnce)
    w = Worker(settings.replace(batch_size=200), factors, max_messages=len(events) + len(dup),
               idle_exit=30).start()
    w.thread.join(60)
    w.stop()
    assert isinstance(w.worker, FailOnce)
    # the injected abort, and at most one more: when the abort purged lists still queued in
    # the producer, its next transaction fails on the skipped sequence numbers
    # (OUT_OF_ORDER_SEQUENCE_NUMBER, an epoch bump) and is aborted and redone too
    assert 1 <= w.loop.stats.aborts <= 2
    assert w.worker.counts["events"] == len(events)
    assert w.worker.counts["duplicates"] == len(dup)
    assert_matches_offline(settings, events, catalog, factors)


def test_a_restarted_instance_fences_its_zombie(settings, data):
    """A zombie (stalled past its session, so the heir's start-up check no longer sees it; here
    it is live and the check is off) is fenced by the heir with its instance id."""
    from refold.core.kafka import KafkaFatalError

    events, _, factors = data
    events = events[:400]
    zombie = Worker(settings.replace(batch_size=20), factors, idle_exit=60).start()
    wait_until(lambda: zombie.loop.assigned, 30, "the first worker's assignment", zombie)
    heir = Worker(settings.replace(batch_size=20), factors, idle_exit=60,
                  check_instance=False).start()  # same id
    wait_until(lambda: heir.loop.assigned, 30, "the second worker's assignment", zombie, heir)
    publish(settings, events)
    wait_committed(settings, len(events), zombie, heir)
    zombie.thread.join(30)
    with pytest.raises(KafkaFatalError, match="fenced: another worker runs with"):
        zombie.stop()
    heir.stop()
    # the zombie's last transaction was aborted: every event counted once, by whoever committed
    assert zombie.worker.counts["events"] + heir.worker.counts["events"] == len(events)
    assert sum(committed(settings).values()) == len(events)


def test_a_live_twin_is_refused_once_not_fenced(settings, data):
    """Two live workers with one instance id: the second stops with one clear error (after a
    session timeout, in case the first were a ghost) and the first goes on, unfenced."""
    from consumers.instances import DuplicateInstance

    _, _, factors = data
    short = {**FAST_REBALANCE, "session.timeout.ms": 6000}
    first = Worker(settings, factors, idle_exit=60, consumer_extra=short).start()
    wait_until(lambda: first.loop.assigned, 30, "the first worker's assignment", first)
    twin = Worker(settings, factors, idle_exit=60, consumer_extra=short).start()
    twin.thread.join(30)
    with pytest.raises(DuplicateInstance, match=f"instance id '{settings.instance_id}' is in use"):
        twin.stop()
    assert first.thread.is_alive() and first.loop.assigned
    first.stop()


def read_events(settings: Settings) -> dict[int, list]:
    """The events topic as committed, per partition in offset order: (offset, user, event id)."""
    from consumers.tail import TopicTail
    from refold.core.schemas import decode_event

    tail, out = TopicTail(settings, settings.topic("events")), defaultdict(list)

    def keep(messages) -> None:
        for m in messages:
            ev = decode_event(m.value())
            out[m.partition()].append((m.offset(), ev.user_id, ev.event_id))

    try:
        assert tail.catch_up(keep, 20)
    finally:
        tail.close()
    return out


def test_sigterm_commits_the_batch_and_offsets_match_the_lists(settings, refold_process):
    from refold.core.schemas import Event

    n_users, n = 60, 6000
    events = [Event(event_id=f"e{i}", user_id=f"u{i % n_users}", item_id=f"i{(i * 7) % 97}",
                    event_type="click", event_time=1.7e9 + i) for i in range(n)]
    publish(settings, events)
    proc = refold_process(settings, "consume", "--batch-size", "20", "--idle-exit", "20",
                          capture=True)
    wait_until(lambda: sum(max(o, 0) for o in committed(settings).values()) > 0, 30,
               "a first commit")
    code, out = proc.finish()
    assert code == 0, proc.log_text()[-2000:]
    assert "consume:" in out
    offsets = {p: max(o, 0) for p, o in committed(settings).items()}
    assert 0 < sum(offsets.values()) < n, "SIGTERM should land mid-stream"
    # Exactly the committed events have lists: each user's list is caused by its last event
    # before the committed offset of its partition, and no user beyond it has one.
    expected = {}
    for p, rows in read_events(settings).items():
        for offset, user, event_id in rows:
            if offset < offsets[p]:
                expected[user] = (p, offset, event_id)
    with RecommendationsView(settings) as view:
        assert view.catch_up(20)
        got = {u: (r.cause.partition, r.cause.offset, r.cause.event_id)
               for u, r in view.latest.items()}
    assert got == expected
