"""Compiled loops (numba) of the per-event learning path, where one user's update costs dozens
of small numpy calls: here it is one pass (a user's confidences and fold-in, the session's
co-visit scores, popularity's decayed additions). The selection of a list has its own,
`models.selection`.

The batched paths stay in numpy (`models.history.confidences_many`, `models.foldin`, ...): over
a micro-batch their per-call overhead is shared. `tests/unit/test_kernels.py` checks each kernel
against the numpy code: the co-visit and row kernels return the same bits; the confidences and
the fold-in the same numbers up to rounding (exp2 and sums in another order), as the batched
fold-in already differs from a lone user's by rounding.

The functions compile on first use and cache the machine code next to this file (numba's
`cache=True`); `models.compiled.warm_up()` compiles every model's kernels ahead, once per process.

>>> nbr = np.array([[1, -1], [0, -1]], np.int32)   # items 0 and 1 each other's one neighbour
>>> slots_of(nbr, np.array([1, 1], np.int32), np.arange(2, dtype=np.int32),
...          np.array([0, 1, 1]), np.array([1, 0, 1])).tolist()
[0, 0, -1]
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def contributions(
    items: np.ndarray, recency: np.ndarray, slot: np.ndarray, nbr: np.ndarray, wt: np.ndarray,
    inv: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`CoVisits.contributions`: per recent item a (weight `recency[a]`) within `slot` (item ->
    its row of `nbr` and `wt`, 0: the empty row), and per slot b of its row r, the column
    max(nbr[r, b], 0) and the term wt[r, b] · recency[a] · inv[a] · inv[column] (empty slots
    give 0 on column 0). Empty when none of the items has a neighbour."""
    m = nbr.shape[1]
    known = 0
    co_visited = False
    for a in range(items.shape[0]):
        if items[a] < slot.shape[0]:  # items past the per-item arrays have none yet
            known += 1
            co_visited |= nbr[slot[items[a]], 0] >= 0  # rows fill from slot 0
    if not co_visited:
        return np.zeros(0, np.intp), np.zeros(0)
    cols = np.empty(known * m, np.intp)
    terms = np.empty(known * m)
    at = 0
    for a in range(items.shape[0]):
        it = items[a]
        if it >= slot.shape[0]:
            continue
        r = slot[it]
        ri = recency[a] * inv[it]
        for b in range(m):
            c = max(nbr[r, b], 0)
            cols[at] = c
            terms[at] = wt[r, b] * ri * inv[c]
            at += 1
    return cols, terms


@njit(cache=True, nogil=True)
def slots_of(nbr: np.ndarray, deg: np.ndarray, slot: np.ndarray, rows: np.ndarray,
             cols: np.ndarray) -> np.ndarray:
    """For each pair j, the slot of neighbour `cols[j]` among the `deg` filled slots of item
    `rows[j]`'s row of `nbr` (`slot`: item -> row), or -1: where `CoVisits` adds a co-visit to a
    known neighbour."""
    pos = np.full(rows.shape[0], -1, np.intp)
    for j in range(rows.shape[0]):
        r, c = rows[j], cols[j]
        s = slot[r]
        for b in range(deg[r]):
            if nbr[s, b] == c:
                pos[j] = b
                break
    return pos


