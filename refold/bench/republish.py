"""What publishing lists again costs when the catalog deactivates an item (no Kafka here: the
state's and the ranking's own costs, each next to what it is added to).

`refold bench republish`:

1. the event path's bookkeeping: `events` events of `users` users of one partition in a local
   store (a bounded cache of `cache_users`): per event the user is read (from the store on a
   miss), one event learned and a new list of `k` items recorded, `changed` of them new (9 of
   20: the mean measured between a user's consecutive lists under the default exploration
   policy, 17.5 index keys written per list); the batch's users are written at each commit of
   500. Side by side, in alternating rounds, the same events recording no
   list (the state before lists were kept): `events_per_second` with and without, their ratio,
   and the bytes of a user's record both ways;
2. a new disk's restore: the user records of each store applied to an empty one with their
   derived index entries, records per second with and without lists; a restored partition's
   re-check: the store's index looked up for `inactive` items nobody holds (the steady state: a
   list holding an inactive item is replaced) and for the item held by the most users: ms per
   partition;
3. lists published again per second (`consumers.republish.Republisher`, chunks of 500, from an
   in-memory recommender of `items` x `factors`) next to lists made on the event path (one
   more event per user: learned, ranked, drawn and encoded, batches of 500).
"""

from __future__ import annotations

import os
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from consumers.batch import Output
from consumers.feedback import Facts, Feedback
from consumers.republish import Republisher
from consumers.state.local import LocalState, derive_user_indexes
from consumers.state.memory import MemoryState
from consumers.state.store import Checkpoint, PartitionStore, StoreBatch
from models.expiry import Horizon
from models.feedback import FeedbackConfig, UserFeedback
from models.foldin import ItemFactors
from models.foldin_config import FoldInConfig
from models.history import UserHistory
from models.recommender import OnlineRecommender
from refold.core.schemas import Event, Item, encode

BATCH = 500


class Discard:
    """A producer stand-in that keeps nothing (the costs measured are not Kafka's)."""

    def produce(self, *_: Any, **__: Any) -> None:
        pass

    def poll(self, _timeout: float) -> int:
        return 0


