"""Top-K: equals brute force (score desc, index asc) with ties, exclusions, -inf, batches."""

from __future__ import annotations

import numpy as np
import pytest

from models.topk import topk, topk_batch, topk_of_support


def brute(scores: np.ndarray, k: int, excluded: np.ndarray | None = None) -> list[int]:
    banned = set() if excluded is None else set(np.asarray(excluded).tolist())
    ok = [i for i in range(len(scores)) if i not in banned and scores[i] > -np.inf]
    return sorted(ok, key=lambda i: (-scores[i], i))[:k]


def score_rows(kind: str, rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    if kind == "distinct":
        return rng.normal(size=(rows, n)).astype(np.float32)
    if kind == "few_values":
        return rng.integers(0, 4, (rows, n)).astype(np.float32)
    if kind == "sorted":
        return np.sort(rng.normal(size=(rows, n)).astype(np.float32), axis=1)
    if kind == "mostly_zero":  # popularity: most items never seen
        return np.where(rng.random((rows, n)) < 0.97, 0.0, rng.random((rows, n))).astype(np.float32)
    if kind == "mostly_minus_inf":  # category affinity: most items share no category
        return np.where(rng.random((rows, n)) < 0.98, -np.inf, rng.random((rows, n)))
    if kind == "tied_top":  # fewer than K scores above a tied K-th best
        return np.where(rng.random((rows, n)) < 0.995, 0.5, rng.random((rows, n)) + 1.0)
    return np.zeros((rows, n), dtype=np.float32)  # all tied


KINDS = ["distinct", "few_values", "sorted", "mostly_zero", "all_tied", "mostly_minus_inf",
         "tied_top"]


@pytest.mark.parametrize("kind", KINDS)
def test_topk_equals_brute_force(kind: str) -> None:
    rng = np.random.default_rng(0)
    for n, k in [(1, 1), (5, 3), (50, 50), (50, 60), (300, 10), (3000, 20), (1682, 100),
                 (5000, 200), (20000, 50)]:
        s = score_rows(kind, rng, 1, n)[0]
        idx, val = topk(s, k)
        assert idx.tolist() == brute(s, k)
        assert val.tolist() == s[idx].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_topk_with_exclusions_as_mask_or_indices(kind: str) -> None:
    rng = np.random.default_rng(1)
    s = score_rows(kind, rng, 1, 2000)[0]
    before = s.copy()
    banned = rng.choice(2000, 700, replace=False)
    mask = np.zeros(2000, dtype=bool)
    mask[banned] = True
    expected = brute(s, 25, banned)
    assert topk(s, 25, exclude=banned)[0].tolist() == expected
    assert topk(s, 25, exclude=mask)[0].tolist() == expected
    assert np.array_equal(s, before)  # the caller's scores are untouched


def test_topk_on_candidates_maps_back_to_indices() -> None:
    s = np.array([5.0, 1.0, 5.0, 9.0, 5.0], dtype=np.float32)
    cand = np.array([0, 2, 4])
    assert topk(s, 2, candidates=cand)[0].tolist() == [0, 2]


@pytest.mark.parametrize("kind", KINDS)
def test_topk_on_candidates_with_exclusions(kind: str) -> None:
    rng = np.random.default_rng(2)
    s = score_rows(kind, rng, 1, 3000)[0]
    cand = np.unique(rng.choice(3000, 900))
    banned = rng.choice(3000, 1200, replace=False)
    mask = np.zeros(3000, dtype=bool)
    mask[banned] = True
    outside = np.setdiff1d(np.arange(3000), cand)
    expected = brute(s, 30, np.concatenate([banned, outside]))
    for exclude in (banned, mask):
        idx, val = topk(s, 30, exclude=exclude, candidates=cand)
        assert idx.tolist() == expected and val.tolist() == s[idx].tolist()


def test_an_exclusion_mask_must_cover_the_scores() -> None:
    with pytest.raises(IndexError, match="exclusion mask"):
        topk(np.zeros(5), 2, exclude=np.zeros(4, dtype=bool))


def test_excluded_and_minus_inf_are_never_returned() -> None:
    s = np.array([1.0, -np.inf, 2.0, 0.0], dtype=np.float32)
    assert topk(s, 10, exclude=[3])[0].tolist() == [2, 0]
    assert topk(s, 0)[0].tolist() == []


def test_negative_zero_ties_with_zero() -> None:
    s = np.array([-0.0, 0.0, -0.0], dtype=np.float32)
    assert topk(s, 2)[0].tolist() == [0, 1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [40, 5000])  # 5000: the sampled-threshold path
def test_topk_batch_equals_brute_force_per_row(kind: str, n: int) -> None:
    rng = np.random.default_rng(2)
    S = score_rows(kind, rng, 7, n)
    excluded = [rng.choice(n, m, replace=False) for m in (0, 3, n // 2, n - 5, n, 1, 10)]
    idx, val = topk_batch(S.copy(), 20, excluded)
    assert idx.shape == (7, 20)
    for r in range(7):
        expected = brute(S[r], 20, excluded[r])
        got = [i for i in idx[r].tolist() if i >= 0]
        assert got == expected
        assert idx[r, len(got):].tolist() == [-1] * (20 - len(got))
        assert np.all(val[r, len(got):] == -np.inf)
        assert val[r, : len(got)].tolist() == S[r, got].tolist()


def test_topk_batch_common_exclusions() -> None:
    S = np.tile(np.arange(10, dtype=np.float32), (2, 1))
    idx, _ = topk_batch(S, 3, exclude=[np.array([8]), np.array([], dtype=int)],
                        exclude_all=np.array([9]))
    assert idx.tolist() == [[7, 6, 5], [8, 7, 6]]


def test_topk_batch_single_row_pads_like_the_rest() -> None:
    S = np.array([[3.0, 1.0, 2.0]], dtype=np.float32)
    idx, val = topk_batch(S, 5, [np.array([1])])
    assert idx.tolist() == [[0, 2, -1]] and val[0, 2] == -np.inf


@pytest.mark.parametrize("seed", range(30))
def test_topk_of_support_equals_topk_over_every_item(seed: int) -> None:
    """Scores 0 outside the support (which may hold zeros, negatives and indices past the
    scores), ties, exclusions as a mask or indices, K past the support's size."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    s = np.zeros(n)
    support = np.unique(rng.integers(0, n + 20, int(rng.integers(0, n + 1))))
    inside = support[support < n]
    s[inside] = rng.choice([0.0, -1.0, 0.5, 1.0, 2.0], len(inside)) * (seed % 3 != 0) + \
        rng.random(len(inside)) * (seed % 3 == 0)
    banned = rng.choice(n, int(rng.integers(0, n // 2 + 1)), replace=False)
    mask = np.zeros(n, dtype=bool)
    mask[banned] = True
    for k in (1, 5, 40, n + 3):
        want = brute(s, k, banned)
        for exclude in (banned, mask, None):
            got, val = topk_of_support(s, support, k, exclude)
            expected = want if exclude is not None else brute(s, k)
            assert got.tolist() == expected and val.tolist() == s[got].tolist()
