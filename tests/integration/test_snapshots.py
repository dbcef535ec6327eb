"""Snapshots through a real broker: chunked publish, verified load, refusals, pruning, follow."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from consumers.monitor import Monitor
from consumers.snapshot_publisher import SnapshotPublisher
from consumers.snapshots import SnapshotFollower, follow, load_latest
from models.snapshot import Snapshot, Watermark, encode_chunks
from refold.core import metrics as M
from refold.core.config import Settings
from refold.core.kafka import make_consumer, make_producer, watermarks


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=2)


def make(version: int, n: int = 300, k: int = 16, seed: int | None = None) -> Snapshot:
    rng = np.random.default_rng(version if seed is None else seed)
    X = rng.standard_normal((50, k))
    return Snapshot.build(version, 1.7e9 + version, [f"item-{i}" for i in range(n)],
                          rng.standard_normal((n, k), dtype=np.float32), XtX=X.T @ X,
                          watermark=Watermark({0: 100 * version, 1: 7}, 1.7e9 + version),
                          params={"factors": k, "alpha": 2.0}, metrics={"recall_at_k": 0.2})


def assert_same(a: Snapshot, b: Snapshot) -> None:
    assert (a.version, a.created_at, a.item_ids) == (b.version, b.created_at, b.item_ids)
    assert a.Y.tobytes() == b.Y.tobytes() and a.YtY.tobytes() == b.YtY.tobytes()
    assert a.XtX.tobytes() == b.XtX.tobytes()
    assert (a.watermark, a.params, a.metrics) == (b.watermark, b.params, b.metrics)


def produce_raw(settings: Settings, snap: Snapshot, *, corrupt: int | None = None,
                drop: int | None = None, manifest: bool = True, chunk_bytes: int = 4096) -> None:
    """Write a version by hand, damaged on purpose."""
    chunks, man = encode_chunks(snap.to_bytes(), snap.version, chunk_bytes)
    producer = make_producer(settings)
    for i, c in enumerate(chunks):
        value = c.value
        if i == corrupt:
            value = value[:100] + bytes([value[100] ^ 1]) + value[101:]
        if i != drop:
            producer.produce(settings.topic("snapshots"), value, c.key,
                             headers=list(c.headers.items()))
    if manifest:
        producer.produce(settings.topic("snapshots"), man.value, man.key,
                         headers=list(man.headers.items()))
    assert producer.flush(30) == 0


def test_publish_and_load_back_equal(settings):
    snap = make(1)
    with SnapshotPublisher(settings, chunk_bytes=4096) as publisher:
        result = publisher.publish(snap)
    assert result.chunks == -(-result.bytes // 4096) > 1
    assert result.manifest_offset == result.first_offset + result.chunks
    got = load_latest(settings, timeout=30)
    assert_same(snap, got)
    assert got.item_factors().version == 1


def test_200k_by_64_snapshot_goes_through_chunking(settings):
    snap = make(1, n=200_000, k=64)
    publisher = SnapshotPublisher(settings)
    result = publisher.publish(snap)
    publisher.close()
    assert result.bytes > 50e6 and result.chunks == -(-result.bytes // 900_000)
    t0 = time.perf_counter()
    got = load_latest(settings, timeout=60)
    took = time.perf_counter() - t0
    assert_same(snap, got)
    print(f"200K x 64: {result.bytes / 1e6:.1f} MB in {result.chunks} chunks, "
          f"publish {result.seconds:.2f} s, load {took:.2f} s")


def test_corrupted_and_truncated_versions_are_refused_and_the_previous_one_stays(settings):
    publisher = SnapshotPublisher(settings, chunk_bytes=4096)
    publisher.publish(make(1))
    follower = SnapshotFollower(settings)
    assert follower.load_latest(timeout=30).version == 1
    produce_raw(settings, make(2), corrupt=3)
    produce_raw(settings, make(3), drop=2)
    produce_raw(settings, make(4), manifest=False)
    deadline = time.monotonic() + 20
    while follower.refused < 2 and time.monotonic() < deadline:
        assert follower.poll(0.5) is None
    assert follower.refused == 2 and "missing" in follower.last_refusal
    assert follower.live_version == 1 and follower.max_version_seen == 4
    assert load_latest(settings, timeout=30).version == 1
    publisher.publish(make(5))
    deadline = time.monotonic() + 20
    got = None
    while got is None and time.monotonic() < deadline:
        got = follower.poll(0.5)
    assert_same(make(5), got)
    follower.close()
    publisher.close()
    assert load_latest(settings, timeout=30).version == 5


def test_a_republished_version_after_a_dead_attempt_is_used(settings):
    produce_raw(settings, make(1, seed=11), manifest=False)
    SnapshotPublisher(settings, chunk_bytes=4096).publish(make(1))
    assert_same(make(1), load_latest(settings, timeout=30))


def test_older_versions_are_pruned_and_the_latest_survives(settings):
    publisher = SnapshotPublisher(settings, keep=2, chunk_bytes=4096)
    results = [publisher.publish(make(v)) for v in range(1, 6)]
    publisher.close()
    consumer = make_consumer(settings, "test")
    low, high = watermarks(consumer, settings.topic("snapshots"))[0]
    consumer.close()
    assert low == results[-2].first_offset and high == results[-1].manifest_offset + 1
    assert load_latest(settings, timeout=30).version == 5


def test_background_follower_hands_over_ready_factors(settings):
    publisher = SnapshotPublisher(settings, chunk_bytes=4096)
    follower = SnapshotFollower(settings)
    assert follower.load_latest(timeout=30) is None
    got: list = []
    follower.start(got.append)
    publisher.publish(make(1))
    publisher.publish(make(2))
    deadline = time.monotonic() + 20
    while not (got and got[-1].version == 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    follower.close()
    publisher.close()
    assert [s.version for s in got] in ([1, 2], [2])  # one poll hands over the newest only
    assert "_factors" in got[-1].__dict__  # built off the caller's thread


def test_a_following_worker_counts_refused_versions_in_its_metrics(settings):
    """As `consumers.assembly` wires it: versions to the worker, refusals to its monitor."""
    reg = M.register(CollectorRegistry())
    labels = {"outcome": "rejected"}
    before = reg.get_sample_value("refold_snapshot_loads_total", labels) or 0.0
    publisher = SnapshotPublisher(settings, chunk_bytes=4096)
    publisher.publish(make(1))
    versions: list[int] = []
    monitor = Monitor()
    follower = follow(settings, lambda snap: versions.append(snap.version), wait=30,
                      on_refused=lambda _reason: monitor.on_snapshot_rejected())
    try:
        produce_raw(settings, make(2), corrupt=3)
        publisher.publish(make(3))
        deadline = time.monotonic() + 30
        while versions[-1:] != [3] and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        follower.close()
        publisher.close()
    assert versions == [1, 3]
    assert follower.refused == 1
    assert reg.get_sample_value("refold_snapshot_loads_total", labels) == before + 1
