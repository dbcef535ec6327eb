"""Partition-scoped state: results depend on each partition's event sequence, not on batching."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from models.covisit import CoVisits
from models.foldin import ItemFactors
from models.packing import unpack
from models.partition import META_KEYS, PartitionState
from models.recommender import FoldInConfig, OnlineRecommender

N_ITEMS, K, PARTS, USERS = 40, 4, 3, 100
IDS = [f"i{n}" for n in range(N_ITEMS)]
TYPES = ["view", "click", "add_to_cart", "purchase", "dismiss"]


def factors() -> ItemFactors:
    Y = np.random.default_rng(0).normal(size=(N_ITEMS, K)).astype(np.float32)
    return ItemFactors(IDS, Y, version=1)


def config(**kw: object) -> FoldInConfig:
    base = dict(alpha=5.0, regularization=0.1, k=6, full_events=8, shrink=3.0,
                trending_half_life_seconds=40.0)
    return FoldInConfig(**{**base, **kw})  # type: ignore[arg-type]


def stream(n: int, seed: int = 0) -> list[tuple[SimpleNamespace, int]]:
    """Events with their partition (by user), some on items outside the model."""
    rng = np.random.default_rng(seed)
    out = []
    for j in range(n):
        user = int(rng.integers(USERS))
        item = f"new{rng.integers(4)}" if rng.random() < 0.15 else IDS[int(rng.integers(N_ITEMS))]
        ev = SimpleNamespace(event_id=f"e{j}", user_id=f"u{user}", item_id=item,
                             event_type=TYPES[int(rng.integers(len(TYPES)))],
                             event_time=1000.0 + j, value=None, weight=None, session_id=None)
        out.append((ev, user % PARTS))
    return out


def interleave(events: list, seed: int) -> list:
    """Another interleaving of the partitions, each partition's order kept."""
    rng = np.random.default_rng(seed)
    queues = {p: [e for e in events if e[1] == p] for p in range(PARTS)}
    out = []
    while any(queues.values()):
        p = int(rng.choice([p for p, q in queues.items() if q]))
        out.append(queues[p].pop(0))
    return out


def run(events: list, batch_size: int, cfg: FoldInConfig | None = None) -> tuple[dict, dict]:
    rec = OnlineRecommender(cfg or config(), factors())
    # Exactly tied scores are ordered by item index, which is per process and follows the order
    # items are first seen: index the new items up front, as the worker's catalog reader does.
    for n in range(4):
        rec.catalog.index(f"new{n}")
    latest = {}
    for lo in range(0, len(events), batch_size):
        chunk = events[lo : lo + batch_size]
        for ev, recs in rec.process_batch([e for e, _ in chunk], [p for _, p in chunk]):
            latest[ev.user_id] = recs
    return latest, state(rec)


def state(rec: OnlineRecommender) -> dict:
    users = {u: rec.user_state(u) for u in sorted({f"u{n}" for n in range(USERS)})}
    parts = {str(p): rec.partition(p).to_plain(rec.catalog.ids, rec.model_version)
             for p in range(PARTS)}
    return json.loads(json.dumps({"users": users, "parts": parts}))


