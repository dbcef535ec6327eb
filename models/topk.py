"""Exact top-K with exclusions, in the order score descending, then index ascending.

One row (`topk`) is one compiled pass with a heap of K (`models.selection.select_topk`): ties
are broken by index as the heap orders them, and heavily tied or mostly -inf scores (popularity
counts, category affinities, excluded items) cost no more than distinct ones, where
`np.partition` slows down 10-100x on them (numpy 2.4: 5,000 scores of which 90% are zero, top
200: ~0.5 ms against ~13 µs). Rows of a batch (`topk_batch`) stay in numpy, two-stage so that
ties never make the result depend on numpy's partition order: `np.partition` finds the K-th best
score t, every score above t is taken, and the ties at t are filled in by ascending index. With
at least 32·K scores a row is first narrowed with a sample: the K-th best of every 8th score is a
lower bound on the K-th best, so only the ~8·K scores above it go through the exact select
(~15 µs a row at 10K items, against ~25 µs for a row-wise argpartition and ~45 µs for
implicit's own compiled top-K per query).

Excluded items (a boolean mask or an index array) and scores of -inf are never returned, so a
result can be shorter than K. Scores must not be NaN.

>>> s = np.array([0.5, 2.0, 0.5, 2.0, 0.5], dtype=np.float32)
>>> topk(s, 3)[0].tolist(), topk(s, 3, exclude=np.array([1]))[0].tolist()
([1, 3, 0], [3, 0, 2])
>>> idx, val = topk_batch(np.stack([s, -s]), 2)
>>> idx.tolist(), val.tolist()
([[1, 3], [0, 2]], [[2.0, 2.0], [-0.5, -0.5]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.selection import select_topk

Exclude = np.ndarray | Sequence[int] | None
SAMPLE_STRIDE = 8
_NONE = np.zeros(0, dtype=np.bool_)


def topk(
    scores: np.ndarray, k: int, exclude: Exclude = None, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` (indices int64, scores) of a 1-D array.

    `exclude` is a boolean mask or indices over `scores`; `candidates` (sorted, unique indices)
    restricts the selection to a subset, e.g. items that have a vector.
    """
    s = np.asarray(scores)
    hidden = _hidden(exclude, s.shape[0])
    if candidates is not None:
        idx, val = topk(s[candidates], k, hidden[candidates] if len(hidden) else None)
        return candidates[idx].astype(np.int64), val
    idx = select_topk(s, min(int(k), s.shape[0]), hidden)
    return idx, s[idx]


def topk_of_support(
    scores: np.ndarray, support: np.ndarray, k: int, exclude: Exclude = None
) -> tuple[np.ndarray, np.ndarray]:
    """`topk(scores, k, exclude)` when every score outside `support` (sorted indices; some may
    be past `scores`) is 0, as with popularity counts: the `k` best of `support` are the
    answer when the K-th of them is above 0 (no other item can tie or beat it), so the pass
    runs over the support, not over every item; otherwise over every item.

    >>> s = np.zeros(10); s[[2, 7]] = [1.0, 3.0]
    >>> topk_of_support(s, np.array([2, 7]), 2)[0].tolist()   # from the support alone
    [7, 2]
    >>> topk_of_support(s, np.array([2, 7]), 3)[0].tolist()   # a 0 must fill: every item
    [7, 2, 0]
    """
    n = len(scores)
    support = support[: np.searchsorted(support, n)]
    hidden = _hidden(exclude, n)
    if len(support) >= k > 0:
        idx, val = topk(scores[support], k, hidden[support] if len(hidden) else None)
        if len(idx) == k and val[-1] > 0:
            return support[idx], val
    return topk(scores, k, hidden)


def _hidden(exclude: Exclude, n: int) -> np.ndarray:
    """`exclude` as a boolean mask over n scores (indices become one: a byte an item, not a
    copy of the scores); empty when nothing is excluded."""
    if exclude is None or not len(exclude):
        return _NONE
    hidden = np.asarray(exclude)
    if hidden.dtype != np.bool_:
        hidden = np.zeros(n, dtype=np.bool_)
        hidden[np.asarray(exclude)] = True
    elif hidden.shape != (n,):
        raise IndexError(f"exclusion mask of shape {hidden.shape} for {n} scores")
    return hidden


