"""Fold-in + top-20 per event on one thread: refold next to implicit and river, in one run.
Events/s are per CPU second of that thread (`_clock`).

Every model sees the same stream of click events from the same users and answers each event with
the user's top-K:

- `refold`: `OnlineRecommender.process_batch` over micro-batches of 500 events (what the worker
  runs: semantics per event, one list per affected user per batch), and `learn` + `recommend` per
  event (what a batch of one costs, at low traffic);
- `implicit`: `model.recommend(u, history_row, recalculate_user=True)` per event, the library's
  own way to fold a user in, with the user's history as a CSR row built per event (also timed
  without building the row: `implicit_recommend_only_events_per_s`, the strictest comparison);
- `river`: `reco.FunkMF` / `reco.BiasedMF` `learn_one` + `rank` over the catalog, on fewer events
  (it scores items one Python call at a time).

refold is configured to solve the same problem as implicit (no recency decay, confidence
alpha * weight, consumed items excluded, collaborative from the first event), so their lists can be
compared: `topk_match_rate` is the share of events whose top-K items agree exactly, in order.

With `ann=True` refold runs both ways again with approximate retrieval (`models.ann`: the index
is built before the clock starts, `ann_build_seconds`), and `ann_recall_at_20` is the share of
the exact lists' items that its lists hold (per event and batched, the lower). The item factors
are isotropic Gaussian by default, the hardest case for an index, or `shape="als"`: norms spread
as implicit's ALS spreads them (`refold.bench.factors`).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from models.ann import MipsIndex
from models.foldin import ItemFactors
from models.recommender import FoldInConfig, OnlineRecommender
from refold.bench import factors as synth

ALPHA, REG = 2.0, 0.05


def _clock() -> float:
    """CPU seconds of this process: everything here runs on one thread, so this is the time on
    one core, and other jobs sharing the machine do not inflate it (wall-clock time did, by up
    to 15x, when several benchmarks ran at once)."""
    return time.process_time()


@dataclass(frozen=True)
class Stream:
    """A seeded click stream: user index and item index per event, and the item factors."""

    users: np.ndarray
    items: np.ndarray
    Y: np.ndarray

    @classmethod
    def make(cls, n_items: int, factors: int, events: int, seed: int = 0,
             shape: synth.Shape = "gaussian") -> Stream:
        rng = np.random.default_rng(seed + 1)
        Y = synth.item_factors(n_items, factors, shape, seed)
        n_users = max(1, events // 10)  # ten events per user on average
        users = rng.integers(0, n_users, events)
        pop = rng.zipf(1.3, events) % n_items  # long-tailed item choice
        return cls(users, pop.astype(np.int64), Y)


def _refold(stream: Stream, k: int, batch: int | None, index: MipsIndex | None = None
            ) -> tuple[float, list[list[str]]]:
    """Seconds, and the lists: per event (batch None) or `{event index: list}` per micro-batch;
    with `index`, from approximate candidates."""
    ids = [str(i) for i in range(len(stream.Y))]
    config = _config(k, index is not None)
    factors = ItemFactors(ids, stream.Y, version=1)
    rec = OnlineRecommender(config)
    rec.swap_factors(rec.served.prepare(factors, index))
    out: list[list[str]] = []  # per event, in order
    t0 = _clock()
    if batch is None:
        for n, (u, i) in enumerate(zip(stream.users.tolist(), stream.items.tolist(), strict=True)):
            rec.learn(str(u), ids[i], "click", float(n))
            out.append(rec.recommend(str(u), float(n)).items)
    else:
        events = [_Ev(str(u), ids[i], float(n)) for n, (u, i) in
                  enumerate(zip(stream.users.tolist(), stream.items.tolist(), strict=True))]
        lists: dict[int, list[str]] = {}
        for lo in range(0, len(events), batch):
            for ev, recs in rec.process_batch(events[lo : lo + batch]):
                lists[int(ev.event_time)] = recs.items
        return _clock() - t0, lists  # type: ignore[return-value]
    return _clock() - t0, out


@dataclass(frozen=True, slots=True)
class _Ev:
    user_id: str
    item_id: str
    event_time: float
    event_type: str = "click"
    value: None = None
    weight: None = None
    session_id: None = None


def _implicit(stream: Stream, k: int) -> tuple[float, float, list[list[str]]]:
    """Seconds in all, seconds inside `recommend` alone (user row prebuilt), and the lists."""
    from implicit.cpu.als import AlternatingLeastSquares

    with warnings.catch_warnings():  # its BLAS-threads advice: we already run on one thread
        warnings.simplefilter("ignore", RuntimeWarning)
        model = AlternatingLeastSquares(factors=stream.Y.shape[1], regularization=REG,
                                        alpha=ALPHA, num_threads=1, random_state=0)
    model.item_factors = stream.Y
    model.user_factors = np.zeros((1, stream.Y.shape[1]), dtype=np.float32)
    n_items = len(stream.Y)
    history: dict[int, dict[int, float]] = {}
    out: list[list[str]] = []
    in_recommend = 0.0
    t0 = _clock()
    for u, i in zip(stream.users.tolist(), stream.items.tolist(), strict=True):
        h = history.setdefault(u, {})
        h[i] = h.get(i, 0.0) + 0.3  # the click weight refold uses
        cols = np.fromiter(h.keys(), dtype=np.int32, count=len(h))
        vals = np.fromiter(h.values(), dtype=np.float32, count=len(h))
        row = sp.csr_matrix((vals, cols, [0, len(h)]), shape=(1, n_items))
        t1 = _clock()
        ids, _ = model.recommend(0, row, N=k, recalculate_user=True)
        in_recommend += _clock() - t1
        out.append([str(j) for j in ids.tolist()])
    return _clock() - t0, in_recommend, out


def _river(stream: Stream, k: int, events: int, biased: bool) -> float:
    from river import optim, reco

    n = min(events, len(stream.users))
    f = stream.Y.shape[1]
    if biased:
        model = reco.BiasedMF(f, bias_optimizer=optim.SGD(0.05),
                              latent_optimizer=optim.SGD(0.05), seed=0)
    else:
        model = reco.FunkMF(f, optimizer=optim.SGD(0.05), seed=0)
    catalog = {str(i) for i in range(len(stream.Y))}
    t0 = _clock()
    for u, i in zip(stream.users[:n].tolist(), stream.items[:n].tolist(), strict=True):
        model.learn_one(str(u), str(i), 1.0)
        model.rank(str(u), catalog)[:k]
    return n / (_clock() - t0)


def _recall(got: list[list[str]], want: list[list[str]]) -> float:
    return float(np.mean([len(set(g) & set(w)) / max(1, len(w))
                          for g, w in zip(got, want, strict=True)]))


def _config(k: int, ann: bool, index: dict[str, int] | None = None) -> FoldInConfig:
    """refold set up as implicit is; `index`: `ann_*` fold-in settings (e.g. the build beam)."""
    return FoldInConfig(alpha=ALPHA, regularization=REG, decay="none", k=k,
                        full_events=1, min_events=1, exclude_types=frozenset({"click"}),
                        history_size=10_000, max_excluded=10_000, session_weight=0.0,
                        ann_min_items=1 if ann else 0, **(index or {}))


def ann_run(stream: Stream, k: int, lists: list[list[str]], batched: dict[int, list[str]],
            index_settings: dict[str, int] | None = None) -> dict:
    """refold with approximate retrieval, per event and batched, next to the exact lists; the
    index is built once (as a snapshot swap builds it, off the clock) and used by both. The
    build's CPU time counts every thread it ran on (`ann_build_threads`)."""
    config = _config(k, True, index_settings).ann_config()
    assert config is not None
    t0, w0 = _clock(), time.perf_counter()
    index = MipsIndex(stream.Y, config)
    build, build_wall = _clock() - t0, time.perf_counter() - w0
    t_one, one = _refold(stream, k, None, index)
    t_batch, many = _refold(stream, k, 500, index)
    events = len(stream.users)
    keys = sorted(batched)
    return {
        "ann_events_per_s": events / t_batch,
        "ann_per_event_events_per_s": events / t_one,
        "ann_recall_at_20": min(_recall(one, lists),
                                _recall([many[j] for j in keys], [batched[j] for j in keys])),
        "ann_build_seconds": build,
        "ann_build_wall_seconds": build_wall,
        "ann_build_threads": config.build_threads,
        "ann_ef_construction": config.ef_construction,
        "ann_ef_search": config.ef_search,
    }


