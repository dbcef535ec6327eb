"""UserHistory: bounds, decay, session boost, blocks, consumed items, checkpoint round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.history import EVENT_DTYPE, Decay, UserHistory, confidences_many

NO_DECAY = Decay("none")


def as_dict(items: np.ndarray, conf: np.ndarray) -> dict[int, float]:
    return {int(i): float(c) for i, c in zip(items, conf, strict=True)}


def test_ring_keeps_the_newest_max_events_in_order() -> None:
    h = UserHistory(max_events=5)
    for i in range(12):
        h.add(i, 1.0, t=float(i))
    ev = h.events()
    assert len(h) == 5 and h.seq == 12
    assert ev["item"].tolist() == [7, 8, 9, 10, 11]
    assert ev["seq"].tolist() == [7, 8, 9, 10, 11]
    assert sorted(h.confidences(0.0, NO_DECAY)[0].tolist()) == [7, 8, 9, 10, 11]


def test_memory_per_event_is_28_bytes_and_bounded() -> None:
    h = UserHistory(max_events=50)
    for i in range(500):
        h.add(i, 1.0, t=float(i), session_id=f"s{i}")
    assert EVENT_DTYPE.itemsize == 28
    assert h.nbytes == 28 * 50


def test_event_count_decay_halves_every_half_life_events() -> None:
    h = UserHistory()
    for i in range(4):
        h.add(i, 1.0, t=1000.0 * i)  # times must not matter
    got = as_dict(*h.confidences(now=0.0, decay=Decay("events", half_life=2.0)))
    assert got == pytest.approx({0: 2**-1.5, 1: 0.5, 2: 2**-0.5, 3: 1.0})


def test_time_decay_halves_every_half_life_seconds_and_ignores_future() -> None:
    h = UserHistory()
    h.add(1, 1.0, t=0.0)
    h.add(2, 2.0, t=10.0)
    h.add(3, 1.0, t=30.0)  # after `now`: counts fully
    got = as_dict(*h.confidences(now=20.0, decay=Decay("time", half_life=10.0)))
    assert got == pytest.approx({1: 0.25, 2: 1.0, 3: 1.0})


def test_repeated_items_are_summed_and_zero_sums_dropped() -> None:
    h = UserHistory()
    for item, w in [(1, 0.3), (2, 1.0), (1, 0.6), (2, -1.0), (3, -1.0)]:
        h.add(item, w, t=0.0)
    items, conf = h.confidences(0.0, NO_DECAY)
    assert items.dtype == np.int32 and conf.dtype == np.float32
    assert as_dict(items, conf) == pytest.approx({1: 0.9, 3: -1.0})


def test_session_boost_applies_to_the_current_session_only() -> None:
    h = UserHistory()
    h.add(1, 1.0, t=0.0, session_id="a")
    h.add(2, 1.0, t=1.0, session_id="b")
    h.add(3, 1.0, t=2.0, session_id="b")
    got = as_dict(*h.confidences(0.0, Decay("none", session_boost=3.0)))
    assert got == {1: 1.0, 2: 3.0, 3: 3.0}


def test_returning_to_an_earlier_session_id_opens_a_new_session() -> None:
    h = UserHistory()
    for item, sid in [(1, "a"), (2, "b"), (3, "a"), (4, None), (5, "c")]:
        h.add(item, 1.0, t=0.0, session_id=sid)
    assert h.events()["session"].tolist() == [0, 1, 2, -1, 3]
    h.add(6, 1.0, t=0.0)  # no session: nothing is boosted
    got = as_dict(*h.confidences(0.0, Decay("none", session_boost=2.0)))
    assert set(got.values()) == {1.0}


def test_max_age_window_drops_old_events() -> None:
    h = UserHistory(max_age=60.0)
    h.add(1, 1.0, t=0.0)
    h.add(2, 1.0, t=50.0)
    assert h.confidences(now=100.0, decay=NO_DECAY)[0].tolist() == [2]
    assert h.confidences(now=55.0, decay=NO_DECAY)[0].tolist() == [1, 2]


def test_blocks_and_consumed_items_are_excluded_and_capped() -> None:
    h = UserHistory(max_excluded=3)
    h.add(9, -1.0, t=0.0, block=True)
    for item in range(5):
        h.add(item, 1.0, t=0.0, consume=True)
    assert list(h.consumed) == [2, 3, 4]  # the oldest were forgotten
    assert sorted(h.excluded().tolist()) == [2, 3, 4, 9]
    h.unblock(9)
    assert 9 not in h.excluded().tolist()


def test_decay_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        Decay("weekly")
    with pytest.raises(ValueError):
        Decay("events", half_life=0.0)


def build_history() -> UserHistory:
    h = UserHistory(max_events=4, max_age=500.0, max_excluded=10)
    rng = np.random.default_rng(3)
    for i in range(7):
        h.add(int(rng.integers(20)), float(rng.normal()), t=10.0 * i,
              session_id=["x", "y"][i // 4], consume=i % 3 == 0, block=i == 5)
    return h


@pytest.mark.parametrize("decay", [Decay("events", 2.0, 1.5), Decay("time", 30.0), NO_DECAY])
def test_state_round_trips_through_json(decay: Decay) -> None:
    h = build_history()
    state = json.loads(json.dumps(h.to_state()))
    g = UserHistory.from_state(state)
    assert g.to_state() == h.to_state()
    for x in (h, g):  # both continue identically
        x.add(3, 0.7, t=80.0, session_id="y")
    a, b = h.confidences(90.0, decay), g.confidences(90.0, decay)
    assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
    assert sorted(h.excluded().tolist()) == sorted(g.excluded().tolist())


def test_state_can_carry_item_ids_instead_of_indices() -> None:
    h = build_history()
    ids = [f"item-{i}" for i in range(20)]
    state = h.to_state(ids)
    assert all(isinstance(x, str) for x in state["items"] + state["blocked"] + state["consumed"])
    other = {item_id: 100 + n for n, item_id in enumerate(ids)}  # another process's indices
    g = UserHistory.from_state(state, other.__getitem__)
    assert g.events()["item"].tolist() == [100 + i for i in h.events()["item"].tolist()]
    assert sorted(g.blocked) == sorted(100 + i for i in h.blocked)


def test_unknown_state_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        UserHistory.from_state({**build_history().to_state(), "v": 99})


def test_confidences_many_equals_one_user_at_a_time() -> None:
    rng = np.random.default_rng(0)
    hs = []
    for n in (0, 3, 60, 1):
        h = UserHistory(max_events=20, max_age=None if n != 60 else 300.0)
        for i in range(n):
            h.add(int(rng.integers(10)), float(rng.normal()), t=float(10 * i),
                  session_id=str(i // 5))
        hs.append(h)
    nows = [100.0, 50.0, 600.0, 0.0]
    decay = Decay("time", 40.0, session_boost=2.0)
    offsets, items, conf = confidences_many(hs, nows, decay)
    for j, (h, now) in enumerate(zip(hs, nows, strict=True)):
        one = h.confidences(now, decay)
        assert items[offsets[j]:offsets[j + 1]].tolist() == one[0].tolist()
        assert conf[offsets[j]:offsets[j + 1]].tolist() == one[1].tolist()


def test_a_state_without_its_first_time_takes_the_oldest_event_held_from_array_columns() -> None:
    """States written before the first event time was kept, as a restore hands them over
    (numeric columns as arrays): the oldest time held stands in for it."""
    h = UserHistory(10)
    for t in (5.0, 3.0, 9.0):
        h.add(1, 1.0, t)
    state = h.to_state()
    state["first"] = None
    state = {**state, **{k: np.asarray(state[k]) for k in ("weights", "times", "seqs", "sessions")}}
    assert UserHistory.from_state(state).first_time == 3.0
    empty = UserHistory(10).to_state()
    empty["first"] = None
    empty = {**empty, **{k: np.asarray(empty[k]) for k in ("weights", "times", "seqs", "sessions")}}
    assert UserHistory.from_state(empty).first_time is None
