"""Fault tests against the real broker: a worker that dies loses nothing and counts nothing twice.

Every scenario replays the same input: a seeded synthetic world (sessions, funnels, dismissals,
users and items arriving; the model is fitted on the first half, so later items are outside it),
with impressions of what users were shown (the same few popular items again and again, so
exposure feedback demotes them), re-sent events and impressions (same ids), and one poison
message in every partition of both topics. Workers explore (Plackett-Luce) and demote. Each run's
FINAL state (the changelog, latest per key: every user's history, feedback, blocks and recent
ids, every partition's popularity, new items' interactions and vectors, and offsets) and FINAL
recommendations (latest per user, read_committed, with their rec_id and propensities) must equal
those of one uninterrupted run: all state is partition scoped and exploration is seeded from the
list's id, so popular, cold-start and explored lists are reproducible too.

Workers run as `refold consume` subprocesses where they are killed with SIGKILL (at random
moments, and at the `REFOLD_TEST_CRASH_AT` points between produce and commit), in threads
otherwise. Short session and transaction timeouts keep the suite to a couple of minutes.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumers import model_source
from models.foldin import ItemFactors
from producers.sdk import EventProducer
from producers.synth import SynthConfig, generate
from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.schemas import Event, Impression, Item, ShownItem
from refold.core.topics import create_topics

from .helpers import committed, delete_topics, free_port, wait_for
from .outcome import BOTH, Final, assert_same_as, dead_letters, final_lists, final_state
from .processes import RefoldProcess
from .workers import WorkerThread

pytestmark = pytest.mark.slow

PARTITIONS = 3
N_EVENTS = 3000
N_IMPRESSIONS = 400
RESENT = 40 + 20
"""Events and impressions sent twice."""
FAST = {"heartbeat.interval.ms": 250, "session.timeout.ms": 6000}
"""A dead member is noticed within 6 s; members learn of a rebalance within 250 ms."""
TXN_TIMEOUT_MS = 8000
"""A dead worker's open transaction is aborted by the broker after 8 s."""


