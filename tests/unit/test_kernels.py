"""The compiled per-event kernels give what the numpy code of the batched paths gives."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from models import kernels, selection
from models.covisit import blend
from models.history import Decay, UserHistory, confidences_many
from models.topk import topk

rng = np.random.default_rng(7)


def numpy_contributions(items, recency, nbr, wt, inv):
    cols = np.maximum(nbr[items], 0).ravel()
    terms = (wt[items] * (recency * inv[items])[:, None]).ravel()
    return cols, terms * inv[cols]


@pytest.mark.parametrize("case", range(40))
def test_blend_topk_is_topk_of_blend(case: int) -> None:
    n, k = int(rng.integers(5, 300)), int(rng.integers(1, 25))
    if case % 3 == 0:  # the blend's depth (200) and beyond, over catalogs big and small
        n, k = int(rng.integers(5, 4000)), int(rng.integers(150, 400))
    # integer scores make many ties, which must break by ascending index
    cf = rng.integers(-3, 4, n).astype(np.float32) if case % 2 else \
        rng.normal(size=n).astype(np.float32)
    cf[rng.random(n) < 0.05] = -np.inf
    exclude = rng.choice(n, int(rng.integers(0, n // 2)), replace=False).astype(np.int64)
    m = int(rng.integers(0, 40)) if case % 5 else 0
    cols = rng.integers(0, n, m).astype(np.intp)
    terms = rng.random(m) * (rng.random(m) < 0.8)
    weight = [0.0, 0.5, 1.0, 2.0][case % 4]
    want = topk(blend(cf, cols, terms, weight, exclude), k, exclude)
    got = selection.blend_topk(cf, exclude, cols, terms, weight, k)
    assert got[0].tolist() == want[0].tolist()
    assert got[1].tolist() == np.asarray(want[1], dtype=np.float64).tolist()


def rows_of(nbr: np.ndarray, wt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-item rows laid out as `CoVisits` keeps them: (item -> row, rows of neighbours, rows
    of counts), the rows in a shuffled order, row 0 empty and shared by items without one."""
    has = np.flatnonzero(nbr[:, 0] >= 0)
    slot = np.zeros(len(nbr), np.int32)
    slot[rng.permutation(has)] = np.arange(1, len(has) + 1)
    rows_nbr = np.full((len(has) + 1, nbr.shape[1]), -1, np.int32)
    rows_wt = np.zeros((len(has) + 1, nbr.shape[1]))
    rows_nbr[slot[has]], rows_wt[slot[has]] = nbr[has], wt[has]
    return slot, rows_nbr, rows_wt


def test_contributions_match_numpy() -> None:
    n, m = 50, 16
    nbr = np.full((n, m), -1, dtype=np.int32)
    deg = rng.integers(0, m + 1, n)
    deg[:3] = 0
    for r in range(n):
        nbr[r, : deg[r]] = rng.choice(n, deg[r], replace=False)
    wt, inv = rng.random((n, m)) * (nbr >= 0), rng.random(n)
    slot, rows_nbr, rows_wt = rows_of(nbr, wt)
    items, recency = rng.choice(n + 5, 10, replace=False), rng.random(10)
    got = kernels.contributions(items, recency, slot, rows_nbr, rows_wt, inv)
    known = items < n  # items past the per-item arrays have no neighbours yet
    want = numpy_contributions(items[known], recency[known], nbr, wt, inv)
    assert got[0].tolist() == want[0].tolist()
    assert got[1].tolist() == want[1].tolist()
    assert len(kernels.contributions(np.arange(3), recency[:3], slot, rows_nbr, rows_wt,
                                     inv)[0]) == 0


def test_slots_of_finds_known_neighbours_only() -> None:
    nbr = np.array([[-1, -1, -1], [1, -1, -1], [4, 2, -1]], dtype=np.int32)  # row 0: empty
    deg = np.array([2, 1, 0], dtype=np.int32)
    slot = np.array([2, 1, 0], dtype=np.int32)  # item 0 -> row 2, item 1 -> row 1, item 2: none
    rows, cols = np.array([0, 0, 0, 1, 1, 2]), np.array([2, 4, 3, 1, -1, 4])
    assert kernels.slots_of(nbr, deg, slot, rows, cols).tolist() == [1, 0, -1, 0, -1, -1]


@pytest.mark.parametrize("decay", [Decay("events", 3.0), Decay("time", 5.0, 2.0),
                                   Decay("none", 1.0, 3.0)])
@pytest.mark.parametrize("max_age", [None, 20.0])
def test_confidences_of_one_user_match_the_batched_path(decay: Decay, max_age) -> None:
    h = UserHistory(max_events=12, max_age=max_age)
    for j in range(30):  # wraps the ring; repeats, negatives, sessions and then none
        h.add(int(rng.integers(8)), float(rng.choice([1.0, 0.5, -1.0])), t=float(j),
              session_id=f"s{j // 7}" if j < 24 else None)
    _, items, sums = confidences_many([h], [31.0], decay)
    offsets, items2, sums2 = confidences_many([h, h], [31.0, 31.0], decay)
    assert items.tolist() == items2[: offsets[1]].tolist()
    np.testing.assert_allclose(sums, sums2[: offsets[1]], rtol=1e-6)


def test_fold_in_matches_a_dense_solve() -> None:
    Y = rng.normal(size=(40, 8)).astype(np.float32)
    A0 = Y.T.astype(np.float64) @ Y + 2.0 * np.eye(8)
    items, w = rng.choice(40, 9, replace=False), rng.normal(size=9).astype(np.float32)
    c = 3.0 * w.astype(np.float64)
    U = Y[items].astype(np.float64)
    want = np.linalg.solve(A0 + (U.T * (np.abs(c) - 1)) @ U, U.T @ np.maximum(c, 0))
    x, ok = kernels.fold_in(Y, A0, items, w, 3.0, True)
    assert ok
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)
    _, ok = kernels.fold_in(Y, A0, items, -np.abs(w), 3.0, True)
    assert not ok  # no positive weight: nothing to solve


