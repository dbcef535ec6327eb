from __future__ import annotations

import numpy as np
import pytest

from producers.datasets import InteractionLog
from producers.synth import SynthConfig, SynthWorld, generate
from refold.core.schemas import EVENT_TYPES

SMALL = SynthConfig(n_users=300, n_items=200, n_events=20_000, seed=3)


@pytest.fixture(scope="module")
def world() -> tuple[InteractionLog, list, object]:
    return generate(SMALL)


def columns(log: InteractionLog) -> list[np.ndarray]:
    return [log.user_ids, log.item_ids, log.event_types, log.values, log.times, log.session_ids]


def index(ids: np.ndarray) -> np.ndarray:
    return np.array([int(x[1:]) for x in ids.tolist()])


def jensen_shannon(a: np.ndarray, b: np.ndarray) -> float:
    p, q = a / a.sum(), b / b.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log(x[nz] / m[nz])))

    return (kl(p) + kl(q)) / 2


def test_same_seed_same_world_other_seed_other_world(world) -> None:
    log, catalog, truth = world
    again, catalog2, truth2 = generate(SMALL)
    for a, b in zip(columns(log), columns(again), strict=True):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    assert catalog == catalog2 and np.array_equal(truth.item_factors, truth2.item_factors)
    other, _, _ = generate(SynthConfig(n_users=300, n_items=200, n_events=20_000, seed=4))
    assert not np.array_equal(log.item_ids, other.item_ids)


def test_sizes_order_and_valid_events(world) -> None:
    log, catalog, truth = world
    assert len(log) == 20_000
    assert len(catalog) == 240 and truth.user_factors.shape == (360, SMALL.dim)
    assert np.all(np.diff(log.times) >= 0)
    assert set(log.event_types.tolist()) == set(EVENT_TYPES) - {"bookmark"}
    ratings = log.values[log.event_types == "rating"]
    assert set(np.unique(ratings).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert np.isnan(log.values[log.event_types != "rating"]).all()
    assert (log.session_ids != "").all()
    assert SMALL.n_users < len(np.unique(log.user_ids)) <= 360


def test_funnel_narrows(world) -> None:
    kinds = world[0].event_types
    counts = [int((kinds == k).sum()) for k in ("view", "click", "add_to_cart", "purchase")]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0


def test_sessions_are_one_user_a_few_minutes(world) -> None:
    log = world[0]
    sessions = np.unique(log.session_ids)
    assert 2 < len(log) / len(sessions) < 10
    for s in sessions[:50]:
        rows = log.session_ids == s
        assert len(np.unique(log.user_ids[rows])) == 1
        assert np.ptp(log.times[rows]) < 3600


def test_new_items_and_users_appear_only_after_they_arrive(world) -> None:
    log, catalog, truth = world
    created = np.array([item.created_at for item in catalog])
    items = index(log.item_ids)
    assert np.all(log.times >= created[items])
    assert np.any(items >= SMALL.n_items)  # some new items are used
    users = index(log.user_ids)
    assert np.all(log.times >= truth.user_arrival[users])
    new_users = np.unique(users[users >= SMALL.n_users])
    first_seen = {u: log.times[users == u].min() for u in new_users[:20].tolist()}
    assert all(t == truth.user_arrival[u] for u, t in first_seen.items())


@pytest.mark.slow
def test_popularity_is_long_tailed() -> None:
    log, catalog, _ = generate(SynthConfig())  # the defaults: 1,200 items by the end
    counts = np.sort(np.unique(log.item_ids, return_counts=True)[1])[::-1]
    assert counts[: len(catalog) // 10].sum() > 0.5 * len(log)


def test_tastes_drive_choices_and_categories_follow_factors(world) -> None:
    log, _, truth = world
    users, items = index(log.user_ids), index(log.item_ids)
    score = np.einsum("nd,nd->n", truth.user_factors[users], truth.item_factors[items])
    kinds = log.event_types
    assert score[kinds == "purchase"].mean() > score[kinds == "view"].mean() > 0
    assert score[kinds == "dismiss"].mean() < 0
    # an item's category explains much of its factors: content cold start is learnable
    f, cat = truth.item_factors, truth.item_categories
    means = np.stack([f[cat == k].mean(axis=0) for k in range(len(truth.category_names))])
    explained = 1 - ((f - means[cat]) ** 2).sum() / ((f - f.mean(axis=0)) ** 2).sum()
    assert explained > 0.4


def test_drift_shifts_the_item_distribution() -> None:
    base = {"n_users": 300, "n_items": 200, "n_events": 20_000, "seed": 5, "new_items": 0.0}
    drifted, _, truth = generate(SynthConfig(**base, drift_at=10_000))
    control, _, none = generate(SynthConfig(**base))
    assert truth.drift_at == 10_000 and truth.drift_time == drifted.times[10_000]
    assert none.drift_at is None and none.drifted_user_factors is None
    # same world up to the drift: the control is a counterfactual
    for a, b in zip(columns(drifted[:10_000]), columns(control[:10_000]), strict=True):
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")

    def before_after(log: InteractionLog) -> float:
        items = index(log.item_ids)
        before, after = (np.bincount(x, minlength=200) for x in (items[:10_000], items[10_000:]))
        return jensen_shannon(before.astype(float), after.astype(float))

    assert before_after(drifted) > 2 * before_after(control)


def test_chunks_are_the_log_in_pieces() -> None:
    world = SynthWorld(SynthConfig(n_users=50, n_items=30, n_events=2_500, seed=2))
    log, chunks = world.log(), list(world.chunks(1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    assert np.array_equal(np.concatenate([c.item_ids for c in chunks]), log.item_ids)
    ids = [e.event_id for c in chunks for e in c.iter_events("s")]
    assert ids == [e.event_id for e in log.iter_events("s")]
    assert len(set(ids)) == 2_500


def test_zero_events_and_bad_configs() -> None:
    log, catalog, _ = generate(SynthConfig(n_users=5, n_items=5, n_events=0))
    assert len(log) == 0 and len(catalog) == 6
    for bad in ({"drift_at": 0}, {"drift_at": 100}, {"p_click": 1.5}, {"n_items": 0}):
        with pytest.raises(ValueError):
            SynthConfig(n_events=100, **bad)
