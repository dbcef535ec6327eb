"""The learned mixer in the recommender: candidates, lists from a shipped mixer, the fallback,
and the snapshot that carries it."""

from __future__ import annotations

import numpy as np

from models.content import Idf, TextEncoder
from models.foldin import ItemFactors
from models.mixer import FEATURES, Mixer
from models.recommender import FoldInConfig, OnlineRecommender
from models.snapshot import Snapshot

IDS = [f"i{k}" for k in range(8)]


def weights(**named: float) -> Mixer:
    coef = np.zeros(len(FEATURES))
    for name, w in named.items():
        coef[FEATURES.index(name)] = w
    return Mixer(coef)


def factors(mixer: Mixer | None, version: int = 1) -> ItemFactors:
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(len(IDS), 4)).astype(np.float32)
    return ItemFactors(IDS, Y, version, counts=np.arange(len(IDS), dtype=float), mixer=mixer)


def busy(rec: OnlineRecommender) -> None:
    """Popularity: i7 most, then i6, ...; user u touched i0."""
    for k in range(8):
        for j in range(k):
            rec.learn(f"p{k}-{j}", f"i{k}", "click", t=1.0)
    rec.learn("u", "i0", "purchase", t=2.0)


def test_a_shipped_mixer_ranks_and_a_switch_turns_it_off() -> None:
    rec = OnlineRecommender(FoldInConfig(k=3, full_events=1), factors(weights(trend=1.0)))
    busy(rec)
    r = rec.recommend("u", now=3.0)
    assert r.items == ["i7", "i6", "i5"] and r.source == "collaborative"
    off = OnlineRecommender(FoldInConfig(k=3, full_events=1, mixer=False),
                            factors(weights(trend=1.0)))
    busy(off)
    assert off.recommend("u", now=3.0).items != ["i7", "i6", "i5"]  # the CF blend ranks


def test_the_mixer_weighs_signals_by_context() -> None:
    """CF for users with events, trending for everyone else, in one set of weights."""
    mixer = weights(trend=1.0, **{"cf*user_events": 50.0, "trend*user_events": -5.0})
    rec = OnlineRecommender(FoldInConfig(k=3, full_events=1), factors(mixer))
    busy(rec)
    assert rec.recommend("stranger", now=3.0).items == ["i7", "i6", "i5"]
    c = rec.candidates_of("u", now=3.0)
    best = c.items[np.argsort(-c.signals.cf, kind="stable")[:3]]
    assert rec.recommend("u", now=3.0).items == [IDS[i] for i in best]


def test_candidates_exclude_consumed_items_and_carry_contexts() -> None:
    rec = OnlineRecommender(FoldInConfig(k=3, full_events=1), factors(weights(trend=1.0)))
    busy(rec)
    c = rec.candidates_of("u", now=3.0)
    assert rec.catalog.get("i0") not in c.items.tolist()  # purchased
    assert len(c) == 7 and c.signals.cf is not None and c.signals.trend is not None
    assert c.user[0] > 0 and c.item.max() > 0  # one event; items' counts from the model


def test_batches_give_the_lists_of_events_one_by_one() -> None:
    from types import SimpleNamespace

    mixer = weights(trend=1.0, cf=0.5, **{"cf*user_events": 2.0})
    events = [SimpleNamespace(user_id=f"u{j % 5}", item_id=f"i{(j * 3) % 8}",
                              event_type="click", event_time=float(j), value=None, weight=None,
                              session_id=None) for j in range(40)]
    one = OnlineRecommender(FoldInConfig(k=3, full_events=1), factors(mixer))
    lists = {}
    for ev in events:
        one.learn_event(ev)
        lists[ev.user_id] = one.recommend(ev.user_id, ev.event_time).items
    batched = OnlineRecommender(FoldInConfig(k=3, full_events=1), factors(mixer))
    got = {ev.user_id: r.items for ev, r in batched.process_batch(events)}
    assert got == lists


def test_the_snapshot_carries_the_mixer_counts_and_idf() -> None:
    mixer = weights(trend=1.0, content=0.5)
    idf = Idf.fit(TextEncoder().counts(["red shoes", "blue wine"]))
    snap = Snapshot.build(3, 1.0, IDS, np.ones((8, 2), np.float32),
                          params={"mixer": mixer.to_json()},
                          extras={"counts": np.arange(8.0), **idf.to_arrays()})
    back = Snapshot.from_bytes(snap.to_bytes())
    f = back.item_factors()
    assert f.mixer.coef.tolist() == mixer.coef.tolist()
    assert f.counts.tolist() == list(range(8))
    assert np.array_equal(back.idf().of(np.arange(100)), idf.of(np.arange(100)))
    plain = Snapshot.build(4, 1.0, IDS, np.ones((8, 2), np.float32))
    assert plain.item_factors().mixer is None and plain.idf() is None
