"""MMR re-rank: the knob's ends, a brute-force greedy reference, and categories per list."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from models.diversity import categories_per_list, category_rows, cosine_matrix, mmr


def reference(rel: np.ndarray, sim: np.ndarray, k: int, lam: float) -> list[int]:
    r = (rel - rel.min()) / (rel.max() - rel.min())
    chosen: list[int] = []
    for _ in range(k):
        best, best_gain = -1, -np.inf
        for i in range(len(rel)):
            if i in chosen:
                continue
            penalty = max((max(sim[i, j], 0.0) for j in chosen), default=0.0)
            gain = (1 - lam) * r[i] - lam * penalty if chosen else r[i]
            if gain > best_gain:
                best, best_gain = i, gain
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("lam", [0.1, 0.3, 0.7, 1.0])
def test_equals_the_greedy_definition(lam: float) -> None:
    rng = np.random.default_rng(int(lam * 10))
    rel = rng.random(40)
    F = rng.normal(size=(40, 8))
    assert mmr(rel, F, 10, lam).tolist() == reference(rel, cosine_matrix(F), 10, lam)


def test_zero_strength_is_the_relevance_order() -> None:
    rel = np.array([0.2, 0.9, 0.5, 0.9])
    assert mmr(rel, np.eye(4), 3, 0.0).tolist() == [1, 3, 2]


@pytest.mark.slow
def test_more_strength_more_categories_per_list() -> None:
    rng = np.random.default_rng(0)
    names = [f"g{j}" for j in range(8)]
    counts = []
    for lam in (0.0, 0.3, 0.6):
        total = 0
        for _ in range(50):
            cats = [list(rng.choice(names, rng.integers(1, 3), replace=False,
                                    p=np.r_[0.5, np.full(7, 0.5 / 7)])) for _ in range(50)]
            picked = mmr(np.sort(rng.random(50))[::-1], category_rows(cats), 10, lam)
            total += categories_per_list([cats[i] for i in picked])
        counts.append(total / 50)
    assert counts[0] < counts[1] < counts[2]


def test_sparse_and_dense_features_agree() -> None:
    rows = category_rows([["a", "b"], ["a"], ["c"], []])
    assert rows.shape == (4, 3)
    assert np.allclose(cosine_matrix(rows), cosine_matrix(rows.toarray()))
    assert cosine_matrix(rows)[3].tolist() == [0.0] * 4
    rel = np.array([1.0, 0.95, 0.5, 0.4])
    assert mmr(rel, rows, 4, 0.5).tolist() == mmr(rel, sp.csr_matrix(rows.toarray()), 4,
                                                  0.5).tolist()


def test_short_lists_and_bad_input() -> None:
    assert mmr(np.array([0.3]), np.ones((1, 2)), 5, 0.5).tolist() == [0]
    assert mmr(np.array([1.0, 1.0]), np.eye(2), 2, 0.5).tolist() == [0, 1]
    with pytest.raises(ValueError, match="strength"):
        mmr(np.ones(3), np.eye(3), 2, 1.5)
    with pytest.raises(ValueError, match="2 rows for 3"):
        mmr(np.arange(3.0), np.eye(2), 2, 0.5)
