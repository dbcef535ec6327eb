"""Similar items: co-visit counts, the blend, the top-k, and plausible neighbours on ml-100k."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from models.similar import covisit_counts, named, similar_items
from refold.core.errors import ModelError

ML_100K = Path(os.environ.get(
    "REFOLD_ML100K", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"))


def test_covisits_count_pairs_within_the_window_per_user_in_time_order() -> None:
    # user 0: items 3, 1, 2 in time order (given shuffled); user 1: items 1, 3
    users = np.array([0, 1, 0, 0, 1])
    items = np.array([2, 3, 3, 1, 1])
    times = np.array([30.0, 2.0, 10.0, 20.0, 1.0])
    C, n = covisit_counts(users, items, times, n_items=4, window=2, decay=0.5)
    dense = C.toarray()
    assert np.allclose(dense, dense.T) and np.all(np.diag(dense) == 0)
    assert dense[3, 1] == 1.0 + 1.0  # adjacent for user 0, and for user 1
    assert dense[1, 2] == 1.0         # adjacent for user 0
    assert dense[3, 2] == 0.5         # two apart for user 0
    assert n.tolist() == [0.0, 2.0, 1.0, 2.0]
    C1, _ = covisit_counts(users, items, times, n_items=4, window=1)
    assert C1.toarray()[3, 2] == 0.0  # beyond a window of one


def test_covisits_never_pair_two_users_and_reject_bad_input() -> None:
    C, _ = covisit_counts(np.array([0, 1]), np.array([0, 1]), np.array([1.0, 2.0]), 2)
    assert C.nnz == 0
    with pytest.raises(ModelError, match="item indices"):
        covisit_counts(np.array([0]), np.array([5]), np.array([1.0]), 2)
    with pytest.raises(ModelError, match="same length"):
        covisit_counts(np.array([0, 0]), np.array([1]), np.array([1.0]), 2)
    with pytest.raises(ModelError, match="window"):
        covisit_counts(np.array([0]), np.array([1]), np.array([1.0]), 2, window=0)


def test_neighbours_exclude_the_item_and_are_sorted_and_padded() -> None:
    Y = np.random.default_rng(3).normal(size=(6, 3)).astype(np.float32)
    idx, val = similar_items(Y, k=10, chunk=4)  # k > items: padded; rows in two chunks
    assert idx.shape == (6, 6)
    for i in range(6):
        assert i not in idx[i, :5].tolist() and idx[i, 5] == -1 and np.isnan(val[i, 5])
        assert np.all(np.diff(val[i, :5]) <= 0)
        unit = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        cos = unit @ unit[i]
        cos[i] = -np.inf
        assert idx[i, 0] == int(np.argmax(cos))


def test_ties_are_broken_by_index_and_zero_vectors_are_allowed() -> None:
    Y = np.array([[1, 0], [1, 0], [1, 0], [0, 0]], dtype=np.float32)
    idx, _ = similar_items(Y, k=2)
    assert idx[0].tolist() == [1, 2] and idx[2].tolist() == [0, 1]
    assert idx[3].tolist() == [0, 1]  # all zero: ties everywhere


def test_covisits_move_neighbours_with_their_weight() -> None:
    Y = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    C, n = covisit_counts(np.array([0, 0]), np.array([0, 2]), np.array([1.0, 2.0]), 3)
    assert similar_items(Y, C, n, k=1, weight=0.0)[0][0, 0] == 1
    assert similar_items(Y, C, n, k=1, weight=0.5)[0][0, 0] == 1  # 1 + 0 against 0 + 0.5
    assert similar_items(Y, C, n, k=1, weight=2.0)[0][0, 0] == 2  # 1 + 0 against 0 + 2
    _idx, val = similar_items(Y, C, n, k=2, weight=2.0)
    assert val[0].tolist() == pytest.approx([2.0, 1.0], abs=1e-6)


def test_bad_factors_or_covisits_are_refused() -> None:
    with pytest.raises(ModelError, match="finite"):
        similar_items(np.array([[np.nan, 1.0]]))
    with pytest.raises(ModelError, match="co-visits"):
        C, n = covisit_counts(np.array([0]), np.array([0]), np.array([0.0]), 3)
        similar_items(np.ones((2, 2)), C, n)
    with pytest.raises(ModelError, match="k must"):
        similar_items(np.ones((2, 2)), k=0)


def test_named_pairs_ids_and_drops_the_padding() -> None:
    idx, val = similar_items(np.array([[1, 0], [0, 1]], dtype=np.float32), k=3)
    assert [(i, [j for j, _ in nb]) for i, nb in named(["a", "b"], idx, val)] == \
        [("a", ["b"]), ("b", ["a"])]


@pytest.mark.slow
@pytest.mark.skipif(not ML_100K.is_dir(), reason="ml-100k is not beside the checkout")
def test_neighbours_of_films_on_ml_100k_share_their_genres() -> None:
    from models.als import csr_from, fit_als
    from models.weights import EventWeights
    from producers.datasets import load_movielens

    log, catalog = load_movielens(ML_100K)
    weights = EventWeights()
    w = np.array([weights.weight("rating", v) for v in log.values])
    user_ids, u = np.unique(log.user_ids, return_inverse=True)
    item_ids, i = np.unique(log.item_ids, return_inverse=True)
    X = csr_from(u, i, w, (len(user_ids), len(item_ids)))
    Y = fit_als(X, 32, 5.0, 2.0, 15, 0, item_ids=item_ids.tolist()).Y
    pos = w > 0
    C, n = covisit_counts(u[pos], i[pos], log.times[pos], len(item_ids))
    idx, _ = similar_items(Y, C, n, k=10)

    genres = [set(next(it for it in catalog if it.item_id == x).categories) for x in item_ids]
    row = {x: r for r, x in enumerate(item_ids.tolist())}

    def share(r: int) -> float:
        return float(np.mean([bool(genres[r] & genres[j]) for j in idx[r]]))

    popular = np.flatnonzero(X.getnnz(axis=0) >= 50)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(item_ids), (2, 20_000))
    base = np.mean([bool(genres[x] & genres[y]) for x, y in zip(a, b, strict=True) if x != y])
    films = ["50", "1", "127", "56", "100", "181", "98", "95", "288", "174"]
    # Star Wars, Toy Story, The Godfather, Pulp Fiction, Fargo, Return of the Jedi, The Silence
    # of the Lambs, Aladdin, Scream, Raiders of the Lost Ark
    assert {"181", "172"} <= {item_ids[j] for j in idx[row["50"], :3]}  # the two sequels
    assert np.mean([share(row[f]) for f in films]) >= 0.65          # measured 0.75
    assert np.mean([share(r) for r in popular]) >= 0.65             # measured 0.715
    assert base <= 0.40                                              # measured 0.343
    assert len({tuple(r) for r in idx.tolist()}) > 0.9 * len(idx)    # not one list for all
