"""Fold-in: equals a dense numpy solve and implicit's recalculate_user, batched or not."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from models.foldin import ItemFactors, VectorCache, fold_in, fold_in_batch
from models.topk import topk
from refold.core.errors import ModelError

ALPHA, REG = 3.0, 0.1
N_USERS, N_ITEMS = 80, 40


@pytest.fixture(scope="module", params=[np.float32, np.float64], ids=["f32", "f64"])
def als(request: pytest.FixtureRequest) -> AlternatingLeastSquares:
    m = sp.random(N_USERS, N_ITEMS, density=0.15, random_state=1, format="csr", dtype=np.float32)
    m.data = (m.data * 3 + 0.2).astype(np.float32)
    with threadpool_limits(1, "blas"):  # implicit warns about a BLAS thread pool otherwise
        model = AlternatingLeastSquares(factors=6, iterations=3, regularization=REG, alpha=ALPHA,
                                        random_state=0, dtype=request.param, num_threads=1)
        model.fit(m, show_progress=False)
    return model


def random_user(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    items = rng.choice(N_ITEMS, n, replace=False).astype(np.int32)
    w = rng.normal(0.2, 1.0, n).astype(np.float32)
    w[0] = abs(w[0]) + 0.1  # at least one positive
    return items, w


def dense_solution(Y: np.ndarray, items: np.ndarray, w: np.ndarray, alpha: float,
                   reg: float) -> np.ndarray:
    """Hu, Koren & Volinsky written out with dense C_u and p_u, as implicit defines them."""
    Y = Y.astype(np.float64)
    c = np.ones(len(Y))
    p = np.zeros(len(Y))
    c[items] = np.abs(alpha * w.astype(np.float64))
    p[items] = w > 0
    A = Y.T @ (c[:, None] * Y) + reg * np.eye(Y.shape[1])
    return np.linalg.solve(A, Y.T @ (c * p))


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(x - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("n", [1, 4, 12])  # 12 > 6 factors: the direct k×k path
def test_fold_in_equals_implicit_recalculate_user(als: AlternatingLeastSquares, n: int) -> None:
    f = ItemFactors([str(i) for i in range(N_ITEMS)], als.item_factors, version=1)
    rng = np.random.default_rng(n)
    for _ in range(20):
        items, w = random_user(rng, n)
        row = sp.csr_matrix((w, (np.zeros(n, int), items)), shape=(1, N_ITEMS))
        ref = als.recalculate_user(0, row)
        x = fold_in(f, items, w, ALPHA, REG)
        assert x is not None and x.dtype == np.float32
        assert rel_err(x, ref) < 1e-5
        assert rel_err(x, dense_solution(f.Y, items, w, ALPHA, REG)) < 1e-5


def test_fold_in_top_k_equals_implicit_recommend(als: AlternatingLeastSquares) -> None:
    f = ItemFactors([str(i) for i in range(N_ITEMS)], als.item_factors, version=1)
    rng = np.random.default_rng(7)
    for _ in range(20):
        items, w = random_user(rng, 5)
        w = np.abs(w)
        row = sp.csr_matrix((w, (np.zeros(5, int), items)), shape=(1, N_ITEMS))
        ids, _ = als.recommend(0, row, N=5, recalculate_user=True)
        x = fold_in(f, items, w, ALPHA, REG)
        assert x is not None
        assert topk(f.Y @ x, 5, exclude=items)[0].tolist() == ids.tolist()


def test_negative_weights_are_preference_zero_with_their_confidence() -> None:
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(30, 4)).astype(np.float32)
    f = ItemFactors([str(i) for i in range(30)], Y, version=1)
    items, w = np.array([3, 7, 9]), np.array([1.0, -2.0, -0.2], dtype=np.float32)
    x = fold_in(f, items, w, ALPHA, REG)
    assert x is not None
    assert rel_err(x, dense_solution(Y, items, w, ALPHA, REG)) < 1e-6
    # A strong dislike pushes the item's score below what the like alone gives.
    x_like = fold_in(f, items[:1], w[:1], ALPHA, REG)
    assert x_like is not None and Y[7] @ x < Y[7] @ x_like


def test_no_positive_weight_gives_no_vector() -> None:
    f = ItemFactors(["a", "b"], np.eye(2, dtype=np.float32), version=1)
    assert fold_in(f, np.array([0]), np.array([-1.0]), ALPHA, REG) is None
    assert fold_in(f, np.array([], dtype=int), np.array([]), ALPHA, REG) is None


def test_batch_equals_one_user_at_a_time() -> None:
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(50, 8)).astype(np.float32)
    f = ItemFactors([str(i) for i in range(50)], Y, version=1)
    users = [rng.choice(50, n, replace=False) for n in (3, 0, 20, 1, 8, 9)]
    weights = [rng.normal(size=len(u)).astype(np.float32) for u in users]
    weights[3] = -np.abs(weights[3])  # only negative: no vector
    for inverse in (None, f.inverse(REG)):
        X, ok = fold_in_batch(Y, f.YtY, users, weights, ALPHA, REG, inverse)
        for u, (items, w) in enumerate(zip(users, weights, strict=True)):
            one = fold_in(f, items, w, ALPHA, REG)
            assert ok[u] == (one is not None)
            if one is None:
                assert not X[u].any()
            else:
                assert rel_err(X[u], dense_solution(Y, items, w, ALPHA, REG)) < 1e-5
                assert rel_err(X[u], one) < 1e-5


def test_item_factors_check_their_input() -> None:
    with pytest.raises(ModelError, match="shape"):
        ItemFactors(["a"], np.zeros((2, 3)), version=1)
    with pytest.raises(ModelError, match="NaN"):
        ItemFactors(["a"], np.array([[np.nan, 0.0]]), version=1)
    with pytest.raises(ModelError, match="unique"):
        ItemFactors(["a", "a"], np.zeros((2, 3)), version=1)
    f = ItemFactors(["a", "b"], np.array([[1.0, 2.0], [3.0, 4.0]]), version=4)
    assert f.Y.dtype == np.float32 and f.YtY.dtype == np.float64
    assert f.YtY.tolist() == [[10.0, 14.0], [14.0, 20.0]] and f.row == {"a": 0, "b": 1}


def test_from_implicit_carries_the_user_gramian(als: AlternatingLeastSquares) -> None:
    f = ItemFactors.from_implicit(als, [str(i) for i in range(N_ITEMS)], version=2)
    X = als.user_factors.astype(np.float64)
    assert f.XtX is not None and np.allclose(f.XtX, X.T @ X)


def test_vector_cache_reuses_a_vector_until_its_key_changes() -> None:
    f = ItemFactors(["a", "b", "c"], np.eye(3, dtype=np.float32), version=1)
    cache = VectorCache()
    req = ("u", (1, 5), np.array([0, 2]), np.array([1.0, -1.0], dtype=np.float32))
    (x1,) = cache.vectors(f, [req], ALPHA, REG)
    (x2,) = cache.vectors(f, [req], ALPHA, REG)
    assert x1 is x2 and cache.key_of("u") == (1, 5)
    changed = ("u", (1, 6), np.array([1]), np.array([1.0], dtype=np.float32))
    (x3,) = cache.vectors(f, [changed], ALPHA, REG)
    assert x3 is not None and int(np.argmax(x3)) == 1
    cache.drop("u")
    assert cache.key_of("u") is None


def test_large_batches_are_solved_in_chunks_with_the_same_result() -> None:
    rng = np.random.default_rng(4)
    Y = rng.normal(size=(40, 3)).astype(np.float32)
    f = ItemFactors([str(i) for i in range(40)], Y, version=1)
    users = [rng.choice(40, int(rng.integers(1, 6)), replace=False) for _ in range(300)]
    weights = [rng.uniform(0.1, 2.0, len(u)).astype(np.float32) for u in users]
    X, ok = fold_in_batch(Y, f.YtY, users, weights, ALPHA, REG, f.inverse(REG))
    assert X.shape == (300, 3) and ok.all()
    for u in (0, 127, 128, 299):
        assert rel_err(X[u], dense_solution(Y, users[u], weights[u], ALPHA, REG)) < 1e-5
