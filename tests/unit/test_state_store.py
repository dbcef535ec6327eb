"""The per-partition store: atomic checkpoint, indexes, when a store must be rebuilt, locking."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time

import pytest

from consumers.state.kv import KeyValueStore, Resources
from consumers.state.store import Checkpoint, PartitionStore, StoreBatch, StoreError


def cp(offset: int, topic_id: str = "id-1", written_at: float | None = None) -> Checkpoint:
    return Checkpoint("cl", topic_id, 0, offset, written_at or time.time())


def test_a_write_batch_and_its_checkpoint_survive_a_reopen(tmp_path) -> None:
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        assert st.checkpoint is None
        b = StoreBatch()
        for i in range(100):
            b.put(f"u{i}".encode(), f"state {i}".encode())
        st.commit(b, cp(100))
        b = StoreBatch()
        b.delete(b"u7")  # a tombstone
        b.put(b"u8", b"newer")
        st.commit(b, cp(103))
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        assert st.checkpoint.offset == 103
        assert st.get(b"u7") is None and st.get(b"u8") == b"newer"
        assert st.get_many([b"u1", b"u7"]) == [b"state 1", None]


def test_a_killed_process_leaves_data_and_checkpoint_in_step(tmp_path) -> None:
    """SIGKILL after every write batch returned: each batch is there with its checkpoint."""
    code = f"""
import os, signal
from consumers.state.store import Checkpoint, PartitionStore, StoreBatch
st = PartitionStore.open({str(tmp_path)!r}, "cl", 0)
for n in range(1, 51):
    b = StoreBatch()
    b.put(b"k%d" % n, b"v")
    st.commit(b, Checkpoint("cl", None, 0, n))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        assert st.checkpoint.offset == 50
        assert all(st.get(b"k%d" % n) == b"v" for n in range(1, 51))


def test_partition_records_scan_by_prefix(tmp_path) -> None:
    with PartitionStore.open(tmp_path, "cl", 3) as st:
        b = StoreBatch()
        for key in (b"~p3/item/a", b"~p3/item/b", b"~p3/meta", b"~p30/item/z", b"user"):
            b.put(key, key)
        st.commit(b, cp(5))
        assert [k for k, _ in st.records(b"~p3/")] == [b"~p3/item/a", b"~p3/item/b",
                                                          b"~p3/meta"]
        assert [k for k, _ in st.records(b"~p3/item/")] == [b"~p3/item/a", b"~p3/item/b"]


def test_the_activity_index_lists_users_below_a_bucket_oldest_first(tmp_path) -> None:
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        b = StoreBatch()
        b.activity(b"u1", None, 5)
        b.activity(b"u2", None, -3)  # negative buckets sort before positive ones
        b.activity(b"u3", None, 9)
        st.commit(b, cp(1))
        b = StoreBatch()
        b.activity(b"u1", 5, 12)  # u1 acted again: moves to a newer bucket
        b.activity(b"u3", 9, 9)   # same bucket: nothing to write
        assert len(b) == 2
        st.commit(b, cp(2))
        assert st.inactive(below=10) == [(-3, b"u2"), (9, b"u3")]
        assert st.inactive(below=100, limit=2) == [(-3, b"u2"), (9, b"u3")]
        assert st.inactive(below=-3) == []


def test_event_ids_map_to_their_time_and_user(tmp_path) -> None:
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        b = StoreBatch()
        b.event_ids(b"u1", [("e1", 10.5), ("e2", 11.0)], [])
        st.commit(b, cp(1))
        b = StoreBatch()
        b.event_ids(b"u1", [], ["e1"])
        st.commit(b, cp(2))
        assert st.event("e1") is None
        assert st.event("e2") == (11.0, b"u1")


@pytest.mark.parametrize(("check", "reason"), [
    ({"topic_id": "id-2"}, "re-created"),
    ({"high": 50}, "beyond the changelog's end"),
    ({"low": 150}, "after its checkpoint"),
    ({"max_age": 60.0, "now": 1e9 + 3600}, "may have been compacted away"),
])
def test_a_store_the_changelog_no_longer_backs_is_stale(tmp_path, check, reason) -> None:
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        st.commit(StoreBatch(), cp(100, written_at=1e9))
        args = {"topic_id": "id-1", "low": 0, "high": 120, "max_age": None, "now": 1e9 + 1}
        assert st.stale_reason(**args) is None
        assert reason in st.stale_reason(**{**args, **check})


def test_wipe_empties_the_store(tmp_path) -> None:
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        b = StoreBatch()
        b.put(b"u", b"v")
        st.commit(b, cp(9))
        st.wipe("test")
        assert st.checkpoint is None and st.get(b"u") is None
    with PartitionStore.open(tmp_path, "cl", 0) as st:
        assert st.checkpoint is None


def test_opening_a_store_in_use_waits_for_it_then_gives_up(tmp_path) -> None:
    first = PartitionStore.open(tmp_path, "cl", 0)
    with pytest.raises(StoreError, match="lock"):
        PartitionStore.open(tmp_path, "cl", 0, lock_wait=0.3)
    threading.Timer(0.3, first.close).start()
    with PartitionStore.open(tmp_path, "cl", 0, lock_wait=10) as second:  # after the close
        assert second.checkpoint is None


@pytest.mark.slow
def test_memory_is_bounded_by_the_shared_cache_not_by_the_data(tmp_path) -> None:
    res = Resources.of(cache_bytes=4 << 20)
    rng = random.Random(0)
    values = [rng.randbytes(200) for _ in range(100_000)]  # incompressible
    with KeyValueStore(tmp_path / "kv", res) as kv:
        for s in range(0, 100_000, 5_000):
            kv.write((b"k%08d" % i, values[i]) for i in range(s, s + 5_000))
        kv.flush()
        for i in range(0, 100_000, 7):
            assert kv.get(b"k%08d" % i) == values[i]
        assert res.usage() <= 4 << 20
        assert kv.disk_bytes() > 4 << 20  # more data than memory
