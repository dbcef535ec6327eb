"""Training, warm start and the validation gate of a refit (no broker)."""

from __future__ import annotations

import numpy as np
import pytest

from models.refit import Candidate, Gate, RefitParams, recall_at_k, train, warm_rows
from models.snapshot import Snapshot, Watermark
from models.store import InteractionStore, StoreConfig

PARAMS = RefitParams(factors=8, iterations=10, holdout_fraction=0.1, k=10, max_recall_drop=0.02)


def clustered_store(events: int = 12_000, seed: int = 0, start: int = 0,
                    store: InteractionStore | None = None) -> InteractionStore:
    """Users who like one of 6 item clusters (50 items each), one event per second."""
    rng = np.random.default_rng(seed)
    store = store or InteractionStore(StoreConfig(buffer_size=1000))
    users = rng.integers(0, 400, events)
    for t, u in enumerate(users.tolist(), start):
        item = (u % 6) * 50 + int(rng.integers(0, 50))
        store.add(f"u{u}", f"i{item}", "purchase", float(t))
    return store


@pytest.fixture(scope="module")
def store_and_live():
    """A store, and a live model trained on its first 10,000 events."""
    store = clustered_store(10_000)
    before = store.training_data()
    c = train(before, PARAMS)
    live = Snapshot.build(1, 0.0, c.item_ids, c.Y, XtX=c.XtX,
                          watermark=Watermark({}, before.max_event_time))
    return clustered_store(2000, seed=1, start=10_000, store=store), live


@pytest.fixture(scope="module")
def data(store_and_live):
    store, live = store_and_live
    return store.training_data(PARAMS.holdout_fraction,
                               holdout_after=live.watermark.max_event_time)


@pytest.fixture(scope="module")
def good(store_and_live):
    return store_and_live[1]


@pytest.mark.slow
def test_holdout_is_what_the_live_model_has_not_seen(data, good):
    assert data.holdout.nnz > 100
    s = InteractionStore()
    for t in range(10):
        s.add("u", f"i{t}", "click", float(t))
    assert s.training_data(0.5, holdout_after=7.0).holdout.nnz == 2


@pytest.mark.slow
def test_training_learns_the_clusters(data, good):
    c = train(data, PARAMS)
    assert c.Y.shape == (len(data.item_ids), 8) and c.XtX.shape == (8, 8)
    assert c.metrics["train_loss"] > 0 and c.metrics["nnz"] == data.full.nnz
    random = np.random.default_rng(0).standard_normal(c.Y.shape).astype(np.float32)
    recall = recall_at_k(c.item_ids, c.Y, data, PARAMS)
    assert recall > 3 * recall_at_k(c.item_ids, random, data, PARAMS)
    assert recall > 0.1


def test_gate_refuses_nan_factors(data, good):
    gate = Gate(PARAMS)
    Y = good.Y.copy()
    Y[5, 2] = np.nan
    v = gate.check(Candidate(good.item_ids, Y, good.XtX), good, data)
    assert not v.passed and "NaN" in v.reason
    XtX = good.XtX.copy()
    XtX[0, 0] = np.inf
    assert not gate.check(Candidate(good.item_ids, good.Y, XtX), good, data).passed
    assert (gate.checked, gate.refused, gate.refused_nonfinite, gate.passed) == (2, 2, 2, 0)


def test_gate_refuses_wrong_dimensions(data, good):
    gate = Gate(PARAMS)
    assert not gate.check(Candidate(good.item_ids, good.Y[:, :7]), good, data).passed
    assert not gate.check(Candidate(good.item_ids[:-1], good.Y), good, data).passed
    assert not gate.check(Candidate(good.item_ids, good.Y, np.eye(4)), good, data).passed
    assert gate.refused_dimensions == 3 and "wrong dimensions" in gate.last_reason


@pytest.mark.slow
def test_gate_refuses_a_recall_regression_and_passes_a_good_model(data, good):
    gate = Gate(PARAMS)
    shuffled = good.Y[np.random.default_rng(1).permutation(len(good.Y))]
    v = gate.check(Candidate(good.item_ids, shuffled), good, data)
    assert not v.passed and gate.refused_recall == 1
    assert v.metrics["recall_at_k"] < v.metrics["live_recall_at_k"] - PARAMS.max_recall_drop
    v = gate.check(train(data, PARAMS, warm=good), good, data)
    assert v.passed and gate.passed == 1
    assert v.metrics["recall_at_k"] >= v.metrics["live_recall_at_k"] - PARAMS.max_recall_drop
    assert gate.check(Candidate(good.item_ids, shuffled), None, data).passed  # nothing to beat


@pytest.mark.slow
def test_warm_start_loss_after_one_iteration_is_not_worse_than_cold():
    store = clustered_store(8000)
    before = train(store.training_data(), PARAMS)
    prev = Snapshot.build(1, 0.0, before.item_ids, before.Y, XtX=before.XtX)
    rng = np.random.default_rng(5)
    for t in range(8000, 9000):  # new events, and a few new items
        u = int(rng.integers(0, 450))
        store.add(f"u{u}", f"i{(u % 6) * 50 + int(rng.integers(0, 55))}", "purchase", float(t))
    now = store.training_data()
    one = RefitParams(factors=8, iterations=1, holdout_fraction=0.0)
    assert len(set(now.item_ids) - set(prev.item_ids)) > 0
    warm = train(now, one, warm=prev).metrics["train_loss"]
    cold = train(now, one).metrics["train_loss"]
    assert warm <= cold
    assert warm < 0.9 * cold


def test_warm_rows_keep_known_vectors_and_fill_new_items():
    prev = Snapshot.build(1, 0.0, ["a", "b"], np.array([[1, 2], [3, 4]], np.float32))
    Y = warm_rows(prev, ["b", "new", "a"], 2, seed=0)
    assert Y[0].tolist() == [3, 4] and Y[2].tolist() == [1, 2] and abs(Y[1]).max() < 0.01
    assert warm_rows(prev, ["a"], 3, seed=0) is None  # another factor count: cold start
