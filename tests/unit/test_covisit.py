"""Session co-visitation: exact counts and scores, the blend, and the recommender with it on."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest

from models.catalog import ItemIndex
from models.covisit import CoVisits, blend
from models.foldin import ItemFactors
from models.packing import pack, unpack
from models.recommender import FoldInConfig, OnlineRecommender

N_ITEMS, K, PARTS, USERS = 30, 4, 3, 40
IDS = [f"i{n}" for n in range(N_ITEMS)]


def factors() -> ItemFactors:
    Y = np.random.default_rng(0).normal(size=(N_ITEMS, K)).astype(np.float32)
    return ItemFactors(IDS, Y, version=1)


def config(**kw: object) -> FoldInConfig:
    base = dict(alpha=5.0, regularization=0.1, k=6, full_events=3, shrink=3.0,
                session_weight=1.0, session_window=4, session_items=5, max_neighbors=8,
                session_refresh_events=7)
    return FoldInConfig(**{**base, **kw})  # type: ignore[arg-type]


def sequences(seed: int = 0, n: int = 400) -> list[tuple[int, int]]:
    """(user, item) positive events."""
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(USERS)), int(rng.integers(N_ITEMS))) for _ in range(n)]


def dense_reference(events: list[tuple[int, int]], window: int, decay: float):
    C, n, seen = np.zeros((N_ITEMS, N_ITEMS)), np.zeros(N_ITEMS), {}
    for u, i in events:
        prev = seen.setdefault(u, [])
        for g, j in enumerate(reversed(prev[-window:])):
            if j != i:
                C[i, j] += decay**g
                C[j, i] += decay**g
        n[i] += 1
        prev.append(i)
    return C, n, seen


def fill(cv: CoVisits, events: list[tuple[int, int]], before: list | None = None) -> None:
    seen: dict[int, list[int]] = {}
    for u, i in before or []:
        seen.setdefault(u, []).append(i)
    for u, i in events:
        prev = seen.setdefault(u, [])
        cv.add(i, np.array(prev, dtype=np.intp))
        prev.append(i)


def test_counts_and_scores_equal_a_dense_reference_below_the_cap() -> None:
    events = sequences()
    cv, chunked = (CoVisits(window=3, decay=0.7, max_neighbors=N_ITEMS) for _ in range(2))
    fill(cv, events)
    assert cv.pending() > 0 and cv.neighbours(0) == ([], [])
    cv.refresh()
    assert cv.pending() == 0
    for lo in range(0, len(events), 37):  # refreshing more often sums the same counts
        fill(chunked, events[lo : lo + 37], events[:lo])
        chunked.refresh()
    C, n, seen = dense_reference(events, 3, 0.7)
    for i in range(N_ITEMS):
        for state in (cv, chunked):
            nbr, wt = state.neighbours(i)
            assert nbr == np.flatnonzero(C[i]).tolist()
            assert wt == pytest.approx(C[i, nbr], rel=1e-12)
    assert cv.count[:N_ITEMS].tolist() == n.tolist()
    recent = np.array(seen[0][-5:])
    idx, val = cv.scores(recent, half_life=2.0)
    q = 2.0 ** (-np.arange(len(recent) - 1, -1, -1) / 2.0) / np.sqrt(np.maximum(n[recent], 1))
    want = (q @ C[recent]) / np.sqrt(np.maximum(n, 1))
    assert idx.tolist() == np.flatnonzero(want > 0).tolist()
    assert val == pytest.approx(want[idx], rel=1e-12)


def test_a_full_row_stays_within_its_cap_and_keeps_its_heavy_neighbour() -> None:
    cv = CoVisits(window=1, decay=1.0, max_neighbors=3)
    for j in range(1, 20):  # item 0 is co-visited with 1 often, with 2..19 once each
        cv.add(0, np.array([1]))
        cv.add(0, np.array([j]))
        if j % 4 == 0:
            cv.refresh()
    cv.refresh()
    nbr, wt = cv.neighbours(0)
    assert len(nbr) <= 3 and 1 in nbr
    assert wt[nbr.index(1)] == 20.0  # 19 times, and once as the j = 1 of the loop


def test_blend_with_weight_zero_or_no_session_returns_the_cf_scores_themselves() -> None:
    cf = np.array([0.3, -1.0, 2.0], dtype=np.float32)
    assert blend(cf, np.array([0]), np.array([1.0]), weight=0.0) is cf
    assert blend(cf, np.zeros(0, np.intp), np.zeros(0), weight=1.0) is cf
    # the maxima skip excluded items: item 2's score does not scale the others
    got = blend(cf, np.array([0, 2]), np.array([1.0, 5.0]), weight=1.0, exclude=np.array([2]))
    assert got[:2].tolist() == pytest.approx([0.3 / 1.0 + 1.0, -1.0])


def test_session_weight_zero_is_the_old_path_and_keeps_no_counts() -> None:
    events = sequences(1, 200)
    lists = []
    for cfg in (config(session_weight=0.0), config(session_weight=0.0, session_window=1)):
        rec = OnlineRecommender(cfg, factors())
        for t, (u, i) in enumerate(events):
            rec.learn(f"u{u}", IDS[i], "click", t=float(t))
        lists.append([rec.recommend(f"u{u}", now=1e6).items for u in range(USERS)])
        assert len(rec.partition(0).covisits) == 0
    assert lists[0] == lists[1]


def test_a_strong_blend_ranks_the_co_visited_item_first() -> None:
    rec = OnlineRecommender(config(session_weight=100.0, full_events=1,
                                   session_refresh_events=1), factors())
    for u in range(5):  # everyone goes from i3 to i7
        rec.learn(f"u{u}", "i3", "click", t=float(u))
        rec.learn(f"u{u}", "i7", "click", t=float(u) + 0.5)
    rec.learn("me", "i3", "click", t=10.0)
    assert rec.recommend("me", now=10.0).items[0] == "i7"


@pytest.mark.parametrize("how", ["purchase", "dismiss", "inactive"])
def test_the_blend_never_recommends_consumed_blocked_or_inactive_items(how: str) -> None:
    rec = OnlineRecommender(config(session_weight=100.0, session_refresh_events=1), factors())
    for u in range(5):
        rec.learn(f"u{u}", "i3", "click", t=float(u))
        rec.learn(f"u{u}", "i7", "click", t=float(u) + 0.5)
    rec.learn("me", "i3", "click", t=10.0)
    if how == "inactive":
        rec.set_item_active("i7", False)
    else:
        rec.learn("me", "i7", how, t=11.0)
        rec.learn("me", "i3", "click", t=12.0)
    for batch in (False, True):
        got = (rec.process_batch([SimpleNamespace(
            user_id="me", item_id="i3", event_type="view", event_time=13.0)])[0][1]
            if batch else rec.recommend("me", now=13.0))
        assert "i7" not in got.items
        assert got.items


# -- per partition: batching, undo and restoring, as for the rest of a partition's state


def stream(n: int, seed: int = 0) -> list[tuple[SimpleNamespace, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for j in range(n):
        user = int(rng.integers(USERS))
        ev = SimpleNamespace(user_id=f"u{user}", item_id=IDS[int(rng.integers(N_ITEMS))],
                             event_type=["click", "view", "purchase"][int(rng.integers(3))],
                             event_time=1000.0 + j, value=None, weight=None, session_id=None)
        out.append((ev, user % PARTS))
    return out


def run(rec: OnlineRecommender, events: list, batch_size: int) -> dict:
    latest = {}
    for lo in range(0, len(events), batch_size):
        chunk = events[lo : lo + batch_size]
        for ev, recs in rec.process_batch([e for e, _ in chunk], [p for _, p in chunk]):
            latest[ev.user_id] = recs
    return latest


def plain(rec: OnlineRecommender) -> dict:
    return json.loads(json.dumps(
        {p: rec.partition(p).to_plain(rec.catalog.ids, rec.model_version) for p in range(PARTS)}))


def same_lists(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for user in a:
        assert a[user].items == b[user].items, user
        assert a[user].scores == pytest.approx(b[user].scores, rel=1e-6, abs=1e-9)


@pytest.mark.slow
def test_lists_and_counts_do_not_depend_on_batches() -> None:
    events = stream(500)
    one = OnlineRecommender(config(), factors())
    want = run(one, events, 1)
    assert any(p["rows"] for p in plain(one).values())
    assert any("pend" in e for p in plain(one).values() for e in p["items"].values())
    for batch_size in (9, 500):
        rec = OnlineRecommender(config(), factors())
        same_lists(run(rec, events, batch_size), want)
        assert plain(rec) == plain(one)


def test_revert_undoes_a_batch_of_co_visits() -> None:
    events = stream(300, seed=2)
    rec = OnlineRecommender(config(), factors())
    run(rec, events[:200], 50)
    before = plain(rec)
    batch = events[200:]
    undo = {p: rec.save_partition(p, [e.item_id for e, q in batch if q == p])
            for p in range(PARTS)}
    users = {e.user_id: rec.user_state(e.user_id) for e, _ in batch}
    first = run(rec, batch, 100)
    for p, u in undo.items():
        rec.revert_partition(p, u)
    for user, s in users.items():
        if s is None:
            rec.drop_user(user)
        else:
            rec.restore_user(user, s, partition=int(user[1:]) % PARTS)
    assert plain(rec) == before
    same_lists(run(rec, batch, 100), first)


def test_a_partition_restored_elsewhere_goes_on_identically() -> None:
    events = stream(400, seed=3)
    head, tail = events[:250], events[250:]
    rec = OnlineRecommender(config(), factors())
    run(rec, head, 25)
    saved = plain(rec)
    users = {u: json.loads(json.dumps(rec.user_state(u))) for u in {e.user_id for e, _ in head}}
    other = OnlineRecommender(config(), factors())
    for item in rec.catalog.ids:
        other.catalog.index(item)
    for user, s in users.items():
        other.restore_user(user, s, partition=int(user[1:]) % PARTS)
    for p, state in saved.items():
        other.restore_partition(int(p), state)
    same_lists(run(rec, tail, 30), run(other, tail, 30))
    assert plain(other) == plain(rec)


def buffered_state(window: int = 4, n: int = 200) -> CoVisits:
    """Counts of `n` events, the last 50 of them still buffered."""
    cv = CoVisits(window=window, decay=0.8, max_neighbors=8)
    previous: dict[int, list[int]] = {}
    for k, (u, i) in enumerate(sequences(n=n)):
        cv.add(i, np.array(previous.setdefault(u, [])[-window:]))
        previous[u].append(i)
        if k == n - 51:
            cv.refresh()
    return cv


def one_sided(pending: dict[str, list]) -> dict[str, list]:
    """Buffered updates as earlier versions wrote them: each side of a pair in its own item's
    record, as (neighbour, gain)."""
    out: dict[str, list] = {item: [] for item in pending}
    for item, entries in pending.items():
        for e in entries:
            out[item].append(e[:2])
            if len(e) > 2:
                out.setdefault(e[0], []).append([item, e[1]])
    return out


def test_rows_written_by_earlier_versions_still_load() -> None:
    """Counts packed (now), as a list of numbers, or as [id, count] pairs; buffered updates
    both ways in one record (now) or one side per record: the same state."""
    cv = buffered_state()
    index = {item_id: n for n, item_id in enumerate(IDS)}.__getitem__
    applied = copy.deepcopy(cv)
    applied.refresh()
    rows = {IDS[i]: cv.row(i, IDS) or {"n": 0.0, "ids": [], "w": pack((), "<f8")}
            for i in cv.items()}
    pending = {IDS[i]: json.loads(json.dumps(cv.pending_of(i, IDS))) for i in cv.items()}
    assert sum(map(len, pending.values())) == cv.pending() > 0
    assert all(isinstance(r["w"], str) for r in rows.values())
    numbers = {i: {**r, "w": unpack(r["w"], "<f8").tolist()} for i, r in rows.items()}
    pairs = {i: {"n": r["n"], "nbrs": [[j, w] for j, w in zip(r["ids"], r["w"], strict=True)]}
             for i, r in numbers.items()}
    for form in (rows, numbers, pairs):
        for buffered in (pending, one_sided(pending)):
            c = CoVisits(4, 0.8, 8)
            for item, row in form.items():
                c.load_row(index(item), json.loads(json.dumps(row)), index)
            for item, entries in buffered.items():
                c.load_pending(index(item), entries, index)
            c.refresh()
            for i in applied.items():
                assert (c.neighbours(i), c.count[i]) == (applied.neighbours(i),
                                                         applied.count[i])


def test_an_event_changes_its_own_items_record_only() -> None:
    """A co-visit is buffered both ways in the record of the event's item, so an event writes
    one record, not one per recent item; the refresh changes every touched row."""
    cv = CoVisits(window=3, decay=0.5, max_neighbors=8)
    assert cv.add(2, np.array([0, 1])) == [2]
    assert cv.pending_of(0, IDS) == [] and cv.pending_of(1, IDS) == []
    assert cv.pending_of(2, IDS) == [(None, 1.0), ("i1", 1.0, 1), ("i0", 0.5, 1)]
    assert cv.refresh() == [0, 1, 2]
    assert cv.neighbours(0) == ([2], [0.5]) and cv.neighbours(2) == ([0, 1], [0.5, 1.0])


def test_forgetting_an_item_drops_its_row_and_every_buffered_pair_naming_it() -> None:
    cv = CoVisits(window=3, decay=0.5)
    for item, previous in [(0, []), (1, [0]), (2, [0, 1]), (3, [1, 2])]:
        cv.add(item, np.array(previous))
    cv.refresh()
    cv.add(0, np.array([1, 3]))
    cv.add(1, np.array([0, 3]))  # buffered, both directions counted at the refresh
    before = dict(zip(*cv.neighbours(0), strict=True))[1]
    cv.forget(1)
    cv.refresh()  # (raised when the buffer's lists went out of step)
    assert cv.neighbours(1) == ([], [])  # its row stays empty
    assert dict(zip(*cv.neighbours(0), strict=True))[1] == before  # nothing new toward it


def test_a_reverted_batch_writes_the_same_row_records_again() -> None:
    """Which slots changed since a row's full record, and its generation, are part of the
    batch's undo: a batch redone after an abort writes what it wrote the first time."""
    rng = np.random.default_rng(4)
    cv = CoVisits(window=3, decay=0.8, max_neighbors=64)
    for _ in range(6):  # rows written in full, then as deltas
        for _ in range(40):
            cv.add(int(rng.integers(30)), rng.integers(0, 30, 3))
        cv.records(cv.refresh(), IDS)
    batch = [(int(rng.integers(30)), rng.integers(0, 30, 3)) for _ in range(40)]
    undo = cv.journal()
    for item, previous in batch:
        cv.add(item, previous)
    first = cv.records(cv.refresh(), IDS)
    assert first[0] and first[1]  # both kinds
    cv.revert(undo)
    cv.journal()
    for item, previous in batch:
        cv.add(item, previous)
    assert cv.records(cv.refresh(), IDS) == first