def test_model_rows_keep_items_with_a_row() -> None:
    row_of = np.array([3, -1, 0, 1], dtype=np.intp)
    items = np.array([0, 1, 2, 5], dtype=np.int32)  # 5 is past row_of: no row yet
    rows, weights, positive = kernels.model_rows(
        items, np.array([0.5, 2.0, -1.0, 1.0], np.float32), row_of)
    assert rows.tolist() == [3, 0]
    assert weights.tolist() == [0.5, -1.0]
    assert positive == 1


def test_last_positives_equal_the_numpy_ring_walk() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        size = int(rng.integers(1, 30))
        items = rng.integers(0, 50, size).astype(np.int32)
        weights = rng.choice([-1.0, 0.0, 1.0, 2.5], size).astype(np.float32)
        seq = int(rng.integers(0, 100))
        held = min(seq, size)
        n = int(rng.integers(1, 12))
        at = np.arange(seq - held, seq) % size
        expected = items[at][weights[at] > 0][-n:].astype(np.intp)
        got = kernels.last_positives(items, weights, seq, held, n)
        assert got.dtype == np.intp and got.tolist() == expected.tolist()



def numpy_blend_ranks(tops, weights, k, depth):
    """Truncated-rank blending in numpy: distinct items, gains summed in order, top-k."""
    gains = [w * (depth - np.arange(len(idx))) / depth
             for idx, w in zip(tops, weights, strict=True)]
    items, where = np.unique(np.concatenate(tops), return_inverse=True)
    blended = np.bincount(where, weights=np.concatenate(gains), minlength=len(items))
    sel, val = topk(blended, k)
    return items[sel], val


def test_blend_ranks_matches_unique_and_bincount() -> None:
    rng = np.random.default_rng(12)
    for _ in range(500):  # weights that do not add up exactly: the order of the sums counts
        n, depth, k = int(rng.integers(1, 400)), int(rng.integers(1, 120)), int(rng.integers(1, 30))
        tops = [rng.choice(n, min(n, int(rng.integers(1, depth + 1))), replace=False)
                for _ in range(int(rng.integers(1, 4)))]
        weights = rng.choice([0.1234567, 1 / 3, 0.7, 1.0], len(tops))
        ends = np.cumsum([len(t) for t in tops])
        got = selection.blend_ranks(np.concatenate(tops).astype(np.int64), ends, weights, k, depth)
        expected = numpy_blend_ranks(tops, weights, k, depth)
        assert got[0].tolist() == expected[0].tolist()
        assert got[1].tolist() == expected[1].tolist()  # the same bits

WORKLOAD = """
import json
import numpy as np
from models import compiled as warm, guard, kernels, selection
from models.foldin import ItemFactors
from models.recommender import FoldInConfig, OnlineRecommender

warm.warm_up()
def compiled():
    return {f"{m.__name__}.{n}": sorted(map(str, getattr(m, n).signatures))
            for m in (kernels, selection, guard) for n in dir(m)
            if hasattr(getattr(m, n), "signatures")}
before = compiled()
rng = np.random.default_rng(0)
ids = [f"i{n}" for n in range(300)]
rec = OnlineRecommender(FoldInConfig(full_events=4, k=10),
                        ItemFactors(ids, rng.normal(size=(300, 8)).astype(np.float32), 1))
types = ["view", "click", "purchase", "dismiss", "rating"]
for j in range(600):
    rec.learn(f"u{j % 40}", ids[int(rng.integers(300))], types[j % 5], float(j),
              value=4.0 if j % 5 == 4 else None, session_id=f"s{j // 6}")
    if j % 50 == 0:
        rec.recommend(f"u{j % 40}", float(j))
for u in range(40):
    rec.recommend(f"u{u}", 700.0)
print(json.dumps({n: s for n, s in compiled().items() if s != before[n]}))
"""


def test_warm_up_compiles_every_kernel_a_recommender_calls() -> None:
    """A kernel first compiled (or loaded from numba's cache) inside a batch stalls that batch
    for up to seconds: `warm_up`, run when a recommender is made, must cover every signature
    the learning and ranking paths use (a fresh process, where nothing else compiled them)."""
    out = subprocess.run([sys.executable, "-c", WORKLOAD], check=True, capture_output=True,
                         text=True, timeout=600)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}


DRAW = """
import json
import numpy as np
from models import compiled, exploration, plackett_luce

compiled.warm_up()
def compiled():
    return {f"{m.__name__}.{n}": sorted(map(str, getattr(m, n).signatures))
            for m in (exploration, plackett_luce) for n in dir(m)
            if hasattr(getattr(m, n), "signatures")}
before = compiled()
rng = np.random.default_rng(0)
for k in (1, 2, 5, 20):
    scores = np.sort(rng.normal(size=2 * k))[::-1]
    for policy in ("none", "epsilon", "plackett_luce"):
        exploration.choose(exploration.Policy(policy), scores, k, exploration.rng_for(str(k)))
print(json.dumps({n: s for n, s in compiled().items() if s != before[n]}))
"""


def test_warm_up_compiles_the_exploration_draw() -> None:
    """Every published list is drawn by `exploration.choose`: its kernels are warmed too."""
    out = subprocess.run([sys.executable, "-c", DRAW], check=True, capture_output=True,
                         text=True, timeout=600)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
