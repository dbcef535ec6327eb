"""Restoring assigned partitions on a thread: ready only at the group's committed offset."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from consumers import changelog
from consumers.changelog import ChangelogError, ChangelogReader
from consumers.state.assign import PartitionRestores
from consumers.state.local import LocalState, derive_user_indexes
from consumers.state.restore import StoreRestorer
from models.expiry import Horizon
from models.history import UserHistory
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_consumer, make_producer
from refold.core.topics import create_topics

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(bootstrap, unique_prefix, tmp_path):
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_partitions=2,
                 consumer_group=f"{unique_prefix}g")
    create_topics(make_admin(s), s)
    local = LocalState(tmp_path, s.topic("changelog"), new_history=lambda: UserHistory(5),
                       item_ids=lambda: [], item_index=lambda x: 0)
    restorer = StoreRestorer(s, s.topic("changelog"), derive=derive_user_indexes(Horizon(0.0)))
    reader = ChangelogReader(s)
    restores = PartitionRestores(local, restorer, reader.committed, group=s.consumer_group)
    yield s, local, restores
    restores.close()
    restorer.close()
    reader.close()
    local.close_all()


def write_meta(s: Settings, p: int, offset: int, users: int = 0, open_txn: bool = False):
    """Records of `users` users and the partition's meta at `offset`; with `open_txn`, inside a
    transaction left open (a worker that died mid-commit, or whose marker is on its way): the
    producer is returned, to commit or abort it."""
    producer = make_producer(s, {"transactional.id": f"{s.topic_prefix}writer-{p}"}
                             if open_txn else None)
    if open_txn:
        producer.init_transactions(30)
        producer.begin_transaction()
    for u in range(users):
        h = UserHistory(5)
        h.add(0, 1.0, 1.0)
        producer.produce(s.topic("changelog"), changelog.user_value(h.to_state(["a"]), []),
                         f"p{p}-u{u}", partition=p)
    plain = {"events": offset, "t_ref": None, "dirty": [], "items": {}}
    for key, value in changelog.partition_records(p, plain, offset):
        producer.produce(s.topic("changelog"), value, key, partition=p)
    producer.flush(10)
    return producer


def commit(s: Settings, offsets: dict[int, int]) -> None:
    c = make_consumer(s, s.consumer_group)
    c.commit(offsets=[TopicPartition(s.topic("events"), p, o) for p, o in offsets.items()],
             asynchronous=False)
    c.close()


def until(restores: PartitionRestores, partition: int, timeout: float = 30.0) -> list:
    deadline, done = time.monotonic() + timeout, []
    while not any(r.partition == partition for r in done):
        assert time.monotonic() < deadline, f"partition {partition} not restored"
        done += restores.ready()
        time.sleep(0.05)
    return done


def test_a_partition_is_ready_once_its_state_reaches_the_committed_offset(setup) -> None:
    s, local, restores = setup
    write_meta(s, 0, 40, users=30)
    commit(s, {0: 40, 1: 70})
    pending = write_meta(s, 1, 70, open_txn=True)  # partition 1's state: not committed yet
    restores.start([1, 0])  # 1 waits for its transaction: 0 is not held back
    done = until(restores, 0)
    assert [(r.partition, r.offset) for r in done] == [(0, 40)]
    time.sleep(1.0)
    assert restores.ready() == [] and restores.pending == {1}
    pending.commit_transaction(30)  # the marker lands
    assert [(r.partition, r.offset) for r in until(restores, 1)] == [(1, 70)]
    assert local.partition_records(0).meta["offset"] == 40
    assert local.stores[0].get(changelog.user_key("p0-u7")) is not None


def test_state_beyond_the_committed_offset_is_an_error(setup) -> None:
    s, _, restores = setup
    write_meta(s, 0, 50)
    commit(s, {0: 20})
    restores.start([0])
    with pytest.raises(ChangelogError, match="beyond the committed"):
        restores.wait(30)


def test_state_that_cannot_reach_the_committed_offset_is_an_error(setup) -> None:
    """No transaction open on the changelog and the state behind: the records are gone."""
    s, _, restores = setup
    write_meta(s, 0, 20)
    commit(s, {0: 50})
    restores.start([0])
    with pytest.raises(ChangelogError, match="no transaction is open"):
        restores.wait(30)


def test_a_cancelled_restore_is_never_reported(setup) -> None:
    s, _, restores = setup
    commit(s, {1: 10})
    pending = write_meta(s, 1, 10, open_txn=True)  # the restore waits for it
    restores.start([1])
    time.sleep(0.5)
    restores.cancel([1])
    pending.commit_transaction(30)
    time.sleep(1.0)
    assert restores.ready() == [] and not restores.pending