def test_records_name_items_that_joined_the_catalog_since() -> None:
    """The records' neighbour names follow a growing catalog, named by its shared array
    (`ItemIndex.names`, past its spare room) or by a list of ids; an event's slot names None."""
    for shared in (True, False):
        catalog = ItemIndex(["i0", "i1"])
        ids = catalog.names if shared else lambda c=catalog: c.ids
        cv = CoVisits(window=2, max_neighbors=8)
        cv.add(1, np.array([0]))
        cv.refresh()
        rows, _ = cv.records([0, 1], ids())
        assert rows["i1"]["ids"] == ["i0"]
        for n in range(2, 3000):  # the catalog grows by an item a step
            catalog.index(f"i{n}")
            cv.add(n, np.array([n - 1]))
        cv.refresh()
        rows, _ = cv.records([2999, 1500], ids())
        assert rows["i2999"]["ids"] == ["i2998"]
        assert sorted(rows["i1500"]["ids"]) == ["i1499", "i1501"]
        assert cv.pending_record(2999, ids()) is None
        cv.add(2999, np.array([1]))
        assert cv.pending_record(2999, ids())["ids"] == [None, "i1"]  # None: the event itself


def test_rows_are_held_for_co_visited_items_only_not_up_to_the_largest_index() -> None:
    """A click pair on the last items of a million-item catalog costs two rows, not a million
    (3.3 GB per partition when rows were indexed by item)."""
    cv = CoVisits(window=2, max_neighbors=256)
    for item, previous in [(999_998, [5]), (999_999, [999_998])]:
        cv.add(item, np.array(previous))
    cv.refresh()
    assert len(cv) >= 1_000_000
    assert cv.neighbours(999_999) == ([999_998], [1.0])
    assert cv.neighbours(5) == ([999_998], [1.0]) and cv.neighbours(6) == ([], [])
    assert cv.nbytes < 64 << 20  # ~33 bytes per item and 3.3 KB per row held
    idx, val = cv.scores(np.array([5, 999_998]), half_life=1.0)  # 5 half as recent
    assert (idx.tolist(), val.tolist()) == ([5, 999_998, 999_999], [1.0, 0.5, 1.0])


