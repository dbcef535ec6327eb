"""The inner-product index: maximum-inner-product answers, labels, items added after the build."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from models.ann import AnnConfig, MipsIndex
from models.candidates import rescore
from refold.bench import factors as synth
from refold.bench.ann_choice import exact_topk
from refold.core.errors import ModelError

pytest.importorskip("faiss", reason="the ann extra is not installed")


def test_largest_inner_products_not_nearest_points() -> None:
    # b is far from the query but has the larger inner product: an L2 or cosine index ranks a
    Y = np.array([[1.0, 0.0], [3.0, 3.0], [-1.0, 0.0]], dtype=np.float32)
    ix = MipsIndex(Y, AnnConfig())
    assert ix.search(np.array([[1.0, 0.0]], np.float32), 3).tolist() == [[1, 0, 2]]


def test_rescored_candidates_recall_the_exact_top_20() -> None:
    Y = synth.item_factors(20_000, 32, "als", seed=1)
    X, mine = synth.users(Y, 200, seed=2)
    X = X.astype(np.float32)
    config = AnnConfig(candidates=100)
    ix = MipsIndex(Y, config)
    cands = ix.candidates(X, config.candidates + max(map(len, mine)))
    idx, _ = rescore(Y, X, cands, 20, exclude=mine)
    exact = exact_topk(Y, X, mine, 20)
    recall = np.mean([len(np.intersect1d(a, b)) / 20 for a, b in zip(idx, exact, strict=True)])
    assert recall >= 0.95


def test_labels_map_rows_to_the_callers_indices() -> None:
    Y = np.eye(3, dtype=np.float32)
    ix = MipsIndex(Y, labels=np.array([10, 20, 30]))
    assert ix.search(np.array([[0, 0, 1.0]], np.float32), 1).tolist() == [[30]]
    ix.labels[2] = 31  # an item placed after the build
    assert ix.search(np.array([[0, 0, 1.0]], np.float32), 1).tolist() == [[31]]


def test_an_added_item_is_a_candidate_at_once_and_in_the_graph_after_drain() -> None:
    rng = np.random.default_rng(0)
    served = rng.standard_normal((501, 8)).astype(np.float32)
    ix = MipsIndex(served[:500], AnnConfig(drain_items=10))
    q = rng.standard_normal((1, 8)).astype(np.float32)
    served[500] = 100 * q[0]  # the new item: the best answer for q by far
    ix.add([500])
    assert 500 not in ix.search(q, 5)
    assert 500 in ix.candidates(q, 5)
    idx, _ = rescore(served, q, ix.candidates(q, 5), 1)
    assert idx[0, 0] == 500
    assert ix.drain(served) == 1 and len(ix.pending) == 0 and len(ix) == 501
    assert ix.search(q, 1)[0, 0] == 500


def test_a_copy_answers_alike_and_goes_its_own_way() -> None:
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((2000, 8)).astype(np.float32)
    ix = MipsIndex(Y, AnnConfig(ef_search=40), labels=np.arange(2000) + 5)
    ix.add([9000])
    twin = copy.deepcopy(ix)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    assert np.array_equal(twin.candidates(q, 30), ix.candidates(q, 30))
    assert twin.config == ix.config and twin.pending.tolist() == [9000]
    twin.labels[0] = -7  # the copy's labels, pending items and graph are its own
    twin.add([9001])
    assert twin.drain(np.ones((9002, 8), np.float32)) == 2
    assert ix.labels[0] == 5 and ix.pending.tolist() == [9000] and len(ix) == 2000
    assert len(pickle.loads(pickle.dumps(ix))) == 2000


def test_score_range_is_the_largest_absolute_score_of_shown_items() -> None:
    rng = np.random.default_rng(3)
    Y = rng.standard_normal((300, 6)).astype(np.float32)
    X = rng.standard_normal((5, 6)).astype(np.float32)
    hidden = np.zeros(300, bool)
    hidden[np.abs(Y @ X[0]).argmax()] = True
    got = MipsIndex(Y).score_range(X, Y, hidden)
    S = np.abs(X @ Y.T)
    S[:, hidden] = 0
    assert np.allclose(got, S.max(axis=1), rtol=1e-5)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ModelError, match="finite"):
        MipsIndex(np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(ModelError, match="labels"):
        MipsIndex(np.eye(2, dtype=np.float32), labels=np.array([1]))
    with pytest.raises(ModelError, match="dimensions"):
        MipsIndex(np.eye(2, dtype=np.float32)).search(np.ones((1, 3), np.float32), 1)


def test_enabled_by_catalog_size() -> None:
    c = AnnConfig(min_items=1000)
    assert not c.enabled_for(999) and c.enabled_for(1000)


@pytest.mark.parametrize("name", ["faiss", "faiss-8bit", "faiss-fp16"])
def test_ann_choice_measures_each_faiss_graph_on_the_same_users(name):
    """The index-choice benchmark builds each graph type and reports what it found."""
    from refold.bench import ann_choice

    r = ann_choice.run(3000, "als", [name], factors=8, queries=40, candidates=50, m=8, efc=16)
    row = r["libraries"][0]
    assert row["library"] == name and 0.5 < row["recall"] <= 1.0
    assert row["index_mb"] > 0 and row["single_ms"] > 0