def topk_batch(
    scores: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None = None,
    exclude_all: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise `topk` of a (B, N) matrix, which it may overwrite with -inf at exclusions.

    `exclude[b]` are the indices excluded for row b, `exclude_all` a mask or indices excluded for
    every row. Returns (indices (B, k) int64, scores (B, k)); a row with fewer than k candidates is
    padded with index -1 and score -inf. Feed it chunks of ~100 rows: larger temporaries cost
    more in page faults than they save.
    """
    B, n = scores.shape
    if exclude_all is not None:
        scores[:, exclude_all] = -np.inf
    if exclude is not None:
        rows = np.repeat(np.arange(B), [len(e) for e in exclude])
        if len(rows):
            scores[rows, np.concatenate(exclude).astype(np.intp)] = -np.inf
    k = min(int(k), n)
    if k <= 0 or B == 0:
        return np.zeros((B, max(k, 0)), dtype=np.int64), np.zeros((B, max(k, 0)), scores.dtype)
    if B == 1:  # fewer numpy calls than the row-wise machinery
        idx, val = _padded(*topk(scores[0], k), k)
        return idx[None].astype(np.int64), val[None]
    if n >= SAMPLE_STRIDE * 4 * k:
        return _topk_sampled(scores, k)
    return _topk_rows(scores, k, np.broadcast_to(np.arange(n), (B, n)))


def _topk_sampled(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The K-th best of every `SAMPLE_STRIDE`-th score is a lower bound t0 on the K-th best, so
    the scores >= t0 (about K·stride of them) contain the top K: select among those only."""
    B, n = scores.shape
    t0 = _sample_bound(scores, k)[:, None]
    flat = np.flatnonzero(scores >= t0)
    if len(flat) > B * n // 4:  # heavy ties or exclusions: the sample did not narrow it down
        return _topk_rows(scores, k, np.broadcast_to(np.arange(n), (B, n)))
    row = flat // n
    counts = np.bincount(row, minlength=B)
    slot = np.arange(len(flat)) - np.repeat(np.cumsum(counts) - counts, counts)
    vals = np.full((B, int(counts.max())), -np.inf, dtype=scores.dtype)
    cols = np.full(vals.shape, -1, dtype=np.intp)
    vals[row, slot], cols[row, slot] = scores.ravel()[flat], flat - row * n
    return _topk_rows(vals, k, cols)


def _sample_bound(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row (last axis), the K-th best of every `SAMPLE_STRIDE`-th score: a lower bound on the
    row's K-th best score."""
    sample = scores[..., ::SAMPLE_STRIDE]
    m = sample.shape[-1]
    return np.partition(sample, m - k, axis=-1)[..., m - k]


def _topk_rows(
    scores: np.ndarray, k: int, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact row-wise top-K of `scores` whose columns are item indices `cols` (ascending per row,
    -1 for padding)."""
    B, n = scores.shape
    if k < n:
        at_least = scores >= np.partition(scores, n - k, axis=1)[:, n - k : n - k + 1]
        # A row is done unless the ties at its threshold spill over the K slots.
        spill = np.count_nonzero(at_least, axis=1) > k
        at_least[spill] = False
        pos = np.full((B, k), -1, dtype=np.intp)
        pos[~spill] = (np.flatnonzero(at_least) % n).reshape(-1, k)
        for r in np.flatnonzero(spill):
            pos[r] = _padded(*topk(scores[r], k), k)[0]
    else:
        pos = np.broadcast_to(np.arange(n), (B, n)).copy()
    val = np.take_along_axis(scores, pos, 1)
    idx = np.take_along_axis(cols, pos, 1)
    val[(pos < 0) | (idx < 0)] = -np.inf
    order = np.lexsort((idx, -val), axis=1)
    idx, val = np.take_along_axis(idx, order, 1), np.take_along_axis(val, order, 1)
    idx[val == -np.inf] = -1
    return idx.astype(np.int64), val


def _padded(idx: np.ndarray, val: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad a result to length k with index -1 and score -inf (np.pad costs ~20 µs a call)."""
    out_idx, out_val = np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=val.dtype)
    out_idx[: len(idx)], out_val[: len(val)] = idx, val
    return out_idx, out_val
