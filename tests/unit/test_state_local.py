"""A worker's local state without Kafka: batches staged and committed to the stores, aborts,
eviction and reload, expiry and de-duplication by event-time horizons, index derivation."""

from __future__ import annotations

import pytest

from consumers.changelog import parse_key, user_key
from consumers.state.local import LocalState, derive_user_indexes
from consumers.state.store import PartitionStore, StoreBatch
from models.expiry import Horizon
from models.history import UserHistory

ITEMS = [f"i{n}" for n in range(50)]
INDEX = {x: n for n, x in enumerate(ITEMS)}.__getitem__
DAY = 86400.0


def state(tmp_path, **kw) -> LocalState:
    kw.setdefault("cache_users", 1000)
    st = LocalState(tmp_path, "cl", new_history=lambda: UserHistory(5), item_ids=lambda: ITEMS,
                    item_index=INDEX, **kw)
    for p in (0, 1):
        st.open(p, "topic-id")
    return st


def apply(st: LocalState, events: list[tuple[str, int, str, int, float]], watermark: float,
          offsets: dict[int, int] | None = None) -> list[bool]:
    """One batch of (user, partition, event id, item, time); returns which were duplicates."""
    dup = []
    for user, p, event_id, item, t in events:
        entry = st.user(user, p, watermark) or st.new_user(user, p)
        dup.append(st.seen(entry, event_id, p, watermark))
        if not dup[-1]:
            entry.history.add(item, 1.0, t)
            st.remember(user, entry, event_id, t, watermark)
    for user in {u for u, *_ in events}:
        st.stage_user(user)
    st.commit(offsets or {0: 1, 1: 1})
    return dup


def test_a_committed_user_reloads_equal_after_eviction_and_a_reopen(tmp_path) -> None:
    st = state(tmp_path, cache_users=2)
    apply(st, [(f"u{n}", n % 2, f"e{n}", n, 100.0 + n) for n in range(10)], 200.0)
    assert len(st.cache) == 2  # trimmed to the capacity after the commit
    before = {u: st.stores[n % 2].get(user_key(u)) for n, u in enumerate(f"u{n}" for n in
                                                                       range(10))}
    st.close_all()
    st = state(tmp_path)
    for n in range(10):
        e = st.user(f"u{n}", n % 2, 200.0)
        assert e.history.events()["item"].tolist() == [n] and e.ids == {f"e{n}": 100.0 + n}
        assert st.stores[n % 2].get(user_key(f"u{n}")) == before[f"u{n}"]


def test_an_abort_evicts_the_batch_users_and_nothing_reaches_the_store(tmp_path) -> None:
    st = state(tmp_path)
    apply(st, [("u1", 0, "e1", 1, 100.0)], 100.0, {0: 5})
    entry = st.user("u1", 0, 100.0)
    entry.history.add(2, 1.0, 101.0)
    st.remember("u1", entry, "e2", 101.0, 101.0)
    st.stage_user("u1")
    st.abort()
    again = st.user("u1", 0, 101.0)
    assert again.history.events()["item"].tolist() == [1] and list(again.ids) == ["e1"]
    assert st.stores[0].checkpoint.offset == 5
    assert st.stores[0].event("e2") is None


def test_ids_are_duplicates_across_users_of_a_partition_within_the_horizon(tmp_path) -> None:
    st = state(tmp_path, id_horizon=Horizon(DAY))
    t = 10 * DAY
    # u2 re-sends u1's id in the same batch; u3's partition has not seen it
    dup = apply(st, [("u1", 0, "e1", 1, t), ("u2", 0, "e1", 2, t), ("u3", 1, "e1", 3, t)], t)
    assert dup == [False, True, False]
    assert apply(st, [("u4", 0, "e1", 4, t + 100)], t + 100) == [True]  # from the index
    later = t + 3 * DAY
    assert apply(st, [("u4", 0, "e1", 4, later)], later) == [False]  # beyond the horizon


def test_an_expired_user_is_new_at_its_next_event_and_the_sweep_finds_it(tmp_path) -> None:
    st = state(tmp_path, user_horizon=Horizon(30 * DAY), id_horizon=Horizon(DAY))
    apply(st, [("old", 0, "e1", 1, 0.0), ("new", 0, "e2", 2, 40 * DAY)], 40 * DAY)
    assert [parse_key(k)[1] for _, k in st.inactive(0, 40 * DAY, 10)] == ["old"]
    apply(st, [("old", 0, "e3", 3, 40 * DAY)], 40 * DAY)
    e = st.user("old", 0, 40 * DAY)
    assert e.history.events()["item"].tolist() == [3] and list(e.ids) == ["e3"]
    assert st.stores[0].event("e1") is None  # its old ids left the index
    assert st.inactive(0, 40 * DAY, 10) == []