def run(items: int = 10_000, factors: int = 64, events: int = 2_000, k: int = 20,
        river_events: int | None = None, seed: int = 0, ann: bool = False,
        shape: synth.Shape = "gaussian", baselines: bool = True,
        index_settings: dict[str, int] | None = None) -> dict:
    """Events/s of each model on one thread, and how often refold's top-K equals implicit's;
    with `ann`, refold with approximate retrieval too (`baselines=False` skips implicit and
    river, e.g. for 10M items; `index_settings`: `ann_*` fold-in settings of the index)."""
    stream = Stream.make(items, factors, events, seed, shape)
    river_n = river_events or max(5, min(200, 2_000_000 // items))
    with threadpool_limits(1):
        t_refold, lists = _refold(stream, k, None)
        t_batched, batched = _refold(stream, k, 500)
        approx = ann_run(stream, k, lists, batched, index_settings) if ann else {}
        if not baselines:
            return {"items": items, "factors": factors, "events": events, "k": k,
                    "shape": shape, "loadavg": os.getloadavg(),
                    "refold_events_per_s": events / t_batched,
                    "refold_per_event_events_per_s": events / t_refold, **approx}
        t_implicit, t_recommend, lists_implicit = _implicit(stream, k)
        funk = _river(stream, k, river_n, biased=False)
        biased = _river(stream, k, river_n, biased=True)
    match = np.mean([a == b for a, b in zip(lists, lists_implicit, strict=True)])
    # a micro-batch publishes each user's list after their last event of the batch
    match_batched = np.mean([lists_implicit[n] == got for n, got in batched.items()])
    per_event, refold = events / t_refold, events / t_batched
    return {
        "items": items, "factors": factors, "events": events, "k": k, "shape": shape,
        "loadavg": os.getloadavg(),
        "refold_events_per_s": refold,
        "refold_per_event_events_per_s": per_event, **approx,
        "implicit_events_per_s": events / t_implicit,
        "implicit_recommend_only_events_per_s": events / t_recommend,
        "river_funkmf_events_per_s": funk,
        "river_biasedmf_events_per_s": biased,
        "river_events_per_s": max(funk, biased),
        "river_events": river_n,
        "topk_match_rate": float(min(match, match_batched)),
        "topk_match_rate_per_event": float(match),
        "topk_match_rate_batched": float(match_batched),
        "speedup_vs_implicit": refold / (events / t_implicit),
        "speedup_vs_river": refold / max(funk, biased),
        "per_event_speedup_vs_implicit": per_event / (events / t_implicit),
        "speedup_vs_implicit_recommend_only": refold / (events / t_recommend),
    }


def ann_table(results: list[dict]) -> str:
    """Exact next to approximate retrieval (the `ann` keys), one row per catalog size."""
    rows = [f"{'items':>11} {'shape':>8} {'exact':>8} {'per event':>10} {'ann':>8} "
            f"{'per event':>10} {'recall@' + str(results[0]['k']):>10} {'build s':>8}"]
    for r in results:
        rows.append(
            f"{r['items']:11,} {r['shape']:>8} {r['refold_events_per_s']:8,.0f} "
            f"{r['refold_per_event_events_per_s']:10,.0f} {r['ann_events_per_s']:8,.0f} "
            f"{r['ann_per_event_events_per_s']:10,.0f} {r['ann_recall_at_20']:10.3f} "
            f"{r['ann_build_seconds']:8.1f}")
    load = results[-1]["loadavg"][0]
    return (f"fold-in + top-{results[0]['k']} events/s, one thread: exact scan next to "
            "approximate candidates re-scored exactly (micro-batches of 500, and per event); "
            f"load average {load:.1f}\n" + "\n".join(rows))


def table(results: list[dict]) -> str:
    if "implicit_events_per_s" not in results[0]:
        return ann_table(results)
    head = (f"{'items':>9} {'refold':>8} {'per event':>10} {'implicit':>9} {'(recommend)':>12} "
            f"{'river':>7} {'vs implicit':>12} {'(recommend)':>12} {'(per event)':>12} "
            f"{'vs river':>9} {'top-K match':>12}")
    rows = [head]
    for r in results:
        rows.append(
            f"{r['items']:9,} {r['refold_events_per_s']:8,.0f} "
            f"{r['refold_per_event_events_per_s']:10,.0f} {r['implicit_events_per_s']:9,.0f} "
            f"{r['implicit_recommend_only_events_per_s']:12,.0f} "
            f"{r['river_events_per_s']:7,.1f} {r['speedup_vs_implicit']:11.1f}x "
            f"{r['speedup_vs_implicit_recommend_only']:11.1f}x "
            f"{r['per_event_speedup_vs_implicit']:11.1f}x {r['speedup_vs_river']:8,.0f}x "
            f"{r['topk_match_rate']:12.3f}")
    out = (f"fold-in + top-{results[0]['k']} events/s, one thread, {results[0]['factors']} "
           "factors; refold = micro-batches of 500 (the worker's path), per event = batch of 1; "
           "implicit (recommend) = without building the user's row\n" + "\n".join(rows))
    return out + ("\n\n" + ann_table(results) if "ann_events_per_s" in results[0] else "")
