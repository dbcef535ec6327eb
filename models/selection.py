"""Compiled selection of one list (numba): the best K of a score array with a heap, a lone
user's CF scores blended with their session's and selected in one pass, and several ranked
lists blended by their truncated ranks.

The batched paths stay in numpy (`models.topk.topk_batch`, `models.covisit.blend`): over a
micro-batch their per-call overhead is shared; for one list each is dozens of small numpy calls
where these are one pass. `tests/unit/test_kernels.py` checks each against the numpy code, to
the bit. Ties always break by ascending index.

>>> cf = np.array([0.5, 2.0, 0.5, 2.0, 0.5], dtype=np.float32)
>>> none = np.zeros(0, np.intp)
>>> idx, val = blend_topk(cf, np.array([1]), none, np.zeros(0), 1.0, 3)
>>> idx.tolist(), val.tolist()
([3, 0, 2], [2.0, 0.5, 0.5])
>>> idx, val = blend_topk(cf, np.array([1]), np.array([4]), np.array([0.3]), 1.0, 3)
>>> idx.tolist(), val.tolist()     # item 4's session score lifts it to the top
([4, 3, 0], [1.25, 1.0, 0.25])
>>> select_topk(np.array([1.0, 3.0, np.nan, 3.0]), 2, np.zeros(0, np.bool_)).tolist()
[1, 3]
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _worse(va: float, ia: int, vb: float, ib: int) -> bool:
    """(va, ia) ranks below (vb, ib): a lower score, or the same score at a higher index."""
    return va < vb or (va == vb and ia > ib)


@njit(cache=True, nogil=True)
def _sift_down(hv: np.ndarray, hi: np.ndarray, p: int, m: int) -> None:
    v, i = hv[p], hi[p]
    while True:
        c = 2 * p + 1
        if c >= m:
            break
        if c + 1 < m and _worse(hv[c + 1], hi[c + 1], hv[c], hi[c]):
            c += 1
        if not _worse(hv[c], hi[c], v, i):
            break
        hv[p], hi[p] = hv[c], hi[c]
        p = c
    hv[p], hi[p] = v, i


@njit(cache=True, nogil=True)
def _heap_select(s: np.ndarray, k: int, stride: int, floor: float, hidden: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """The best `k` of s[::stride] at least `floor` and not `hidden` (a mask, or empty: none)
    in a heap whose root is the worst kept."""
    hv = np.empty(k, np.float64)
    hi = np.empty(k, np.int64)
    m = 0
    masked = hidden.shape[0] > 0
    for i in range(0, s.shape[0], stride):
        v = float(s[i])
        if not v >= floor or v == -np.inf:  # NaN, below the floor, or never ranked
            continue
        if masked and hidden[i]:
            continue
        if m < k:
            p = m
            m += 1
            while p > 0 and _worse(v, i, hv[(p - 1) >> 1], hi[(p - 1) >> 1]):
                hv[p], hi[p] = hv[(p - 1) >> 1], hi[(p - 1) >> 1]
                p = (p - 1) >> 1
            hv[p], hi[p] = v, i
        elif v > hv[0]:  # a later index never beats an equal score
            hv[0], hi[0] = v, i
            _sift_down(hv, hi, 0, m)
    return hv, hi, m


@njit(cache=True, nogil=True)
def select_topk(s: np.ndarray, k: int, hidden: np.ndarray) -> np.ndarray:
    """Indices of the best `k` finite scores of `s` not `hidden` (a boolean mask over `s`, or
    empty: none hidden), best first, ties by ascending index.

    One pass with a heap of K (O(n log K)): unlike `np.partition`, it does not slow down on
    heavily tied scores (popularity counts, category affinities) or on mostly -inf ones. The
    K-th best of every 8th score bounds the K-th best from below, so the full pass skips the
    scores under it (an ascending array would otherwise enter the heap one score at a time).
    """
    if k <= 0:
        return np.zeros(0, np.int64)
    floor = -np.inf
    if s.shape[0] >= 16 * k:
        hv, _, m = _heap_select(s, k, 8, -np.inf, hidden)
        if m == k:
            floor = hv[0]
    hv, hi, m = _heap_select(s, k, 1, floor, hidden)
    for end in range(m - 1, 0, -1):  # heap sort: the worst kept goes to the end, in turn
        hv[0], hv[end] = hv[end], hv[0]
        hi[0], hi[end] = hi[end], hi[0]
        _sift_down(hv, hi, 0, end)
    return hi[:m]


@njit(cache=True, nogil=True)
def blend_topk(
    cf: np.ndarray, exclude: np.ndarray, cols: np.ndarray, terms: np.ndarray, weight: float,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`topk(covisit.blend(cf, cols, terms, weight, exclude), k, exclude)` compiled: one pass
    over the items blends, `select_topk`'s heap selects (an insertion into the best k cost
    O(n·k) at the blend's depth of 200: 38 against 16 µs at 1,200 items).

    (`cols`, `terms`) are session scores as `CoVisits.contributions` gives them (empty: no
    blend). Returns (indices int64, scores float64), best first, ties by ascending index;
    excluded and non-finite scores never appear, so a list can be shorter than `k`.
    """
    n = cf.shape[0]
    hidden = np.zeros(n, np.bool_)
    for j in range(exclude.shape[0]):
        hidden[exclude[j]] = True
    session = weight != 0 and cols.shape[0] > 0
    s = np.zeros(n if session else 0)
    if session:
        for j in range(cols.shape[0]):  # in order, as np.bincount sums
            s[cols[j]] += terms[j]
    s_max = 0.0
    f_max = 0.0
    for i in range(n):
        if hidden[i] or not np.isfinite(cf[i]):
            hidden[i] = True
        elif session:
            s_max = max(s_max, s[i])
            f_max = max(f_max, abs(cf[i]))
    blended = s_max > 0
    scale = weight / s_max if blended else 0.0
    f_top = cf.dtype.type(f_max)
    vals = np.full(n, -np.inf)  # (-inf: never selected)
    for i in range(n):
        if hidden[i]:
            continue
        v = float(cf[i])
        if blended:
            v = s[i] * scale + (float(cf[i] / f_top) if f_max > 0 else v)
        vals[i] = v
    top = select_topk(vals, k, np.zeros(0, np.bool_))  # a heap: O(n log k), ties by index
    return top, vals[top]