def test_rows_given_out_inside_a_reverted_batch_leave_no_trace() -> None:
    ids = [f"i{n}" for n in range(5000)]
    cv, fresh = CoVisits(window=2, max_neighbors=4), CoVisits(window=2, max_neighbors=4)
    for c in (cv, fresh):
        c.add(1, np.array([0]))
        c.refresh()
    undo = cv.journal()
    cv.add(4999, np.array([1]))  # a new row for 4999, and a neighbour more for 1
    cv.refresh()
    cv.revert(undo)
    assert cv.neighbours(4999) == ([], []) and cv.neighbours(1) == ([0], [1.0])
    for c in (cv, fresh):
        c.add(4998, np.array([4999]))
        c.add(4999, np.array([1, 4998]))
    assert cv.records(cv.refresh(), ids) == fresh.records(fresh.refresh(), ids)
    assert cv.scores(np.array([4999]), 1.0)[1].tolist() == \
        fresh.scores(np.array([4999]), 1.0)[1].tolist()


def test_buffered_records_follow_the_buffer_while_it_is_asked_for_between_changes() -> None:
    """A partition's write asks for the buffered records after every batch, and the buffer is
    grouped by item as it grows: asked between adds, after a forget, a restore and a reverted
    batch, the records equal those of a twin asked only once, at the end."""
    rng = np.random.default_rng(11)
    asked, twin = CoVisits(window=3, max_neighbors=8), CoVisits(window=3, max_neighbors=8)

    def records(cv: CoVisits) -> list:
        return cv.pending_records(list(range(N_ITEMS)), IDS)

    def add(n: int, ask: bool) -> None:
        for _ in range(n):
            item, previous = int(rng.integers(N_ITEMS)), rng.integers(N_ITEMS, size=3)
            asked.add(item, previous)
            twin.add(item, previous)
            if ask and rng.random() < 0.3:
                records(asked)

    add(40, ask=True)
    for cv in (asked, twin):
        cv.forget(5)
    add(20, ask=True)
    undo = asked.journal()
    before = records(asked)
    for _ in range(15):
        item = int(rng.integers(N_ITEMS))
        asked.add(item, rng.integers(N_ITEMS, size=3))
        records(asked)
    asked.revert(undo)
    assert records(asked) == before
    restored = CoVisits(window=3, max_neighbors=8)
    index = {item_id: n for n, item_id in enumerate(IDS)}.__getitem__
    for i in asked.items():
        restored.load_pending(i, asked.pending_of(i, IDS), index)
        records(restored)
    add(25, ask=True)
    for i in range(N_ITEMS):
        assert asked.pending_of(i, IDS) == twin.pending_of(i, IDS)
    assert records(asked) == records(twin)
    assert records(restored) == before
