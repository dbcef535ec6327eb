"""A partition's store against a real changelog: tail-only restarts, killed restores, stores the
changelog no longer backs, and a restore from a topic the log cleaner has compacted."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka.admin import NewTopic

from consumers.state.restore import StoreRestorer
from consumers.state.store import PartitionStore, StoreBatch
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_producer

pytestmark = pytest.mark.slow


def settings_for(bootstrap: str, prefix: str) -> Settings:
    return Settings(bootstrap_servers=bootstrap, topic_prefix=prefix)


def create(s: Settings, topic: str, **config: str) -> None:
    admin = make_admin(s)
    admin.create_topics([NewTopic(topic, 2, 1, config={"cleanup.policy": "compact", **config})]
                        )[topic].result(30)


def produce(s: Settings, topic: str, records: list[tuple[bytes, bytes | None]],
            per_txn: int = 50) -> None:
    """Transactions of `per_txn` records into partition 1 (commit markers between them, as the
    worker writes), and one aborted transaction that no restore may see."""
    p = make_producer(s, {"transactional.id": f"{topic}-writer"})
    p.init_transactions(30)
    for i in range(0, len(records), per_txn):
        p.begin_transaction()
        for key, value in records[i:i + per_txn]:
            p.produce(topic, value, key, partition=1)
        p.commit_transaction(30)
    p.begin_transaction()
    p.produce(topic, b"aborted", b"k0", partition=1)
    p.flush(10)
    p.abort_transaction(30)


def latest(records: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes | None] = {}
    for k, v in records:
        out[k] = v
    return {k: v for k, v in out.items() if v is not None}


def contents(store: PartitionStore) -> dict[bytes, bytes]:
    return dict(store.records(b""))


def history(n_keys: int, versions: int, seed: int = 1, size: int = 300
            ) -> list[tuple[bytes, bytes | None]]:
    rng = random.Random(seed)
    out: list[tuple[bytes, bytes | None]] = []
    for v in range(versions):
        for k in rng.sample(range(n_keys), n_keys):
            value = None if rng.random() < 0.05 else b"%d:" % v + rng.randbytes(size)
            out.append((b"k%d" % k, value))
    return out


def test_a_restart_on_the_same_disk_reads_only_the_tail(bootstrap, unique_prefix, tmp_path):
    s = settings_for(bootstrap, unique_prefix)
    topic = unique_prefix + "cl"
    create(s, topic)
    first = history(300, 4)
    produce(s, topic, first)
    r = StoreRestorer(s, topic, chunk_records=500)
    try:
        with PartitionStore.open(tmp_path, topic, 1) as st:
            assert r.check(st) is None
            done = r.catch_up(st)
            assert done.records == len(first) and contents(st) == latest(first)
        more = history(300, 1, seed=2)
        produce(s, topic, more)
        with PartitionStore.open(tmp_path, topic, 1) as st:
            assert r.check(st) is None
            done = r.catch_up(st)
            assert done.records == len(more)  # only the tail
            assert contents(st) == latest(first + more)
            assert st.checkpoint.offset == r.offsets(1)[1]
    finally:
        r.close()


def test_a_restore_killed_midway_goes_on_from_its_last_chunk(bootstrap, unique_prefix,
                                                              tmp_path):
    s = settings_for(bootstrap, unique_prefix)
    topic = unique_prefix + "cl"
    create(s, topic)
    records = history(500, 6, size=100)
    produce(s, topic, records)
    code = f"""
import os, signal
from consumers.state.restore import StoreRestorer
from consumers.state.store import PartitionStore
from refold.core.config import Settings
calls = []
def derive(key, old, new, batch):
    calls.append(key)
    if len(calls) > 800:  # in the third chunk of 500 records (at most 500 keys each)
        os.kill(os.getpid(), signal.SIGKILL)