def test_a_sweep_tombstone_removes_the_record_and_its_indexes(tmp_path) -> None:
    st = state(tmp_path, user_horizon=Horizon(30 * DAY))
    apply(st, [("gone", 1, "e1", 1, 0.0), ("here", 1, "e2", 2, 40 * DAY)], 40 * DAY)
    for bucket, key in st.inactive(1, 40 * DAY, 10):
        st.stage_expiry(1, key, bucket)
    st.commit({1: 9})
    store = st.stores[1]
    assert store.get(user_key("gone")) is None and store.event("e1") is None
    assert store.get(user_key("here")) is not None
    assert st.inactive(1, 40 * DAY, 10) == [] and st.user("gone", 1, 40 * DAY) is None


def test_derived_indexes_of_a_restore_equal_those_the_worker_wrote(tmp_path) -> None:
    horizon = Horizon(30 * DAY)
    st = state(tmp_path / "a", user_horizon=horizon)
    records = []
    for n in range(3):
        apply(st, [(f"u{k}", 0, f"e{n}-{k}", k, n * DAY + k) for k in range(5)], n * DAY)
        records += [(user_key(f"u{k}"), st.stores[0].get(user_key(f"u{k}"))) for k in range(5)]
    derive = derive_user_indexes(horizon)
    with PartitionStore.open(tmp_path / "b", "cl", 0) as rebuilt:
        for key, value in records:  # the changelog, replayed one record at a time
            batch = StoreBatch()
            derive(key, rebuilt.get(key), value, batch)
            batch.put(key, value)
            rebuilt.commit(batch, rebuilt.checkpoint or _cp())
        assert rebuilt.inactive(below=10**6) == st.stores[0].inactive(below=10**6)
        for n in range(3):
            for k in range(5):
                assert rebuilt.event(f"e{n}-{k}") == st.stores[0].event(f"e{n}-{k}")


def listed(st: LocalState, user: str, p: int, items: list[str]) -> None:
    """The user's last published list is `items` (as the worker's feedback step keeps it)."""
    from models.feedback import FeedbackConfig, UserFeedback
    h = st.user(user, p, 0.0).history
    h.feedback = h.feedback or UserFeedback.new(FeedbackConfig(), new_user=False)
    h.feedback.published(f"r-{user}-{items}", items)


def test_users_are_indexed_by_the_items_of_their_last_list(tmp_path) -> None:
    horizon = Horizon(30 * DAY)
    st = state(tmp_path / "a", user_horizon=horizon)
    apply(st, [("u1", 0, "e1", 1, 1.0), ("u2", 0, "e2", 2, 2.0), ("u3", 1, "e3", 3, 3.0)], 3.0)
    records = [(user_key(u), st.stores[p].get(user_key(u))) for u, p in
               [("u1", 0), ("u2", 0)]]
    for user, p, items in [("u1", 0, ["i7", "i8"]), ("u2", 0, ["i8", "i9"]),
                           ("u3", 1, ["i8"])]:
        listed(st, user, p, items)
        st.stage_user(user)
    st.commit({0: 2, 1: 2})
    assert st.stores[0].listing("i8") == [b"u1", b"u2"] and st.stores[1].listing("i8") == [b"u3"]
    listed(st, "u1", 0, ["i9", "i6"])  # a new list: the index follows at commit
    st.stage_user("u1")
    assert st.stores[0].listing("i7") == [b"u1"]  # not before
    st.commit({0: 3})
    assert st.stores[0].listing("i7") == [] and st.stores[0].listing("i9") == [b"u1", b"u2"]
    records += [(user_key(u), st.stores[0].get(user_key(u))) for u in ("u1", "u2")]
    derive = derive_user_indexes(horizon)
    with PartitionStore.open(tmp_path / "b", "cl", 0) as rebuilt:  # a restore derives it
        for key, value in records:
            batch = StoreBatch()
            derive(key, rebuilt.get(key), value, batch)
            batch.put(key, value)
            rebuilt.commit(batch, rebuilt.checkpoint or _cp())
        for item in ("i6", "i7", "i8", "i9"):
            assert rebuilt.listing(item) == st.stores[0].listing(item)
    st.close(0)  # reloaded from the store, a user's next list moves its index entries
    st.open(0)
    listed(st, "u2", 0, ["i5"])
    st.stage_user("u2")
    st.commit({0: 4})
    assert st.stores[0].listing("i9") == [b"u1"] and st.stores[0].listing("i5") == [b"u2"]


