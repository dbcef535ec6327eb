"""A user's expiry through the fold-in worker with local stores (no broker: the worker's batch is
handed messages and an output that only counts): judged once per message, by the user's own gap
as much as by the partition's progress, the same whatever the batch boundaries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consumers.changelog import user_key
from consumers.foldin_worker import FoldInWorker
from consumers.model_source import foldin_config
from models.recommender import OnlineRecommender
from refold.bench.batch import Message
from refold.core.config import Settings
from refold.core.schemas import Event, encode


class Output:
    """Counts what is produced, per topic."""

    def __init__(self) -> None:
        self.produced: Counter[str] = Counter()

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.produced[topic] += 1


def worker_at(path: Path) -> FoldInWorker:
    settings = Settings(topic_prefix="expiry.", events_partitions=1, state_store="rocksdb",
                        state_dir=str(path), user_expiry_seconds=1000.0,
                        dedup_horizon_seconds=500.0, exploration="none")
    worker = FoldInWorker(settings, OnlineRecommender(foldin_config(settings)), clock=lambda: 1e4)
    worker.state.local.open(0)  # type: ignore[union-attr]  # an empty store: nothing to restore
    return worker


def run(worker: FoldInWorker, events: list[tuple[str, str, float]], batches: list[int]
        ) -> Output:
    """(user, item, time) events as messages of partition 0, handled in batches of the sizes;
    the output every batch produced to."""
    topic = worker.events_topic
    msgs = [Message(topic, 0, n, u.encode(), encode(Event(event_id=f"e{n}", user_id=u, item_id=i,
                                                          event_type="click", event_time=t)), 0)
            for n, (u, i, t) in enumerate(events)]
    at, out = 0, Output()
    for size in batches:
        worker.handle(msgs[at:at + size], out)  # type: ignore[arg-type]
        worker.promote()
        at += size
    return out


def history(worker: FoldInWorker, user: str) -> list[str]:
    rec = worker.recommender
    h = rec.users.get(user)
    assert h is not None
    return [rec.catalog.ids[i] for i in h.events()["item"].tolist()]


def test_a_user_back_after_the_horizon_starts_anew_at_their_own_event(tmp_path) -> None:
    """Nothing else moves the partition's watermark: before the user's own event it is 10 s,
    which expires nobody; the user's own gap (1,990 s > 1,000) does. Judged against the
    watermark before the event (and with the event's id counted as activity before the
    judgement), the user kept the old history."""
    worker = worker_at(tmp_path)
    run(worker, [("u1", "a", 10.0), ("u1", "b", 2000.0)], [1, 1])
    assert history(worker, "u1") == ["b"]
    assert worker.state.event_ids("u1", 0) == ["e1"]  # e0 is beyond the id horizon too
    h = worker.recommender.users.get("u1")
    assert h is not None and h.feedback is not None and h.feedback.to_state(
        worker.recommender.catalog.ids)["conversion"][0] == 2000.0  # a new user since


@pytest.mark.parametrize("batches", [[5], [1, 4], [2, 3], [3, 2], [4, 1], [1] * 5])
def test_expiry_does_not_depend_on_the_batch_boundaries(tmp_path, batches) -> None:
    """u1's second event expires them after their first in the same batch or not; u2 keeps
    the watermark moving in between, and past the id horizon of u1's second event (which u1
    keeps: it is forgotten at u1's next message, not at the end of a batch)."""
    events = [("u1", "a", 10.0), ("u2", "c", 600.0), ("u1", "b", 1500.0), ("u2", "d", 1550.0),
              ("u2", "e", 2100.0)]
    worker = worker_at(tmp_path / "w")
    out = run(worker, events, batches)
    assert history(worker, "u1") == ["b"] and history(worker, "u2") == ["c", "d", "e"]
    # a batch applied in parts around u1's renewal counts each list once
    assert worker.counts["recommendations"] == out.produced[worker.recs_topic] > 0
    one_by_one = worker_at(tmp_path / "one")
    run(one_by_one, events, [1] * len(events))
    for user in ("u1", "u2"):
        assert stored(worker, user) == stored(one_by_one, user)


def stored(worker: FoldInWorker, user: str) -> dict:
    """The user's record as committed, less the last list (a list is published per user and
    batch, so which one is last depends on the batches)."""
    record = msgspec.json.decode(worker.state.local.stores[0].get(user_key(user)))  # type: ignore
    del record["history"]["feedback"]["list"], record["history"]["feedback"]["list_items"]
    return record