def same_lists(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for user in a:
        assert (a[user].items, a[user].source) == (b[user].items, b[user].source), user
        assert a[user].scores == pytest.approx(b[user].scores, rel=1e-5, abs=1e-6)


def same_state(a: dict, b: dict) -> None:
    assert a["users"] == b["users"]
    for p in range(PARTS):
        pa, pb = a["parts"][str(p)], b["parts"][str(p)]
        assert {k: pa[k] for k in ("events", "t_ref", "dirty")} == {
            k: pb[k] for k in ("events", "t_ref", "dirty")}
        assert pa["items"].keys() == pb["items"].keys()
        for item, ea in pa["items"].items():
            eb = pb["items"][item]
            assert (ea["pop"], ea.get("users")) == (eb["pop"], eb.get("users")), item
            if ea.get("vec") is not None:
                assert ea["vec"] == pytest.approx(eb["vec"], rel=1e-4, abs=1e-5), item


@pytest.mark.slow
@pytest.mark.parametrize("refresh", [1, 5])
def test_results_do_not_depend_on_batches_or_interleaving(refresh: int) -> None:
    cfg = config(cold_refresh_events=refresh)
    events = stream(600)
    want_lists, want_state = run(events, 1, cfg)
    sources = {r.source for r in want_lists.values()}
    assert {"popular", "collaborative"} <= sources  # both regimes are compared
    assert any(e.get("vec") for p in want_state["parts"].values() for e in p["items"].values())
    for batch_size, seed in [(7, 1), (64, 2), (600, 3)]:
        lists, got = run(interleave(events, seed), batch_size, cfg)
        same_lists(lists, want_lists)
        same_state(got, want_state)


def test_revert_puts_back_the_partition_and_the_batch_then_replays_the_same() -> None:
    events = stream(300)
    rec = OnlineRecommender(config(cold_refresh_events=3), factors())
    rec.process_batch([e for e, _ in events[:200]], [p for _, p in events[:200]])
    before = state(rec)
    batch = events[200:]
    undo = {p: rec.save_partition(p, [e.item_id for e, q in batch if q == p]) for p in range(PARTS)}
    users = {e.user_id: rec.user_state(e.user_id) for e, _ in batch}
    first = rec.process_batch([e for e, _ in batch], [p for _, p in batch])
    for p, u in undo.items():
        rec.revert_partition(p, u)
    for user, s in users.items():
        if s is None:
            rec.drop_user(user)
        else:
            rec.restore_user(user, s, partition=int(user[1:]) % PARTS)
    assert state(rec) == before
    again = rec.process_batch([e for e, _ in batch], [p for _, p in batch])
    same_lists({e.user_id: r for e, r in first}, {e.user_id: r for e, r in again})


@pytest.mark.slow
def test_a_partition_restored_elsewhere_goes_on_identically() -> None:
    events = stream(500, seed=4)
    head, tail = events[:250], events[250:]
    cfg = config(cold_refresh_events=4, session_refresh_events=7)
    rec = OnlineRecommender(cfg, factors())
    rec.process_batch([e for e, _ in head], [p for _, p in head])
    saved = {p: json.loads(json.dumps(rec.partition(p).to_plain(rec.catalog.ids, 1)))
             for p in range(PARTS)}
    users = {u: json.loads(json.dumps(rec.user_state(u))) for u in {e.user_id for e, _ in head}}
    # another process, restored from plain data. Exactly tied scores are ordered by item index,
    # which is per process: like the worker (catalog read first), both index the items alike.
    other = OnlineRecommender(cfg, factors())
    for item in rec.catalog.ids:
        other.catalog.index(item)
    for user, s in users.items():
        other.restore_user(user, s, partition=int(user[1:]) % PARTS)
    for p, plain in saved.items():
        other.restore_partition(p, plain)
    a = {e.user_id: r for e, r in rec.process_batch([e for e, _ in tail], [p for _, p in tail])}
    b = {e.user_id: r for e, r in other.process_batch([e for e, _ in tail], [p for _, p in tail])}
    same_lists(a, b)
    same_state(state(other), state(rec))


def test_changes_are_the_touched_items_even_when_popularity_renormalises() -> None:
    # (without co-visits, which change the rows of the items an event is co-visited with)
    rec = OnlineRecommender(config(trending_adaptive=False, trending_half_life_seconds=1.0,
                                   session_weight=0.0),
                            factors())
    rec.learn("u1", "i1", "click", t=0.0)
    rec.learn("u1", "i2", "click", t=1.0)
    assert set(rec.partition_changes(0)["items"]) == {"i1", "i2"}
    rec.learn("u1", "i3", "click", t=2.0)
    assert set(rec.partition_changes(0)["items"]) == {"i3"}
    rec.learn("u1", "i4", "click", t=880.0)  # 880 half-lives: the accumulators are rescaled
    assert rec.partition(0).trending.shift == 880
    changes = rec.partition_changes(0)
    assert set(changes["items"]) == {"i4"}  # the others' records convert on restore
    assert (changes["sh"], changes["items"]["i4"]["sh"]) == (880, 880)


def test_a_restore_from_records_written_before_renormalisations_is_exact() -> None:
    """Half-lives short enough that the ladder's first rungs rescale every few events: the
    records of items not touched since convert exactly, so the restored partitions go on as
    the originals do."""
    events = [(SimpleNamespace(**{**vars(e), "event_time": 1000.0 + 400.0 * j}), p)
              for j, (e, p) in enumerate(stream(400, seed=8))]
    cfg = config(trending_half_lives=(1.0, 60.0, 3600.0, float("inf")), session_weight=0.0)
    rec = OnlineRecommender(cfg, factors())
    merged: dict = {}
    changelog_of(rec, [events[lo : lo + 9] for lo in range(0, 300, 9)], merged)
    assert all(rec.partition(p).trending.rungs[1].shift > 0 for p in range(PARTS))
    users = {u: json.loads(json.dumps(rec.user_state(u)))
             for u in {e.user_id for e, _ in events[:300]}}
    other = OnlineRecommender(cfg, factors())
    for item in rec.catalog.ids:
        other.catalog.index(item)
    for user, st in users.items():
        other.restore_user(user, st, partition=int(user[1:]) % PARTS)
    for p, plain in merged.items():
        other.restore_partition(p, plain)
    for p in range(PARTS):
        for a, b in zip(rec.partition(p).trending.rungs, other.partition(p).trending.rungs,
                        strict=True):
            np.testing.assert_array_equal(a.ranking_scores(), b.ranking_scores())
    tail = events[300:]
    a = {e.user_id: r for e, r in rec.process_batch([e for e, _ in tail], [p for _, p in tail])}
    b = {e.user_id: r for e, r in other.process_batch([e for e, _ in tail], [p for _, p in tail])}
    same_lists(a, b)
    same_state(state(other), state(rec))


def test_restored_co_visits_score_like_the_originals_whatever_their_arrays_size() -> None:
    """A restore grows the arrays differently: an item not counted yet must weigh the same."""
    ids = [f"i{n}" for n in range(200)]
    part = PartitionState(3600.0, 10, CoVisits(window=2))
    part.add_covisit(2, np.array([1]))
    part.add_covisit(100, np.array([50]))
    part.refresh_covisits()  # arrays sized for item 100 at once; a restore grows them in steps
    part.add_covisit(5, np.array([1]))  # buffered
    restored = PartitionState(3600.0, 10, CoVisits(window=2))
    plain = json.loads(json.dumps(part.to_plain(ids, None)))
    restored.load_plain(plain, ids.index, None, lambda i: False)
    session = np.array([1, 2, 110, 100])  # 110: seen by the user, co-visited with nothing yet
    a, b = (np.bincount(*p.covisits.contributions(session, 2.0), minlength=200)
            for p in (part, restored))
    assert a.any()
    np.testing.assert_array_equal(a, b)  # the dense session scores the blend uses


def changelog_of(rec: OnlineRecommender, batches: list[list], merged: dict) -> dict[str, int]:
    """Process `batches`, folding each partition's changes into `merged` as a compacted
    changelog keeps them (the latest record per key); returns how many records of each kind."""
    written = {"items": 0, "rows": 0, "deltas": 0}
    for chunk in batches:
        rec.process_batch([e for e, _ in chunk], [p for _, p in chunk])
        for p in {q for _, q in chunk}:
            changes = json.loads(json.dumps(rec.partition_changes(p)))
            part = merged.setdefault(p, {"items": {}, "rows": {}, "deltas": {}})
            for kind in written:
                part[kind].update(changes[kind])
                written[kind] += len(changes[kind])
            part.update({k: changes[k] for k in META_KEYS if k in changes})
    return written


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 6, 50])
def test_the_changes_of_every_batch_add_up_to_the_whole_state(batch_size: int) -> None:
    """The changelog keeps the latest record per key: the records of every batch must add up to
    the full state. Co-visit rows change only at refreshes, so they are written less often."""
    events = stream(600, seed=5)
    rec = OnlineRecommender(config(session_refresh_events=40), factors())
    merged: dict = {}
    batches = [events[lo : lo + batch_size] for lo in range(0, len(events), batch_size)]
    written = changelog_of(rec, batches, merged)
    whole = json.loads(json.dumps({p: rec.partition(p).to_plain(rec.catalog.ids,
                                                                rec.model_version)
                                   for p in range(PARTS)}))
    restored = OnlineRecommender(config(session_refresh_events=40), factors())
    for item in rec.catalog.ids:
        restored.catalog.index(item)
    for p, plain in merged.items():
        restored.restore_partition(p, json.loads(json.dumps(plain)))
    assert json.loads(json.dumps({p: restored.partition(p).to_plain(
        restored.catalog.ids, restored.model_version) for p in range(PARTS)})) == whole
    assert all(whole[str(p)]["rows"] for p in range(PARTS))
    assert written["rows"] < written["items"]
    assert written["deltas"] > 0  # busy rows were written as their changed slots