s = Settings(bootstrap_servers={bootstrap!r}, topic_prefix={unique_prefix!r})
st = PartitionStore.open({str(tmp_path)!r}, {topic!r}, 1)
StoreRestorer(s, {topic!r}, chunk_records=500, derive=derive).catch_up(st)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    r = StoreRestorer(s, topic)
    try:
        with PartitionStore.open(tmp_path, topic, 1) as st:
            kept = st.checkpoint.offset
            assert 0 < kept < r.offsets(1)[1]
            assert r.check(st) is None
            done = r.catch_up(st)
            assert done.start == kept and done.records < len(records)
            assert contents(st) == latest(records)
    finally:
        r.close()


def test_a_store_of_a_recreated_changelog_is_wiped_and_rebuilt(bootstrap, unique_prefix,
                                                                tmp_path):
    s = settings_for(bootstrap, unique_prefix)
    topic = unique_prefix + "cl"
    create(s, topic)
    produce(s, topic, history(100, 3))
    r = StoreRestorer(s, topic)
    with PartitionStore.open(tmp_path, topic, 1) as st:
        r.catch_up(st)
    r.close()
    admin = make_admin(s)
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    create(s, topic)
    fresh = history(50, 1, seed=9)
    produce(s, topic, fresh)  # fewer offsets than the store's checkpoint
    r = StoreRestorer(s, topic)
    try:
        with PartitionStore.open(tmp_path, topic, 1) as st:
            reason = r.check(st)
            assert reason is not None and "re-created" in reason
            r.catch_up(st)
            assert contents(st) == latest(fresh)
    finally:
        r.close()


def test_derive_sees_the_value_the_store_held(bootstrap, unique_prefix, tmp_path):
    s = settings_for(bootstrap, unique_prefix)
    topic = unique_prefix + "cl"
    create(s, topic)
    produce(s, topic, [(b"u", b"1"), (b"u", b"2"), (b"v", b"1")])
    seen = []

    def derive(key, old, new, batch: StoreBatch) -> None:
        seen.append((key, old, new))
        batch.activity(key, None if old is None else int(old), None if new is None else int(new))

    r = StoreRestorer(s, topic, derive=derive)
    try:
        with PartitionStore.open(tmp_path, topic, 1) as st:
            r.catch_up(st)
            produce(s, topic, [(b"u", None)])
            r.catch_up(st)
            assert seen == [(b"u", None, b"2"), (b"v", None, b"1"), (b"u", b"2", None)]
            assert st.inactive(below=10) == [(1, b"v")]
    finally:
        r.close()


def test_a_restore_from_a_compacted_changelog_gives_the_same_state(bootstrap, unique_prefix,
                                                                    tmp_path):
    """Small segments and an eager cleaner: the broker compacts while the test waits; a store
    restored from the compacted topic equals one restored before compaction."""
    s = settings_for(bootstrap, unique_prefix)
    topic = unique_prefix + "cl"
    create(s, topic, **{"segment.ms": "200", "min.cleanable.dirty.ratio": "0.01",
                        "delete.retention.ms": "100", "min.compaction.lag.ms": "0"})
    records = history(400, 12, size=400)  # ~2 MB: several segments
    for i in range(0, len(records), 1200):
        produce(s, topic, records[i:i + 1200])
        time.sleep(0.3)  # the next produce rolls a segment
    r = StoreRestorer(s, topic)
    try:
        with PartitionStore.open(tmp_path / "before", topic, 1) as st:
            r.catch_up(st)
            want = contents(st)
        assert want == latest(records)  # (the cleaner may have run already)
        deadline, compacted = time.monotonic() + 120, None
        while compacted is None or compacted.records >= len(records) * 0.5:
            assert time.monotonic() < deadline, "the log cleaner did not run"
            time.sleep(3)
            produce(s, topic, [(b"roll", b"x")])  # a new segment: the old ones are cleanable
            with PartitionStore.open(tmp_path / "after", topic, 1) as st:
                st.wipe("another try")
                compacted = r.catch_up(st)
                got = contents(st)
        got.pop(b"roll")
        assert got == want
    finally:
        r.close()