@dataclass(frozen=True)
class Input:
    """What every scenario publishes, in order: events and impressions (some re-sent) and poison
    messages."""

    messages: list[tuple[Event | Impression | None, tuple[str, int] | None]]
    """(event or impression, None), or (None, (topic, partition)) for a poison message."""
    catalog: list[Item]
    factors: ItemFactors
    model_path: Path
    first_timestamp: int
    """Kafka timestamp (ms) of the first message; the j-th gets this + j."""

    @property
    def total(self) -> int:
        return len(self.messages)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Input:
    log, catalog, _ = generate(SynthConfig(n_users=250, n_items=150, n_events=N_EVENTS, seed=3))
    events = list(log.iter_events("w"))
    rng = random.Random(5)
    # re-sent events: the same ids again, a few positions later (inside the de-dup window)
    for j in sorted(rng.sample(range(100, N_EVENTS - 50), 40), reverse=True):
        events.insert(j + rng.randrange(1, 30), events[j])
    messages: list = [(ev, None) for ev in events]
    for j, imp in impressions(events, rng):
        messages.insert(j, (imp, None))
    for p in range(PARTITIONS):
        for topic in BOTH:
            messages.insert(rng.randrange(200, len(messages) - 200), (None, (topic, p)))
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model_source.save_npz(path, model_source.fit_log(log[: N_EVENTS // 2],
                                                     worker_settings("", "")))
    # every worker serves the model as `refold consume --model` loads it
    return Input(messages, list(catalog), model_source.load_item_factors(path), path,
                 int(time.time() * 1000))


def impressions(events: list[Event], rng: random.Random) -> list[tuple[int, Impression]]:
    """(index, impression) pairs, last index first: before some events, the page that showed the
    event's item with two of the most popular items (unanswered, again and again); the last 20
    are sent again a few positions later."""
    popular = [i for i, _ in Counter(ev.item_id for ev in events).most_common(6)]
    out = []
    for n, j in enumerate(sorted(rng.sample(range(50, N_EVENTS - 50), N_IMPRESSIONS))):
        ev = events[j]
        shown = [ev.item_id, *[i for i in rng.sample(popular, 3) if i != ev.item_id][:2]]
        rng.shuffle(shown)
        out.append((j, Impression(
            impression_id=f"x{n}", rec_id=f"r{n}", user_id=ev.user_id, shown_at=ev.event_time,
            source="collaborative", items=[ShownItem(item_id=i, position=k + 1)
                                           for k, i in enumerate(shown)])))
    for j, imp in list(out[-20:]):  # re-sent: the same ids again, a little later
        out.append((j + rng.randrange(1, 20), imp))
    return sorted(out, key=lambda x: x[0], reverse=True)


STATE_ROOT = Path(tempfile.mkdtemp(prefix="refold-fault-state-"))
"""The workers' local stores, one directory per test's prefix (removed at exit)."""
atexit.register(shutil.rmtree, STATE_ROOT, True)


def worker_settings(bootstrap: str, prefix: str) -> Settings:
    return Settings(bootstrap_servers=bootstrap or None, topic_prefix=prefix,
                    events_partitions=PARTITIONS, consumer_group=f"{prefix}foldin", batch_size=40,
                    k=10, factors=8, iterations=4, trending_half_life_seconds=3600.0,
                    exploration="plackett_luce", exploration_temperature=0.3,
                    exposure_min_count=2, exposure_strength=0.5,
                    state_dir=str(STATE_ROOT / prefix.rstrip(".")))


def make_topics(bootstrap: str, prefix: str, world: Input) -> Settings:
    """The topics, and the catalog: a side input whose changes apply between batches, at no
    fixed point of the event stream (like a new model version), so it comes first here."""
    s = worker_settings(bootstrap, prefix)
    create_topics(make_admin(s), s)
    with EventProducer(s) as producer:
        for item in world.catalog:
            producer.send_item(item)
    return s


def publish(settings: Settings, world: Input, pause: float = 0.0, lo: int = 0,
            hi: int | None = None) -> None:
    """Messages `lo:hi` in order (`pause` s between chunks of 300: a replay)."""
    with EventProducer(settings) as producer:
        for j, (msg, poison) in enumerate(world.messages[lo:hi], lo):
            # Kafka timestamps are part of the input: a worker reads the events and the
            # impressions of a partition in their order, so every run gets the same ones
            ts = world.first_timestamp + j
            if isinstance(msg, Event):
                producer.send(msg, timestamp=ts)
            elif isinstance(msg, Impression):
                # a page is reported after the list it shows was read, and before the user
                # acts on it: seconds apart, so each is on the broker before the next message
                producer.flush()
                producer.send_impression(msg, timestamp=ts)
                producer.flush()
            else:
                topic, p = poison
                producer.producer.produce(settings.topic(topic), POISON[topic], b"poison",
                                          partition=p, timestamp=ts)
            if pause and j % 300 == 299:
                producer.flush()
                time.sleep(pause)


POISON = {"events": b'{"v":1,"event_id":', "impressions": b'{"v":1,"impression_id":'}


def replay_in_background(settings: Settings, world: Input, pause: float, lo: int = 0,
                         hi: int | None = None) -> threading.Thread:
    thread = threading.Thread(target=publish, args=(settings, world, pause, lo, hi), daemon=True)
    thread.start()
    return thread


class ThreadWorker(WorkerThread):
    """A worker in this process, running from its creation (stopped with `stop`)."""

    def __init__(self, settings: Settings, world: Input, **options) -> None:
        options.setdefault("consumer_extra", FAST)
        super().__init__(settings, world.factors, join_timeout=60, **options)
        self.start()


def spawn(refold_process, settings: Settings, world: Input, log: Path, instance: str = "0",
          crash: str | None = None, static: bool = False,
          guarantee: str = "exactly-once") -> RefoldProcess:
    """`refold consume` in a subprocess, its log in `log`. `static`: a static group member,
    which takes its predecessor's place at once (no wait for its session to time out)."""
    conf = [*(f"{k}={v}" for k, v in FAST.items())]
    if static:
        conf.append(f"group.instance.id={settings.topic_prefix}{instance}")
    args = ["consume", "--model", str(world.model_path), "--instance-id", instance,
            "--batch-size", str(settings.batch_size), "--k", str(settings.k),
            "--no-follow-snapshots", "--no-refit-on-drift", "--guarantee", guarantee,
            "--producer-config", f"transaction.timeout.ms={TXN_TIMEOUT_MS}"]
    for c in conf:
        args += ["--consumer-config", c]
    return refold_process(settings, *args, log=log,
                          env={"REFOLD_TEST_CRASH_AT": crash} if crash else None)


# -- the final state and lists, and the uninterrupted run they must equal


@pytest.fixture(scope="module")
def reference(bootstrap: str, world: Input) -> Iterator[Final]:
    """One uninterrupted worker over the whole input."""
    prefix = f"t-ref{random.randrange(1 << 30):x}."
    s = make_topics(bootstrap, prefix, world)
    publish(s, world)
    w = ThreadWorker(s, world)
    wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the reference run")
    w.stop()
    assert w.worker.counts["duplicates"] == RESENT
    assert w.worker.counts["impressions"] == N_IMPRESSIONS
    assert w.worker.counts["demoted"] > 0  # exposure feedback changed lists
    yield Final(final_state(s), final_lists(s))
    delete_topics(prefix)


def test_the_reference_run_exercises_every_kind_of_state(reference: Final) -> None:
    sources = {v[2] for v in reference.lists.values()}
    assert sources >= {"collaborative", "popular"}
    items = [v for k, v in reference.state.items() if b"/item/" in k]
    assert any(v.get("users") and v.get("vec") for v in items)  # new items with vectors
    metas = [v for k, v in reference.state.items() if k.endswith(b"/meta")]
    assert len(metas) == PARTITIONS
    # popularity was renormalised (a list: the adaptive trending's rungs), and its choice kept
    assert len({str(m["t_ref"]) for m in metas}) == PARTITIONS
    assert all("trend" in m for m in metas)
    drawn = [[p for p in v[8] if p is not None] for v in reference.lists.values()]
    explored = [p for p in drawn if p and min(p) < 1.0]
    assert len(explored) == len(reference.lists)  # every list drawn, with its propensities
    feedback = [v["history"]["feedback"] for v in reference.state.values()
                if "history" in v and v["history"].get("feedback")]
    assert any(f["exposure"] for f in feedback) and any(f["slots"] for f in feedback)


def test_kill_9_at_random_points_and_at_each_crash_point(bootstrap, unique_prefix, world,
                                                         reference, tmp_path,
                                                         refold_process) -> None:
    """Five workers in turn, each SIGKILLed: at a random moment, or at a crash point between
    produce and commit. The input is replayed in steps, so every kill lands mid-stream."""
    s = make_topics(bootstrap, unique_prefix, world)
    log, rng = tmp_path / "worker.log", random.Random(11)
    crashes = ["after_produce:3", None, "after_offsets:2", None, "after_commit:4"]
    steps = [world.total * (k + 1) // (len(crashes) + 1) for k in range(len(crashes))]
    published = 0
    for crash, upto in zip(crashes, steps, strict=True):
        publish(s, world, lo=published, hi=upto)
        published = upto
        before = committed(s, topics=BOTH)
        proc = spawn(refold_process, s, world, log, crash=crash, static=True)
        if crash is None:  # a random moment once it made progress
            wait_for(lambda: committed(s, topics=BOTH) > before, 30, "progress")  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.3))
            proc.kill()
        assert proc.wait(60) == -signal.SIGKILL, log.read_text()[-3000:]
        assert committed(s, topics=BOTH) < published, "each kill lands mid-stream"
    publish(s, world, lo=published)
    start = len(log.read_text())
    last = spawn(refold_process, s, world, log, static=True)
    try:
        wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the last worker")
    finally:
        last.stop()
    text = log.read_text()
    assert text.count("killing this process") == 3
    # the last worker restored from the changelog; an earlier one may be killed while one of
    # its partitions is still restoring (the others already in work), before that line
    assert "restored partition(s)" in text[start:]
    assert 1 < text.count("restored partition(s)") <= 6
    assert_same_as(reference, s)


