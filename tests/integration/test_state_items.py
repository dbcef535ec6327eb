"""An item deleted from the catalog (a tombstone on the items topic) leaves the workers' state:
its per-partition records get tombstones in the changelog (so compaction drops them), the local
stores no longer hold them, and a worker restored on a new disk knows nothing of it."""

from __future__ import annotations

import pytest

from consumers.changelog import covisit_key, item_key
from producers.sdk import EventProducer
from refold.core.kafka import make_admin, make_producer
from refold.core.topics import create_topics

from .helpers import committed, wait_for
from .test_state import FAST, PARTITIONS, changelog_records, drifting_users, settings_for
from .workers import WorkerThread

pytestmark = pytest.mark.slow


def test_a_deleted_item_is_tombstoned_and_gone_from_the_stores(bootstrap, unique_prefix,
                                                                tmp_path) -> None:
    events, items, factors = drifting_users(n_users=60, n_events=600, days=2.0)
    gone = "i7"
    first, rest = events[:400], [ev for ev in events[400:] if ev.item_id != gone]
    s = settings_for(bootstrap, unique_prefix, tmp_path)
    create_topics(make_admin(s), s)
    with EventProducer(s) as producer:
        for item in items:
            producer.send_item(item)
        producer.send_many(first)
    a = WorkerThread(s, factors, join_timeout=60, consumer_extra=FAST).start()
    wait_for(lambda: committed(s) == len(first), 60, "the first events")
    held = [p for p in range(PARTITIONS) if changelog_records(s).get(item_key(p, gone))]
    assert held  # the item has state in some partition
    producer = make_producer(s)
    producer.produce(s.topic("items"), None, gone.encode())  # deleted from the catalog
    producer.flush(10)
    wait_for(lambda: gone in a.worker.deleted_items, 30, "the deletion")
    with EventProducer(s) as more:
        more.send_many(rest)
    wait_for(lambda: committed(s) == len(first) + len(rest), 60, "the other events")
    a.stop()
    records = changelog_records(s)
    for p in held:  # tombstones, which compaction keeps only until delete.retention.ms
        assert item_key(p, gone) in records and records[item_key(p, gone)] is None
        assert records.get(covisit_key(p, gone)) is None
    b = WorkerThread(s.replace(state_dir=str(tmp_path / "disk-b")), factors, join_timeout=60,
                     consumer_extra=FAST).start()  # a new disk: rebuilt from the changelog
    wait_for(lambda: b.worker.restores, 60, "the restore")
    rec = b.worker.recommender
    for p in range(PARTITIONS):
        plain = rec.partition(p).to_plain(rec.catalog.ids, rec.model_version)
        assert gone not in plain["items"] and gone not in plain.get("rows", {})
        assert plain["items"]  # the other items are there
        store = b.worker.state.local.stores[p]
        assert store.get(item_key(p, gone)) is None and store.get(covisit_key(p, gone)) is None
    b.stop()