@njit(cache=True, nogil=True)
def blend_ranks(items: np.ndarray, ends: np.ndarray, weights: np.ndarray, k: int, depth: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """`coldstart.blend_ranks` of lists concatenated in `items` (list j ends at `ends[j]`, its
    weight `weights[j]`): each distinct item's gains w·(depth − r)/depth summed in the lists'
    order, the best `k` of them (ties by item), as `np.unique` + `np.bincount` + `topk` give."""
    gains = np.empty(items.shape[0])
    start = 0
    for j in range(ends.shape[0]):
        for r in range(ends[j] - start):
            gains[start + r] = weights[j] * float(depth - r) / float(depth)
        start = ends[j]
    n = items.shape[0]
    # sorted by (item, place): an item's gains stay in the lists' order (a stable argsort, at
    # half the cost of numba's mergesort)
    order = np.sort(items * n + np.arange(n)) % n
    distinct = np.empty(n, np.int64)
    blended = np.zeros(n)
    m = -1
    for o in order:
        if m < 0 or items[o] != distinct[m]:
            m += 1
            distinct[m] = items[o]
        blended[m] += gains[o]
    blended = blended[: m + 1]
    sel = select_topk(blended, k, np.zeros(0, np.bool_))
    return distinct[sel], blended[sel]


def warm_up() -> None:
    """Compile (or load from numba's cache) these kernels for the dtypes the models pass."""
    none, one = np.zeros(0, np.int64), np.ones(1)
    for cf in (np.zeros(2, np.float32), np.zeros(2, np.float64)):
        blend_topk(cf, none, np.zeros(1, np.intp), one, 1.0, 1)
        select_topk(cf, 1, np.zeros(0, np.bool_))
        select_topk(cf, 1, np.zeros(2, np.bool_))
    blend_ranks(np.zeros(1, np.int64), np.ones(1, np.int64), one, 1, 1)