def test_a_row_delta_is_its_changed_slots_and_a_restore_applies_it_exactly() -> None:
    events = stream(600, seed=7)
    rec = OnlineRecommender(config(session_refresh_events=40), factors())
    merged: dict = {}
    written = changelog_of(rec, [events[lo : lo + 20] for lo in range(0, 600, 20)], merged)
    assert written["deltas"] > 0
    for p, plain in merged.items():
        for item_id, delta in plain["deltas"].items():
            row = plain["rows"][item_id]
            if delta["g"] == row["g"]:  # the delta on its row: some of the row's slots
                assert len(delta["ids"]) * 2 <= delta["d"]
        other = OnlineRecommender(config(session_refresh_events=40), factors())
        for item in rec.catalog.ids:
            other.catalog.index(item)
        other.restore_partition(p, plain)
        for i in rec.partition(p).covisits.rows():
            assert other.partition(p).covisits.neighbours(i) == rec.partition(p).covisits \
                .neighbours(i)


def test_a_row_restored_from_an_earlier_versions_item_record_is_written_again() -> None:
    """Earlier versions kept an item's co-visit row inside its item record: a restore from
    those records marks the rows changed, so the next batch writes them under their own key
    before any item record (which no longer carries them) replaces the old one."""
    events = stream(300, seed=6)
    rec = OnlineRecommender(config(session_refresh_events=40), factors())
    rec.process_batch([e for e, _ in events], [p for _, p in events])
    old = json.loads(json.dumps(rec.partition(0).to_plain(rec.catalog.ids, rec.model_version)))
    old.pop("deltas")  # (a full dump has none)
    for item_id, row in old.pop("rows").items():
        entry = old["items"][item_id]
        row.pop("g")  # (nor had earlier versions' rows generations)
        entry["co"] = {**row, "pend": entry.pop("pend", [])}
    assert any("co" in e for e in old["items"].values())
    other = OnlineRecommender(config(session_refresh_events=40), factors())
    for item in rec.catalog.ids:
        other.catalog.index(item)
    other.restore_partition(0, old)
    want = rec.partition(0).to_plain(rec.catalog.ids, rec.model_version)
    got = other.partition(0).to_plain(other.catalog.ids, other.model_version)
    for plain in (got, want):
        plain["rows"] = {k: {**r, "g": 0} for k, r in plain["rows"].items()}
    assert got == want
    rows = other.partition_changes(0)["rows"]  # in full, as rows of a new generation
    assert {k: {**r, "g": 0} for k, r in rows.items()} == want["rows"]
    assert {r["g"] for r in rows.values()} == {1}