@njit(cache=True, nogil=True)
def confidences(
    ring: np.ndarray, decay_mode: int, half_life: float, last_seq: int, now: float,
    boost: float, current: int, max_age: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One user's `history.confidences_many`: `ring` holds the user's events in slot order
    (`history.EVENT_DTYPE` records), `decay_mode` is 0 none, 1 events, 2 time. Returns (items
    int32 ascending, summed weights float32), zero sums left out."""
    n = ring.shape[0]
    item = np.empty(n, np.int32)
    w = np.empty(n)
    keep = np.ones(n, np.bool_)
    for j in range(n):
        ev = ring[j]
        item[j] = ev["item"]
        w[j] = float(ev["weight"])
        if decay_mode == 1:
            w[j] *= np.exp2((ev["seq"] - last_seq) / half_life)
        elif decay_mode == 2:
            w[j] *= np.exp2(-max(now - ev["time"], 0.0) / half_life)
        if boost != 1.0 and current >= 0 and ev["session"] == current:
            w[j] *= boost
        keep[j] = ev["time"] >= now - max_age
    order = np.argsort(item, kind="mergesort")  # stable: each item's events in slot order
    out_i = np.empty(n, np.int32)
    out_w = np.empty(n, np.float32)
    m = 0
    j = 0
    while j < n:
        it, total, seen = item[order[j]], 0.0, False
        while j < n and item[order[j]] == it:
            if keep[order[j]]:
                total += w[order[j]]
                seen = True
            j += 1
        if seen and total != 0.0:
            out_i[m], out_w[m] = it, total
            m += 1
    return out_i[:m], out_w[:m]


@njit(cache=True, nogil=True)
def model_rows(
    items: np.ndarray, weights: np.ndarray, row_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """The model rows of the `items` that have one (`row_of[i]` ≥ 0; items past `row_of` have
    none), their weights, and how many of them have a positive weight."""
    rows = np.empty(items.shape[0], np.intp)
    row_weights = np.empty(items.shape[0], weights.dtype)
    m = positive = 0
    for a in range(items.shape[0]):
        r = row_of[items[a]] if items[a] < row_of.shape[0] else -1
        if r >= 0:
            rows[m], row_weights[m] = r, weights[a]
            positive += weights[a] > 0
            m += 1
    return rows[:m], row_weights[:m], positive


@njit(cache=True, nogil=True)
def fold_in(
    Y: np.ndarray, A0: np.ndarray, items: np.ndarray, weights: np.ndarray, alpha: float,
    counts_unobserved: bool,
) -> tuple[np.ndarray, bool]:
    """One user's `foldin.fold_in_one`: solve (A0 + Σ d_i y_i y_iᵀ) x = Σ c_i⁺ y_i by Cholesky,
    with c = alpha·weights and d = |c| − 1 (|c| without `counts_unobserved`). Returns (x float32,
    ok); not ok without a positive weight, or when the system is not positive definite."""
    k, n = Y.shape[1], items.shape[0]
    U = np.empty((n, k))
    Ud = np.empty((k, n))  # (U · d)ᵀ
    b = np.zeros(k)
    positive = False
    for a in range(n):
        c = alpha * float(weights[a])
        positive |= c > 0
        d = abs(c) - 1.0 if counts_unobserved else abs(c)
        for r in range(k):
            y = float(Y[items[a], r])
            U[a, r], Ud[r, a] = y, d * y
            if c > 0:
                b[r] += c * y
    if not positive:
        return np.zeros(k, np.float32), False
    A = A0 + Ud @ U  # one BLAS product
    for r in range(k):  # A = L Lᵀ, L in the lower triangle
        for s in range(r + 1):
            v = A[r, s]
            for t in range(s):
                v -= A[r, t] * A[s, t]
            if r == s:
                if v <= 0.0:
                    return np.zeros(k, np.float32), False
                A[r, r] = np.sqrt(v)
            else:
                A[r, s] = v / A[s, s]
    for r in range(k):  # L z = b
        v = b[r]
        for t in range(r):
            v -= A[r, t] * b[t]
        b[r] = v / A[r, r]
    for r in range(k - 1, -1, -1):  # Lᵀ x = z
        v = b[r]
        for t in range(r + 1, k):
            v -= A[t, r] * b[t]
        b[r] = v / A[r, r]
    return b.astype(np.float32), True


@njit(cache=True, nogil=True)
def decayed_add(acc: np.ndarray, items: np.ndarray, weights: np.ndarray, times: np.ndarray,
                t_ref: float, inv_tau: float, limit: float, before: np.ndarray) -> int:
    """`Trending.update_many` between rescales: `acc[items[j]] += weights[j]·e^x`, x =
    (times[j] − t_ref)·inv_tau (`math.exp`, as `Trending.update` adds), in the events' order,
    up to the first event whose x exceeds `limit` (it needs a rescale first); `before[j]`: the
    accumulator of `items[j]` before any of them was added to. Returns how many were added."""
    end = items.shape[0]
    for j in range(items.shape[0]):
        if (times[j] - t_ref) * inv_tau > limit:
            end = j
            break
    for j in range(end):
        before[j] = acc[items[j]]
    for j in range(end):
        acc[items[j]] += weights[j] * math.exp((times[j] - t_ref) * inv_tau)
    return end


@njit(cache=True, nogil=True)
def last_positives(items: np.ndarray, weights: np.ndarray, seq: int, held: int, n: int
                   ) -> np.ndarray:
    """`UserHistory.positive_items`: the items of the last `n` events with weight > 0 among the
    `held` newest of a ring (event s at s % len(items); `seq` events so far), oldest first."""
    size = items.shape[0]
    out = np.empty(n, np.intp)
    found = 0
    s = seq - 1
    while s >= seq - held and found < n:
        if weights[s % size] > 0:
            out[n - 1 - found] = items[s % size]
            found += 1
        s -= 1
    return out[n - found:].copy()


def warm_up() -> None:
    """Compile (or load from numba's cache) these kernels for the dtypes the models pass."""
    from models.history import EVENT_DTYPE  # (history imports this module)

    confidences(np.zeros(2, EVENT_DTYPE), 1, 1.0, 0, 0.0, 1.0, -1, np.inf)
    model_rows(np.zeros(1, np.int32), np.ones(1, np.float32), np.zeros(1, np.intp))
    fold_in(np.ones((2, 2), np.float32), np.eye(2), np.zeros(1, np.intp), np.ones(1, np.float32),
            1.0, True)
    nbr, slot = np.full((2, 1), -1, dtype=np.int32), np.zeros(2, np.int32)
    slots_of(nbr, np.zeros(2, np.int32), slot, np.zeros(1, np.int64), np.zeros(1, np.int64))
    contributions(np.zeros(1, np.intp), np.ones(1), slot, nbr, np.zeros((2, 1)), np.ones(2))
    ring = np.zeros(2, EVENT_DTYPE)  # a history's ring: its fields are strided views
    last_positives(ring["item"], ring["weight"], 0, 0, 1)
    one = np.zeros(1)
    decayed_add(one, np.zeros(1, np.intp), one, one, 0.0, 1.0, 600.0, np.zeros(1))
