"""A user whose stored state makes every one of their messages raise, against the real broker.

The changelog holds a record for one user whose history columns disagree (a torn or foreign
write): the worker restores it into its store as it is, and decoding it raises whenever one of
the user's messages is handled. The loop isolates the first such message; the worker then
retries it on an empty state for the user. That succeeds, so the bad record goes to the
dead-letter topic once (reason `bad_state`, its bytes as they were stored), the user starts
again from an empty state, and every message, the user's own included, is applied: the
partition moves on and nothing valid is lost. A message that raises on an empty state too is
the message's fault: it is dead-lettered (`exception`) and the user's state stays as it was
(`tests/integration/test_state.py`).
"""

from __future__ import annotations

import math
import random

import msgspec
import numpy as np
import pytest

from consumers import changelog
from consumers.tail import TopicTail
from models.foldin import ItemFactors
from models.history import UserHistory
from producers.sdk import EventProducer
from refold.core.kafka import make_producer
from refold.core.schemas import Event, Item

from .helpers import committed, wait_for

pytestmark = pytest.mark.slow

VICTIM = "u-bad"
FAST = {"heartbeat.interval.ms": 250, "session.timeout.ms": 6000}


def world(n_users: int = 20, n_events: int = 240, seed: int = 4
          ) -> tuple[list[Event], list[Item], ItemFactors]:
    """Events of `n_users` users and of `VICTIM` (every tenth event), 30 items."""
    rng = random.Random(seed)
    events = [Event(event_id=f"e{j}",
                    user_id=VICTIM if j % 10 == 5 else f"u{rng.randrange(n_users)}",
                    item_id=f"i{rng.randrange(30)}", event_type=rng.choice(["view", "click"]),
                    event_time=1.7e9 + 60.0 * j) for j in range(n_events)]
    items = [Item(item_id=f"i{i}", categories=[f"c{i % 3}"]) for i in range(30)]
    y = np.random.default_rng(seed).standard_normal((30, 8)).astype(np.float32) * 0.3
    return events, items, ItemFactors([f"i{i}" for i in range(30)], y, version=1)


def torn_record() -> bytes:
    """A user record whose weights column is one short of its events (it decodes as JSON, and
    its index entries, times and ids, are whole: a restore takes it, a fold-in cannot)."""
    h = UserHistory(50)
    for k in range(3):
        h.add(k, 1.0, t=1.7e9 - 100.0 + k)  # shortly before the stream
    state = h.to_state([f"i{i}" for i in range(30)])
    state["weights"] = state["weights"][:-1]
    return changelog.user_value(state, ["old-1"])


def test_a_user_whose_stored_state_raises_starts_again_and_loses_no_event(
        make_settings, worker_thread, tmp_path) -> None:
    s = make_settings(batch_size=20, state_dir=str(tmp_path / "disk"), k=5, factors=8)
    events, items, factors = world()
    with EventProducer(s) as out:
        for item in items:
            out.send_item(item)
    producer, partitions = make_producer(s), set()
    for ev in events:
        producer.produce(s.topic("events"), msgspec.json.encode(ev), ev.user_id.encode(),
                         on_delivery=lambda err, m, u=ev.user_id: (
                             partitions.add(m.partition()) if u == VICTIM else None))
    assert producer.flush(30) == 0 and len(partitions) == 1
    p = partitions.pop()
    bad = torn_record()
    producer.produce(s.topic("changelog"), bad, changelog.user_key(VICTIM), partition=p)
    assert producer.flush(30) == 0

    w = worker_thread(s, factors, join_timeout=60, consumer_extra=FAST)
    wait_for(lambda: committed(s) == len(events), 120, "every event")
    w.stop()

    mine = [ev.event_id for ev in events if ev.user_id == VICTIM]
    assert w.worker.counts["events"] == len(events)  # the victim's events too
    assert w.worker.counts["users_reset"] == 1
    # one search for the first message that raised (before, one for each of the user's
    # messages); the first failures may count at two sizes while the batch forms
    assert w.loop.stats.handle_failures <= 2 * s.handle_retries * (math.ceil(math.log2(20)) + 1)
    tail, letters = TopicTail(s, s.topic("dead_letter")), []
    try:
        assert tail.catch_up(letters.extend, 20)
    finally:
        tail.close()
    assert len(letters) == 1, [dict(m.headers()) for m in letters]
    letter, headers = letters[0], dict(letters[0].headers())
    assert (letter.key(), letter.value()) == (VICTIM.encode(), bad)
    assert headers["error_class"] == b"bad_state"
    assert headers["source_topic"] == s.topic("changelog").encode()
    assert int(headers["source_partition"]) == p
    assert b"ValueError" in headers["reason"] and b"weights" in headers["reason"]
    assert headers["met_by"].startswith(s.topic("events").encode())
    # the user's stored record is whole again, with every one of the user's events
    tail, latest = TopicTail(s, s.topic("changelog")), {}
    try:
        assert tail.catch_up(lambda ms: latest.update({m.key(): m.value() for m in ms}), 20)
    finally:
        tail.close()
    record = msgspec.json.decode(latest[changelog.user_key(VICTIM)])
    assert record["history"]["seq"] == len(mine)
    assert record["ids"] == ["old-1", *mine]  # its earlier event ids still count as applied
