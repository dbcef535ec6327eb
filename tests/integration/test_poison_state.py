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

VICTIM, LONE = "u-bad", "u-lone"
"""Users with a torn stored record: `VICTIM` acts all along, its first event re-sent (an id its
record holds); `LONE`'s only event is such a re-sent one (nothing it applies rewrites it)."""
FAST = {"heartbeat.interval.ms": 250, "session.timeout.ms": 6000}


def world(n_users: int = 20, n_events: int = 240, seed: int = 4
          ) -> tuple[list[Event], list[Item], ItemFactors]:
    """Events of `n_users` users, of `VICTIM` (every tenth event) and `LONE` (one), 30 items."""
    rng = random.Random(seed)
    events = [Event(event_id="old-1" if j == 5 else f"e{j}",
                    user_id=VICTIM if j % 10 == 5 else f"u{rng.randrange(n_users)}",
                    item_id=f"i{rng.randrange(30)}", event_type=rng.choice(["view", "click"]),
                    event_time=1.7e9 + 60.0 * j) for j in range(n_events)]
    events.insert(100, Event(event_id="old-2", user_id=LONE, item_id="i1", event_type="view",
                             event_time=events[100].event_time))
    items = [Item(item_id=f"i{i}", categories=[f"c{i % 3}"]) for i in range(30)]
    y = np.random.default_rng(seed).standard_normal((30, 8)).astype(np.float32) * 0.3
    return events, items, ItemFactors([f"i{i}" for i in range(30)], y, version=1)


def torn_record(event_id: str) -> bytes:
    """A user record whose weights column is one short of its events (it decodes as JSON, and
    its index entries, times and ids, are whole: a restore takes it, a fold-in cannot)."""
    h = UserHistory(50)
    for k in range(3):
        h.add(k, 1.0, t=1.7e9 - 100.0 + k)  # shortly before the stream
    state = h.to_state([f"i{i}" for i in range(30)])
    state["weights"] = state["weights"][:-1]
    return changelog.user_value(state, [event_id])


def test_a_user_whose_stored_state_raises_starts_again_and_loses_no_event(
        make_settings, worker_thread, tmp_path) -> None:
    s = make_settings(batch_size=20, state_dir=str(tmp_path / "disk"), k=5, factors=8)
    events, items, factors = world()
    with EventProducer(s) as out:
        for item in items:
            out.send_item(item)
    producer, partitions = make_producer(s), {}
    for ev in events:
        producer.produce(s.topic("events"), msgspec.json.encode(ev), ev.user_id.encode(),
                         on_delivery=lambda err, m, u=ev.user_id: partitions.update({u: m}))
    assert producer.flush(30) == 0
    bad = {VICTIM: torn_record("old-1"), LONE: torn_record("old-2")}
    p = {u: partitions[u].partition() for u in bad}
    for user, value in bad.items():
        producer.produce(s.topic("changelog"), value, changelog.user_key(user), partition=p[user])
    assert producer.flush(30) == 0

    w = worker_thread(s, factors, join_timeout=60, consumer_extra=FAST)
    wait_for(lambda: committed(s) == len(events), 120, "every event")
    w.stop()

    mine = [ev.event_id for ev in events if ev.user_id == VICTIM][1:]
    assert w.worker.counts["events"] == len(events) - 2  # the victim's later events too
    assert w.worker.counts["duplicates"] == 2  # re-sent: their ids survived the resets
    assert w.worker.counts["users_reset"] == 2
    # one search for the first message of each user that raised (before: one for each of the
    # victim's messages); the first failures may count at two sizes while the batch forms
    bound = 2 * s.handle_retries * (math.ceil(math.log2(20)) + 1)
    assert w.loop.stats.handle_failures <= 2 * bound
    tail, letters = TopicTail(s, s.topic("dead_letter")), []
    try:
        assert tail.catch_up(letters.extend, 20)
    finally:
        tail.close()
    assert sorted(m.key() for m in letters) == sorted(u.encode() for u in bad), \
        [dict(m.headers()) for m in letters]
    for letter in letters:
        user, headers = letter.key().decode(), dict(letter.headers())
        assert letter.value() == bad[user]
        assert headers["error_class"] == b"bad_state"
        assert headers["source_topic"] == s.topic("changelog").encode()
        assert int(headers["source_partition"]) == p[user]
        assert b"ValueError" in headers["reason"] and b"weights" in headers["reason"]
        assert headers["met_by"].startswith(s.topic("events").encode())
    # the users' stored records are whole again, with every one of their events
    tail, latest = TopicTail(s, s.topic("changelog")), {}
    try:
        assert tail.catch_up(lambda ms: latest.update({m.key(): m.value() for m in ms}), 20)
    finally:
        tail.close()
    record = msgspec.json.decode(latest[changelog.user_key(VICTIM)])
    assert record["history"]["seq"] == len(mine)
    assert record["ids"] == ["old-1", *mine]  # its earlier event ids still count as applied
    lone = msgspec.json.decode(latest[changelog.user_key(LONE)])  # written though unchanged
    assert (lone["history"]["seq"], lone["ids"]) == (0, ["old-2"])
