"""The refitter against a real broker: once, restart from its checkpoint, the drift hook, the gate,
SIGTERM, and a kill -9 in the middle of a publish."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import TopicPartition

import consumers.refitter as refitter_mod
from consumers.assembly import RefitterOptions, assemble_refitter
from consumers.refitter import Refitter, Triggers
from consumers.snapshots import SnapshotFollower, load_latest
from models.refit import Candidate
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_consumer, watermarks
from refold.core.schemas import Event

pytestmark = pytest.mark.slow

OPTIONS = RefitterOptions(holdout=0.1, triggers=Triggers(0, 0, 3600), serve_metrics=False)
"""A refitter that refits only when asked (or `--once`); factors, iterations, k: settings'."""


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=2, factors=8, iterations=5, k=10)


def send_events(settings: Settings, n: int, start: int = 0, items: int = 300) -> None:
    """Users who like one of 6 item clusters; one event per second of event time."""
    rng = np.random.default_rng(start)
    with EventProducer(settings) as producer:
        for t in range(start, start + n):
            u = int(rng.integers(0, 200))
            item = (u % 6) * (items // 6) + int(rng.integers(0, items // 6))
            producer.send(Event(event_id=f"e{t}", user_id=f"u{u}", item_id=f"i{item}",
                                event_type="purchase", event_time=1.7e9 + t))


def run_once(settings: Settings) -> Refitter:
    refitter = assemble_refitter(settings, OPTIONS)
    assert refitter.run(once=True, restore_timeout=20) == 0
    return refitter


def test_once_publishes_then_a_restart_resumes_from_its_checkpoint(settings):
    send_events(settings, 3000)
    first = run_once(settings)
    snap = load_latest(settings, timeout=20)
    assert first.published == 1 and snap.version == 1 and snap.factors == 8
    assert sum(snap.watermark.offsets.values()) == 3000
    assert snap.watermark.max_event_time == 1.7e9 + 2999
    assert snap.params["factors"] == 8 and snap.metrics["train_loss"] > 0
    assert first.checkpoint_path.exists()
    consumer = make_consumer(settings, settings.refit_group)  # offsets follow the checkpoint
    topic = settings.topic("events")
    committed = consumer.committed([TopicPartition(topic, p) for p in range(2)], timeout=10)
    consumer.close()
    assert sum(tp.offset for tp in committed) == 3000

    send_events(settings, 1000, start=3000)
    second = run_once(settings)
    assert second.store.events == 4000  # 3000 restored, only the 1000 new ones read
    snap2 = load_latest(settings, timeout=20)
    assert snap2.version == 2 and sum(snap2.watermark.offsets.values()) == 4000
    assert snap2.metrics["recall_at_k"] >= snap2.metrics["live_recall_at_k"] - OPTIONS.\
        max_recall_drop


def test_request_refit_hook_and_stop_from_another_thread(settings):
    send_events(settings, 2000)
    refitter = assemble_refitter(settings, OPTIONS)
    worker = threading.Thread(target=refitter.run, kwargs={"restore_timeout": 20})
    worker.start()
    deadline = time.monotonic() + 30
    while refitter.store.events < 2000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refitter.published == 0  # triggers are off
    refitter.request_refit("drift alarm: hit rate fell")
    while refitter.published == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    refitter.stop()
    worker.join(30)
    assert not worker.is_alive() and refitter.published == 1
    assert load_latest(settings, timeout=20).params["reason"] == "drift alarm: hit rate fell"


def test_gate_refuses_a_sabotaged_model_and_nothing_is_published(settings, monkeypatch):
    send_events(settings, 2000)
    run_once(settings)

    def sabotaged(data, params, warm=None, callback=None):
        Y = np.full((len(data.item_ids), params.factors), np.nan, np.float32)
        return Candidate(data.item_ids, Y, np.eye(params.factors))

    monkeypatch.setattr(refitter_mod, "train", sabotaged)
    send_events(settings, 500, start=2000)
    refitter = run_once(settings)
    assert refitter.refused == 1 and refitter.gate.refused_nonfinite == 1
    assert refitter.published == 0 and load_latest(settings, timeout=20).version == 1


def test_kill_9_mid_publish_leaves_the_old_version_live(settings, refold_process):
    def refit(*args: str):
        return refold_process(settings, "refit", *args)

    send_events(settings, 3000)
    assert refit("--once", "--chunk-bytes", "4096").wait(90) == 0
    follower = SnapshotFollower(settings)
    assert follower.load_latest(timeout=20).version == 1

    send_events(settings, 1000, start=3000)
    proc = refit("--once", "--chunk-bytes", "2048", "--flush-every", "2",
                 "--publish-pause", "5")  # slow enough that the kill lands mid-publish
    proc.wait_for_line("chunks delivered")
    proc.kill()
    assert "publishing snapshot v2" in proc.log_text()
    written = topic_keys(settings, committed_only=False)
    assert "2/0" in written and "2/manifest" not in written  # killed in the middle
    assert not any(k.startswith("2/") for k in topic_keys(settings))  # in an open transaction

    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert follower.poll(0.5) is None
    assert follower.live_version == 1
    assert load_latest(settings, timeout=20).version == 1

    assert refit("--once", "--chunk-bytes", "4096").wait(90) == 0
    got, deadline = None, time.monotonic() + 20
    while got is None and time.monotonic() < deadline:
        got = follower.poll(0.5)
    follower.close()
    # the next refitter fenced the dead one's transaction (aborted: its chunks never show) and
    # publishes v2 anew; a follower never saw a chunk of the dead attempt to mix it with
    assert got is not None and got.version == 2
    assert [k for k in topic_keys(settings) if k.endswith("/manifest")] == ["1/manifest",
                                                                          "2/manifest"]


def test_sigterm_drains_checkpoints_and_exits_0(settings, refold_process):
    send_events(settings, 1000)
    proc = refold_process(settings, "refit", "--every-events", "0", "--every-seconds", "0")
    proc.wait_for_line("caught up")
    assert proc.stop(60) == 0, proc.log_text()[-3000:]
    assert "checkpoint" in proc.log_text()
    assert list(Path(settings.home, "refit").glob("*.store"))


def topic_keys(settings: Settings, committed_only: bool = True) -> list[str]:
    """The keys on the snapshots topic: committed ones (what followers read), or all of them
    (`committed_only=False`: an open or aborted transaction's too). Commit markers take
    offsets too: read until the position reaches the end."""
    topic = settings.topic("snapshots")
    consumer = make_consumer(settings, "test-keys", {} if committed_only else
                             {"isolation.level": "read_uncommitted"})
    low, high = watermarks(consumer, topic)[0]
    consumer.assign([TopicPartition(topic, 0, low)])
    keys: list[str] = []
    deadline = time.monotonic() + 30
    while consumer.position([TopicPartition(topic, 0)])[0].offset < high:
        assert time.monotonic() < deadline
        keys += [m.key().decode() for m in consumer.consume(100, timeout=1) if m.error() is None]
    consumer.close()
    return keys
