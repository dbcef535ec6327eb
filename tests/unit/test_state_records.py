"""A user entry's applied event ids: forgetting by time scans the ids only when one may have
expired, and forgets exactly the ids a full scan would."""

from __future__ import annotations

import msgspec

from consumers.state.records import UserEntry, decode_user, encode_user
from models.history import UserHistory


def entry(ids: dict[str, float]) -> UserEntry:
    e = UserEntry(UserHistory(), {}, partition=0)
    for event_id, t in ids.items():
        e.remember(event_id, t)
    return e


def test_forgets_the_ids_a_scan_forgets_and_scans_only_when_needed() -> None:
    times = {f"e{n}": float((n * 7) % 50) for n in range(50)}  # out of order
    e = entry(times)
    calls: list[float] = []

    def keep_from(limit: float):
        def keep(t: float) -> bool:
            calls.append(t)
            return t >= limit
        return keep

    e.forget(keep_from(0.0), 0)
    assert len(calls) == 1 and e.ids == times  # the oldest is kept: nothing else is read
    e.forget(keep_from(20.0), 0)
    assert e.ids == {i: t for i, t in times.items() if t >= 20.0}
    assert sorted(e.dropped) == sorted(i for i, t in times.items() if t < 20.0)
    calls.clear()
    e.remember("late", 10.0)  # an event older than the rest arrives
    e.forget(keep_from(15.0), 0)
    assert "late" not in e.ids and len(calls) > 1


def test_an_entry_whose_oldest_time_is_unknown_scans() -> None:
    e = UserEntry(UserHistory(), {"a": 1.0, "b": 5.0}, partition=0)  # as decoded
    e.remember("c", 9.0)
    e.forget(lambda t: t >= 3.0, 0)
    assert e.ids == {"b": 5.0, "c": 9.0} and e.oldest == 5.0


def test_a_user_with_impressions_and_no_event_yet_round_trips_without_a_first_time() -> None:
    """Such a user's record is the one written without a first event time: a page is reported
    before the user's first event (or before the next event of an expired user). Its columns
    are empty arrays once decoded; the restore must take it as it is."""
    from models.feedback import FeedbackConfig, UserFeedback

    h = UserHistory(max_events=5)
    h.feedback = UserFeedback.new(FeedbackConfig(), new_user=True)
    value = encode_user(UserEntry(h, {"~imp/x1": 50.0}, partition=1), ["sku-1"])
    assert msgspec.json.decode(value)["history"]["first"] is None
    back = decode_user(value, {"sku-1": 0}.__getitem__, partition=1)
    assert (back.history.seq, back.history.first_time, back.ids) == (0, None, {"~imp/x1": 50.0})
    assert back.history.feedback is not None
    back.history.add(0, 1.0, t=60.0)
    again = decode_user(encode_user(back, ["sku-1"]), {"sku-1": 0}.__getitem__, partition=1)
    assert again.history.first_time == 60.0


def test_index_entries_say_what_index_of_says() -> None:
    """The new-disk restore's reading of a record (times as bytes) against the general one, on
    records with and without id times, with no event, and with ids newer than the events."""
    import struct

    from consumers.changelog import user_value
    from consumers.state.records import index_entries, index_of, indexed

    h = UserHistory(max_events=3)
    for t in (10.0, 30.0, 20.0, 40.0):
        h.add(0, 1.0, t=t)
    records = [
        encode_user(UserEntry(h, {"a": 5.0, "b": 45.0}, 0), ["x"]),  # an id after the events
        encode_user(UserEntry(h, {}, 0), ["x"]),
        encode_user(UserEntry(UserHistory(3), {"~imp/1": 7.0}, 0), ["x"]),  # no event
        encode_user(UserEntry(UserHistory(3), {}, 0), ["x"]),
        user_value(h.to_state(["x"]), ["old-1", "old-2"]),  # an earlier version: no id times
    ]
    for value in records:
        last, pairs = index_of(value)
        last2, ids, raw, listed = index_entries(value)
        assert listed == indexed(value)[2]
        assert last2 == last and ids == [i for i, _ in pairs]
        assert list(struct.unpack(f"<{len(ids)}d", raw)) == [t for _, t in pairs]


def test_the_newest_id_time_follows_every_change_of_the_ids() -> None:
    """`last_time` reads a kept maximum of the ids' times instead of scanning them: after any
    sequence of remembering (ids out of order, an id again) and forgetting (by time, by cap),
    it equals the scan."""
    import random

    rng = random.Random(7)
    h = UserHistory(max_events=5)
    h.add(0, 1.0, t=30.0)
    e = UserEntry(h, {"a": 40.0, "b": 10.0}, partition=0)  # as decoded
    for step in range(2000):
        roll = rng.random()
        if roll < 0.6:
            e.remember(f"e{rng.randrange(300)}", float(rng.randrange(100)))
        elif roll < 0.8:
            limit = float(rng.randrange(60))
            e.forget(lambda t, limit=limit: t >= limit, 0)
        else:
            e.forget(lambda t: True, rng.randrange(1, 20))
        scanned = max([30.0, *e.ids.values()])
        assert e.last_time == scanned, step
        assert e.newest == max(e.ids.values(), default=None), step