def test_two_workers_one_killed_the_survivor_restores_its_partitions(
        bootstrap, unique_prefix, world, reference, tmp_path, refold_process) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a, b = (spawn(refold_process, s, world, log, name)
            for name, log in (("a", log_a), ("b", log_b)))
    try:
        wait_for(lambda: all("restored partition(s)" in log.read_text()
                             for log in (log_a, log_b)), 30, "both workers to own partitions")
        replay = replay_in_background(s, world, pause=0.3)
        wait_for(lambda: committed(s, topics=BOTH) > world.total // 3, 60, "a third of the input")
        a.kill()
        assert a.wait(10) == -signal.SIGKILL
        replay.join(60)
        wait_for(lambda: committed(s, topics=BOTH) == world.total, 90, "the survivor to finish")
    finally:
        for proc in (a, b):
            proc.stop()
    taken_over = [line for line in log_b.read_text().splitlines()
                  if "restored partition(s)" in line][1:]
    assert taken_over, log_b.read_text()[-3000:]  # after its own start, A's partitions
    assert_same_as(reference, s)


def test_scale_one_two_one_during_a_replay(bootstrap, unique_prefix, world, reference) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    a = ThreadWorker(s, world)

    def owned(w: ThreadWorker) -> set[int]:  # events partitions (impressions come with them)
        return {p for t, p in w.loop.assigned if t == s.topic("events")}

    wait_for(lambda: len(owned(a)) == PARTITIONS, 30, "the first worker's assignment")
    half = world.total // 2
    replay = replay_in_background(s, world, pause=0.2, hi=half)
    wait_for(lambda: committed(s, topics=BOTH) > world.total // 4, 60, "a quarter of the input")
    b = ThreadWorker(s.replace(instance_id="b"), world)
    wait_for(lambda: owned(b) and len(owned(a)) < PARTITIONS, 30, "a rebalance")
    replay.join(60)
    replay = replay_in_background(s, world, pause=0.2, lo=half)  # B surely has events to handle
    wait_for(lambda: b.worker.counts["events"] > 0, 60, "the second worker's first events")
    b.stop()
    wait_for(lambda: len(owned(a)) == PARTITIONS, 30, "the partitions to come back")
    replay.join(60)
    wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the end")
    a.stop()
    assert b.worker.counts["events"] > 0
    assert len(a.worker.restores) >= 2 and b.worker.restores  # taken over, handed back
    assert_same_as(reference, s)


def test_a_poison_message_in_every_partition_is_a_dead_letter_and_nothing_else_is_lost(
        bootstrap, unique_prefix, world, reference) -> None:
    s = make_topics(bootstrap, unique_prefix, world)
    publish(s, world)
    w = ThreadWorker(s, world)
    wait_for(lambda: committed(s, topics=BOTH) == world.total, 60, "the input")
    w.stop()
    letters = dead_letters(s)
    assert sorted(m.value() for m in letters) == sorted(list(POISON.values()) * PARTITIONS)
    assert {dict(m.headers())["error_class"] for m in letters} == {b"not_json"}
    assert w.worker.counts["dead_letters"] == 2 * PARTITIONS
    assert w.worker.counts["events"] + w.worker.counts["impressions"] + RESENT \
        + 2 * PARTITIONS == world.total
    assert_same_as(reference, s)


@pytest.mark.skipif(bool(os.environ.get("REFOLD_BOOTSTRAP_SERVERS")),
                    reason="a cluster is named: no local broker to restart")
def test_a_broker_restart_stalls_processing_which_then_resumes(tmp_path, world, reference) -> None:
    """A broker of its own (other ports, a temporary home): the shared one is left alone."""
    from refold.broker import LocalBroker
    from refold.core.config import load_settings

    libs = LocalBroker(load_settings()).ensure_libs()
    (tmp_path / libs.parent.name).symlink_to(libs.parent)
    broker = LocalBroker(Settings(home=str(tmp_path), broker_port=free_port(),
                                  controller_port=free_port(), broker_heap="512m"))
    try:
        broker.start()
        s = make_topics(broker.bootstrap, "bounce.", world)
        half = world.total // 2
        publish(s, world, hi=half)
        w = ThreadWorker(s, world)
        wait_for(lambda: committed(s, topics=BOTH) > half // 3, 60, "progress before the restart")
        broker.stop()
        stalled = w.loop.stats.messages
        time.sleep(2.0)
        assert w.loop.stats.messages == stalled and w.thread.is_alive(), repr(w.error)  # stalled
        broker.start()
        publish(s, world, lo=half)
        # the group rejoins on a broker that has just loaded its coordinators: slow on a busy
        # machine (~15 s here when quiet); a failure says how far the worker got and why
        try:
            wait_for(lambda: committed(s, topics=BOTH) == world.total, 120, "processing to resume")
        except AssertionError as exc:
            got = committed(s, topics=BOTH)
            raise AssertionError(f"{exc}: committed {got} of {world.total}, worker alive "
                                 f"{w.thread.is_alive()}, error {w.error!r}, messages "
                                 f"{w.loop.stats.messages} (stalled at {stalled})") from exc
        w.stop()
        assert w.loop.stats.messages > stalled
        assert_same_as(reference, s)
    finally:
        broker.stop()