@pytest.mark.parametrize("half_life", [3600.0, (900.0, 3600.0, 86400.0)])
def test_an_item_that_left_the_catalog_is_forgotten_in_every_count(half_life) -> None:
    part = PartitionState(half_life, max_item_users=5)
    for t, item in enumerate([0, 1, 0, 2, 1, 1]):
        part.add_popularity(item, 1.0, float(t))
        part.cold.add(item, f"u{t}", 1.0)
    assert part.holds(1)
    part.forget(1)
    assert not part.holds(1) and part.holds(0) and part.holds(2)
    plain = part.to_plain(["a", "b", "c"], version=None)
    assert "b" not in plain["items"] and {"a", "c"} <= set(plain["items"])


def test_item_records_of_earlier_versions_still_load() -> None:
    """Popularity rungs as lists of numbers and buffered co-visits as [id, gain, both] lists
    (earlier versions) restore the state that packed columns (now) restore."""
    events = stream(300, seed=8)
    rec = OnlineRecommender(config(session_refresh_events=1000), factors())
    rec.process_batch([e for e, _ in events], [p for _, p in events])
    part = rec.partition(0)
    new = json.loads(json.dumps(part.to_plain(rec.catalog.ids, rec.model_version)))
    assert any("pend" in e for e in new["items"].values())
    assert all(isinstance(e["pop"], str) for e in new["items"].values())
    old = json.loads(json.dumps(new))
    for item_id, entry in old["items"].items():
        entry["pop"] = unpack(entry["pop"], "<f8").tolist()
        i = rec.catalog.index(item_id)
        if "pend" in entry:
            entry["pend"] = part.covisits.pending_of(i, rec.catalog.ids)
    got = []
    for plain in (new, old):
        other = OnlineRecommender(config(session_refresh_events=1000), factors())
        for item in rec.catalog.ids:
            other.catalog.index(item)
        other.restore_partition(0, json.loads(json.dumps(plain)))
        got.append(other.partition(0).to_plain(other.catalog.ids, other.model_version))
    assert got[0] == got[1] == part.to_plain(rec.catalog.ids, rec.model_version)