def run(users: int = 20_000, events: int = 100_000, k: int = 20, n_items: int = 2000,
        inactive: int = 10_000, cache_users: int = 5_000, rank_users: int = 5_000,
        factors: int = 64, changed: int = 9, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity /= popularity.sum()
    ids = [f"i{n}" for n in range(n_items)]
    stream = [(f"u{u}", int(i)) for u, i in zip(rng.integers(0, users, events),
                                                  rng.choice(n_items, events, p=popularity),
                                                  strict=True)]
    lists = [[ids[i] for i in row] for row in _lists(rng, stream, k, n_items, popularity,
                                                     changed).tolist()]
    out: dict[str, Any] = {"users": users, "events": events, "k": k, "items": n_items,
                           "changed": changed}
    with tempfile.TemporaryDirectory() as d:
        stores = {w: _state(f"{d}/{w}", ids, cache_users) for w in ("with", "without")}
        seconds = {"with": 0.0, "without": 0.0}
        rounds = 4
        for r in range(rounds):  # alternating rounds: the machine's noise falls on both
            lo, hi = events * r // rounds, events * (r + 1) // rounds
            for w in ("without", "with") if r % 2 else ("with", "without"):
                seconds[w] += _serve(stores[w], stream, lists, lo, hi, w == "with")
        for w in ("with", "without"):
            out[f"events_per_second_{w}_lists"] = events / seconds[w]
            out[f"record_bytes_{w}_lists"] = _record_bytes(stores[w], users)
        out["ratio"] = seconds["without"] / seconds["with"]
        out.update(_recheck(stores["with"], inactive))
        for w in ("with", "without"):
            out[f"restore_records_per_second_{w}_lists"] = _rederive(stores[w], f"{d}/re-{w}")
        out["restore_ratio"] = out["restore_records_per_second_with_lists"] / \
            out["restore_records_per_second_without_lists"]
        for st in stores.values():
            st.close_all()
    out.update(_ranking(rank_users, n_items, factors, k, rng))
    out["loadavg"] = os.getloadavg()
    return out


def _lists(rng: np.random.Generator, stream: list[tuple[str, int]], k: int, n_items: int,
           p: np.ndarray, changed: int) -> np.ndarray:
    """Each event's list: its user's previous list with `changed` of its items replaced by
    others drawn by popularity (a user's first list: `k` items drawn)."""
    out = np.empty((len(stream), k), np.int64)
    current: dict[str, np.ndarray] = {}
    draws = rng.choice(n_items, (len(stream), 4 * k), p=p)
    for j, (user, _) in enumerate(stream):
        now = current.get(user)
        fresh = [i for i in dict.fromkeys(draws[j].tolist())
                 if now is None or i not in set(now.tolist())]
        if now is None or len(fresh) < changed:
            now = rng.choice(n_items, k, replace=False, p=p)
        else:
            now = now.copy()
            now[rng.choice(k, changed, replace=False)] = fresh[:changed]
        out[j] = current[user] = now
    return out


def _state(path: str, ids: list[str], cache_users: int) -> LocalState:
    index = {item: n for n, item in enumerate(ids)}
    st = LocalState(path, "cl", new_history=lambda: UserHistory(50), item_ids=lambda: ids,
                    item_index=index.__getitem__, cache_users=cache_users)
    st.open(0)
    return st


def _serve(st: LocalState, stream: list[tuple[str, int]], lists: list[list[str]], lo: int,
           hi: int, keep: bool) -> float:
    """Events lo..hi through the store; seconds."""
    t0, touched, config = time.perf_counter(), {}, FeedbackConfig()
    for j in range(lo, hi):
        user, item = stream[j]
        entry = st.user(user, 0, float(j)) or st.new_user(user, 0)
        h = entry.history
        h.add(item, 1.0, float(j))
        if h.feedback is None:
            h.feedback = UserFeedback.new(config, new_user=False)
        h.feedback.published(f"r{j}", lists[j] if keep else ())
        touched[user] = None
        if len(touched) >= BATCH or j == hi - 1:
            for u in touched:
                st.stage_user(u)
            st.commit({0: j + 1})
            touched = {}
    return time.perf_counter() - t0


def _record_bytes(st: LocalState, users: int) -> float:
    from consumers.changelog import user_key
    sizes = [len(v) for v in st.stores[0].get_many([user_key(f"u{u}") for u in range(
        0, users, max(1, users // 1000))]) if v is not None]
    return float(np.mean(sizes)) if sizes else 0.0


def _rederive(st: LocalState, path: str) -> float:
    """Records per second of a new disk's restore: each user record of `st`'s store applied to
    an empty store with its derived index entries (`derive_user_indexes`), in chunks of 20,000
    records as a restore writes them."""
    records = list(st.stores[0].records(b""))
    derive = derive_user_indexes(Horizon(90 * 86400.0))
    with PartitionStore.open(path, "cl", 0) as fresh:
        t0 = time.perf_counter()
        for lo in range(0, len(records), 20_000):
            batch = StoreBatch()
            for key, value in records[lo:lo + 20_000]:
                derive(key, None, value, batch)
                batch.put(key, value)
            fresh.commit(batch, Checkpoint("cl", None, 0, lo))
        return len(records) / (time.perf_counter() - t0)


def _recheck(st: LocalState, inactive: int) -> dict[str, Any]:
    store = st.stores[0]
    t0 = time.perf_counter()
    held = sum(1 for _ in store.listings(f"gone-{n}" for n in range(inactive)))
    nobody = time.perf_counter() - t0
    t0 = time.perf_counter()
    most = len(store.listing("i0"))
    one = time.perf_counter() - t0
    assert held == 0
    return {"recheck_inactive_items": inactive, "recheck_ms_nobody_holds": nobody * 1000,
            "holders_of_the_top_item": most, "recheck_ms_top_item": one * 1000}


def _ranking(n_users: int, n_items: int, factors: int, k: int,
             rng: np.random.Generator) -> dict[str, Any]:
    """Lists per second: published again (`Republisher`) and on the event path."""
    ids = [f"i{n}" for n in range(n_items)]
    Y = rng.normal(size=(n_items, factors)).astype(np.float32) / np.sqrt(factors)
    rec = OnlineRecommender(FoldInConfig(k=k, full_events=1), ItemFactors(ids, Y, version=1))
    state = MemoryState(rec, SimpleNamespace(topic="cl"), 10)  # type: ignore[arg-type]
    fb = Feedback(rec)
    out = Output(Discard())  # type: ignore[arg-type]

    def event_path(t: float) -> float:
        t0 = time.perf_counter()
        for lo in range(0, n_users, BATCH):
            evs = [Event(event_id=f"e{u}-{t}", user_id=f"u{u}", item_id=ids[int(i)],
                         event_type="click", event_time=t + u)
                   for u, i in zip(range(lo, min(lo + BATCH, n_users)),
                                   rng.integers(0, n_items, BATCH), strict=False)]
            for ev in evs:
                state.admit(ev, ev.event_id, 0)
            for ev, cands in rec.process_batch(evs, [0] * len(evs), k=fb.depth):
                d = fb.decide(ev, cands, Facts())
                out.produce("recs", encode(Feedback.message_fields(d)["items"]), ev.user_id)
            state.write(out, {ev.user_id: None for ev in evs}, [])
            state.commit()
        return time.perf_counter() - t0

    for n in range(4):  # histories of 4 events, then the timed fifth
        event_path(1000.0 * n)
    event_seconds = event_path(5000.0)
    counts: dict[str, int] = {}
    for u in range(n_users):
        for i in rec.users.get(f"u{u}").feedback.list_items:
            counts[i] = counts.get(i, 0) + 1
    top = max(counts, key=counts.__getitem__)
    again = Republisher(rec, state, fb, recs_topic="recs", items_topic="items")
    again.installed([0])
    item = Item(item_id=top, active=False)
    rec.apply_items([item])
    t0 = time.perf_counter()
    again.catalog_read([(item, _Read())])  # type: ignore[list-item]
    queued = sum(len(q) for q in again.queued.values())
    while again.due():
        again.handle(out)
        again.promote()
    again_seconds = time.perf_counter() - t0
    return {"rank_users": n_users, "factors": factors,
            "event_path_lists_per_second": n_users / event_seconds,
            "republished": again.published, "queued": queued,
            "republished_lists_per_second": again.published / again_seconds}


class _Read:
    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


def table(r: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.1f}" for x in r["loadavg"])
    return "\n".join([
        f"event path, {r['users']:,} users, {r['events']:,} events, lists of {r['k']}:",
        f"  with the last list kept    {r['events_per_second_with_lists']:>10,.0f} events/s  "
        f"record {r['record_bytes_with_lists']:,.0f} B",
        f"  without                    {r['events_per_second_without_lists']:>10,.0f} events/s  "
        f"record {r['record_bytes_without_lists']:,.0f} B",
        f"  ratio (with / without)     {r['ratio']:>10.2f}",
        f"new disk's restore: {r['restore_records_per_second_with_lists']:,.0f} user records/s "
        f"with lists, {r['restore_records_per_second_without_lists']:,.0f} without "
        f"({r['restore_ratio']:.2f})",
        f"restored partition: {r['recheck_inactive_items']:,} inactive items nobody holds "
        f"{r['recheck_ms_nobody_holds']:,.1f} ms; the top item ({r['holders_of_the_top_item']:,} "
        f"holders) {r['recheck_ms_top_item']:,.1f} ms",
        f"lists per second, {r['rank_users']:,} users, {r['factors']} factors:",
        f"  event path                 {r['event_path_lists_per_second']:>10,.0f}",
        f"  published again            {r['republished_lists_per_second']:>10,.0f}  "
        f"({r['republished']:,} of {r['queued']:,} queued)",
        f"load average {load}",
    ])