def test_an_expired_users_list_leaves_the_index(tmp_path) -> None:
    st = state(tmp_path, user_horizon=Horizon(30 * DAY))
    apply(st, [("gone", 1, "e1", 1, 0.0)], 0.0)
    listed(st, "gone", 1, ["i4"])
    st.stage_user("gone")
    st.commit({1: 2})
    apply(st, [("here", 1, "e2", 2, 40 * DAY)], 40 * DAY)
    for bucket, key in st.inactive(1, 40 * DAY, 10):
        st.stage_expiry(1, key, bucket)
    st.commit({1: 9})
    assert st.stores[1].listing("i4") == []


def _cp():
    from consumers.state.store import Checkpoint
    return Checkpoint("cl", None, 0, 0)


@pytest.mark.parametrize("cap", [2, 0])
def test_a_user_keeps_at_most_the_cap_of_ids(tmp_path, cap) -> None:
    st = state(tmp_path, max_ids_per_user=cap)
    apply(st, [("u", 0, f"e{n}", n, float(n)) for n in range(5)], 5.0)
    ids = list(st.user("u", 0, 5.0).ids)
    assert ids == (["e3", "e4"] if cap else [f"e{n}" for n in range(5)])
    assert (st.stores[0].event("e0") is None) == bool(cap)


def test_a_reset_user_starts_empty_keeps_its_ids_and_moves_its_activity_entry(tmp_path) -> None:
    st = state(tmp_path, user_horizon=Horizon(30 * DAY), id_horizon=Horizon(DAY))
    apply(st, [("u1", 0, "e1", 1, 0.0)], 0.0)
    stored = st.stores[0].get(user_key("u1"))
    assert st.reset("u1", 0) == stored and st.reset("nobody", 0) is None
    st.abort()  # the stored state comes back
    assert st.user("u1", 0, 0.0).history.events()["item"].tolist() == [1]
    assert st.reset("u1", 0) == stored
    entry = st.user("u1", 0, 0.5 * DAY)
    assert len(entry.history) == 0 and list(entry.ids) == ["e1"]
    assert st.seen(entry, "e1", 0, 0.5 * DAY)  # still a duplicate within its horizon
    entry.history.add(2, 1.0, 20 * DAY)
    st.remember("u1", entry, "e2", 20 * DAY, 20 * DAY)
    st.stage_user("u1")
    st.commit({0: 2})
    st.close_all()
    st = state(tmp_path, user_horizon=Horizon(30 * DAY), id_horizon=Horizon(DAY))
    assert st.inactive(0, 45 * DAY, 10) == []  # the old activity entry went with the reset
    again = st.user("u1", 0, 20 * DAY)
    assert again.history.events()["item"].tolist() == [2] and list(again.ids) == ["e2"]


def sweep(st: LocalState, p: int, watermark: float) -> list[str]:
    """One batch that only sweeps partition `p`: the users it tombstones."""
    found = st.inactive(p, watermark, 1000)
    for bucket, key in found:
        st.stage_expiry(p, key, bucket)
    st.commit({p: 1})
    return sorted(parse_key(key)[1] for _, key in found)


def test_a_sweep_that_skips_its_scan_still_finds_a_late_user(tmp_path) -> None:
    """After a sweep that left nobody expired, the next ones at the same watermark bucket skip
    the scan, unless a batch since committed a user into an expired bucket (a late event)."""
    st = state(tmp_path, user_horizon=Horizon(DAY, granularity=24),
               id_horizon=Horizon(DAY / 2))
    apply(st, [("old", 0, "e1", 1, 0.0), ("new", 0, "e2", 2, 2 * DAY)], 2 * DAY)
    assert sweep(st, 0, 2 * DAY) == ["old"]
    assert sweep(st, 0, 2 * DAY) == []  # nothing left below: the next one need not scan
    apply(st, [("late", 0, "e3", 3, 10.0)], 2 * DAY)  # committed into an expired bucket
    assert sweep(st, 0, 2 * DAY) == ["late"]


def test_a_sweep_scans_again_after_passing_over_a_user_it_found(tmp_path) -> None:
    """A user the index lists as expired but whose cached entry is newer is passed over: the
    scan is not skipped next time (the entry may be evicted before it reaches the store)."""
    st = state(tmp_path, user_horizon=Horizon(DAY, granularity=24))
    apply(st, [("u", 0, "e1", 1, 0.0)], 0.0)
    entry = st.user("u", 0, 0.0)
    entry.remember("e2", 2 * DAY)  # newer in memory than in the store's index, not staged
    assert sweep(st, 0, 2 * DAY) == []
    st.cache.pop("u")
    assert sweep(st, 0, 2 * DAY) == ["u"]
