"""Exact re-scoring of candidates: with every item a candidate, the full scan's lists."""

from __future__ import annotations

import numpy as np

from models import covisit
from models.candidates import rescore, with_columns
from models.topk import topk, topk_batch


def _world(seed: int = 0, n: int = 300, f: int = 8, users: int = 40):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, f)).astype(np.float32)
    Y[5] = Y[6]  # a tie: broken by ascending index
    X = rng.standard_normal((users, f)).astype(np.float32)
    exclude = [rng.choice(n, rng.integers(0, 12), replace=False) for _ in range(users)]
    hidden = rng.random(n) < 0.1
    return Y, X, exclude, hidden


def test_all_items_as_candidates_give_the_full_scan() -> None:
    Y, X, exclude, hidden = _world()
    cands = np.tile(np.arange(len(Y)), (len(X), 1))
    idx, val = rescore(Y, X, cands, 20, hidden, exclude)
    want_idx, want_val = topk_batch(X @ Y.T, 20, exclude, np.flatnonzero(hidden))
    assert np.array_equal(idx, want_idx)
    assert np.allclose(val, want_val)


def test_a_subset_ranks_what_it_holds_and_pads() -> None:
    Y, X, _, _ = _world(1)
    cands = with_columns(np.array([[7, 3, -1, 3]]), [np.array([11])])
    assert cands.tolist() == [[3, 7, 11]]
    idx, val = rescore(Y, X[:1], cands, 5, np.zeros(len(Y), bool), [np.array([7])])
    s = Y[[3, 11]] @ X[0]
    assert idx[0, :2].tolist() == [[3, 11][j] for j in np.argsort(-s, kind="stable")]
    assert idx[0, 2:].tolist() == [-1, -1, -1] and np.isneginf(val[0, 2:]).all()


def test_overlay_vectors_replace_the_served_ones() -> None:
    Y, X, _, _ = _world(2)
    V = 10 * X[:1]  # item 4's new vector: the best for user 0
    idx, val = rescore(Y, X[:1], np.arange(len(Y))[None], 1, overlay=(np.array([4]), V))
    assert idx[0, 0] == 4 and np.isclose(val[0, 0], float(V[0] @ X[0]), rtol=1e-5)


def test_session_blend_equals_the_full_blend() -> None:
    Y, X, exclude, hidden = _world(3)
    rng = np.random.default_rng(3)
    never = np.flatnonzero(hidden)
    for r in range(len(X)):
        cols = rng.choice(len(Y), 6)
        terms = rng.random(6)
        cf = (Y @ X[r]).astype(np.float64)
        ex = np.concatenate([never, exclude[r]])
        want = topk(covisit.blend(cf.copy(), cols, terms, 0.7, ex), 20, ex)
        shown = np.delete(cf, ex)
        f_max = np.array([max(shown.max(), -shown.min())])
        cands = with_columns(np.arange(len(Y))[None], [cols])
        idx, val = rescore(Y, X[r : r + 1], cands, 20, hidden, [exclude[r]],
                           sessions=[(cols, terms)], weight=0.7, f_max=f_max)
        assert idx[0].tolist() == want[0].tolist()
        assert np.allclose(val[0], want[1])
