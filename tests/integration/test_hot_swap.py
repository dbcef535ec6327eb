"""The loop between the refitter and the workers, through the real broker: a worker serves the
latest snapshot from its first batch, swaps in each new one between batches and keeps the good
one when a damaged version follows; a worker's drift alarm reaches a running refitter."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from consumers.assembly import assemble_refitter
from consumers.control import RefitRequester
from consumers.monitor import Monitor
from consumers.snapshot_publisher import SnapshotPublisher
from consumers.snapshots import load_latest
from consumers.tail import TopicTail
from producers.sdk import EventProducer
from refold.core import metrics as M
from refold.core.config import Settings
from refold.core.schemas import Event, decode_recommendation

from .processes import RefoldProcess
from .test_refitter import OPTIONS, send_events
from .test_snapshots import make, produce_raw

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=2, factors=8, iterations=5, k=10)


class Lists:
    """The recommendations topic as it grows: the model version of the list each event caused."""

    def __init__(self, settings: Settings) -> None:
        self.tail = TopicTail(settings, settings.topic("recommendations"))
        self.version: dict[str, int | None] = {}

    def wait(self, event_ids: list[str], timeout: float = 30.0) -> list[int | None]:
        deadline = time.monotonic() + timeout
        while not all(e in self.version for e in event_ids) and time.monotonic() < deadline:
            for msg in self.tail.poll(0.2):
                rec = decode_recommendation(msg.value())
                self.version[rec.cause.event_id] = rec.model_version
        missing = [e for e in event_ids if e not in self.version]
        assert not missing, f"no list caused by {missing[:5]}"
        return [self.version[e] for e in event_ids]


class Sender:
    """Events of distinct users (one list per event), numbered from 0."""

    def __init__(self, settings: Settings) -> None:
        self.producer = EventProducer(settings)
        self.n = 0

    def send(self, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            ids.append(f"e{self.n}")
            self.producer.send(Event(event_id=ids[-1], user_id=f"u{self.n}",
                                     item_id=f"item-{self.n % 300}", event_type="purchase",
                                     event_time=1.7e9 + self.n))
            self.n += 1
        self.producer.producer.flush(10)
        return ids


def stop(proc: RefoldProcess) -> None:
    assert proc.stop() == 0, proc.log_text()[-3000:]


def test_a_worker_started_after_a_snapshot_serves_it_from_its_first_batch(settings, tmp_path,
                                                                          refold_process):
    with SnapshotPublisher(settings, chunk_bytes=4096) as publisher:
        publisher.publish(make(3))
    sender, lists, log = Sender(settings), Lists(settings), tmp_path / "worker.log"
    sent = sender.send(40)
    proc = refold_process(settings, "consume", "--batch-size", "20", log=log)
    try:
        assert lists.wait(sent, timeout=60) == [3] * 40
    finally:
        stop(proc)
    assert "serving model version 3" in log.read_text()


def test_a_running_worker_swaps_new_versions_in_and_refuses_a_damaged_one(settings, tmp_path,
                                                                           refold_process):
    sender, lists, log = Sender(settings), Lists(settings), tmp_path / "worker.log"
    proc = refold_process(settings, "consume", "--batch-size", "20", "--snapshot-wait", "2",
                          log=log)
    publisher = SnapshotPublisher(settings, chunk_bytes=4096)
    try:
        assert set(lists.wait(sender.send(10), timeout=60)) == {None}  # no model: popularity
        publisher.publish(make(1))
        assert wait_for_version(sender, lists, 1)
        assert set(lists.wait(sender.send(20))) == {1}  # every list after the swap

        produce_raw(settings, make(2), corrupt=3)
        deadline = time.monotonic() + 30
        while "refused snapshot" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set(lists.wait(sender.send(20))) == {1}  # the damaged v2 never served

        publisher.publish(make(3))
        assert wait_for_version(sender, lists, 3)
    finally:
        publisher.close()
        stop(proc)
    text = log.read_text()
    assert "refused snapshot" in text and "serving model version 2" not in text


def wait_for_version(sender: Sender, lists: Lists, version: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lists.wait(sender.send(1))[0] == version:
            return True
        time.sleep(0.2)
    return False


def test_a_drift_alarm_of_a_worker_makes_a_running_refitter_refit(settings):
    reg = M.register(CollectorRegistry())
    taken = reg.get_sample_value("refold_refit_requests_total",
                                 {"reason": "user_vector_norm"}) or 0.0
    send_events(settings, 2000)
    refitter = assemble_refitter(settings, OPTIONS)
    thread = threading.Thread(target=refitter.run, kwargs={"restore_timeout": 20})
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while refitter.store.events < 2000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert refitter.published == 0  # its own triggers are off
        # the worker's side: its monitor, the control topic as its refit hook, a drifting norm
        requester = RefitRequester(settings.replace(instance_id="w7"))
        monitor = Monitor(request_refit=requester, refit_on={"user_vector_norm"},
                          ph_threshold=5.0)
        for norm in [1.0] * 40 + [3.0] * 20:
            monitor.on_batch([], [], model_version=1, user_vector_norm=norm)
        requester.close()
        assert monitor.refit_requests == 1 and requester.sent == 1
        while refitter.published == 0 and time.monotonic() < deadline + 60:
            time.sleep(0.1)
    finally:
        refitter.stop()
        thread.join(60)
    assert refitter.published == 1 and refitter.requests_taken == 1
    reason = load_latest(settings, timeout=20).params["reason"]
    assert reason == f"drift detected by user_vector_norm on {settings.consumer_group}/w7"
    assert reg.get_sample_value("refold_refit_requests_total",
                                {"reason": "user_vector_norm"}) - taken >= 1

    # a restarted refitter reads the same request back (compacted topic): answered already
    again = assemble_refitter(settings, OPTIONS)
    thread = threading.Thread(target=again.run, kwargs={"restore_timeout": 20})
    thread.start()
    deadline = time.monotonic() + 30
    while again.requests_answered == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    again.stop()
    thread.join(60)
    assert again.requests_answered == 1 and again.requests_taken == 0 and again.refits == 0
