"""Similar items: each item's nearest neighbours by its factors, blended with session co-visits.

Two signals, each normalised to a top score of 1 per item, then added:

- **factors**: the cosine of the item vectors, cos(y_i, y_j) (what the users who liked i and j have
  in common, as the last refit learned it);
- **co-visits**: items touched close together by the same user. Each user's positive interactions
  are put in time order; item j at `g` positions after item i adds `decay`^(g−1) to C[i, j] and to
  C[j, i] (g ≤ `window`), and n_i counts the users with a positive interaction with i. The
  similarity is the cosine-normalised count C[i, j] / sqrt(n_i · n_j), as in `models.covisit`.

An item's blended score of j is f_ij / max_j |f_ij| + `weight` · s_ij / max_j s_ij (the blend
`models.covisit.blend` applies to a user's scores; an item without co-visits keeps its factor
cosines). Each item keeps its `k` best neighbours (never itself), ties broken by index.

On ml-100k (ALS with the fold-in's settings, co-visits of ratings of 4 and 5 in time order), the
top-10 neighbours of the 603 films with at least 50 ratings share a genre with the film for 70%
of neighbours from the factors alone, 65% from co-visits alone, and 71.5% blended with weight
0.5 (the default), against 34% for random pairs (`tests/unit/test_similar.py`).

The exact path scans all pairs: n² · factors multiply-adds in blocks of `chunk` rows, one
partial sort per block, the co-visits read sparse (`models.similar_search.ExactBlocks`). From
`AnnConfig.min_items` items (when an `ann` config is given) the cosine candidates come from a
graph index instead (`GraphBlocks`); every candidate's score is still exact.

>>> Y = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
>>> idx, val = similar_items(Y, k=1)
>>> idx[:, 0].tolist()
[1, 0, 3, 2]
>>> C, n = covisit_counts(np.array([0, 0, 1, 1]), np.array([0, 2, 0, 2]),
...                       np.array([1.0, 2.0, 1.0, 2.0]), n_items=4)
>>> C.toarray()[0].tolist(), n.tolist()   # two users touched 0 then 2
([0.0, 0.0, 2.0, 0.0], [2.0, 0.0, 2.0, 0.0])
>>> idx, val = similar_items(Y, C, n, k=1, weight=3.0)
>>> idx[:, 0].tolist()                    # 0 and 2 are now each other's nearest
[2, 0, 0, 2]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from models.ann import AnnConfig
from models.errors import ModelError
from models.similar_search import ExactBlocks, GraphBlocks, blended_top, covisited_columns


def covisit_counts(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, n_items: int,
    window: int = 10, decay: float = 0.8,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Symmetric co-visit counts C (items × items, float64 CSR, zero diagonal) and n (positive
    interactions per item) from positive interactions (user, item, time), in any order."""
    if window < 1 or not 0 < decay <= 1:
        raise ModelError("window must be >= 1 and decay in (0, 1]")
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    times = np.asarray(times, np.float64)
    if not len(users) == len(items) == len(times):
        raise ModelError("users, items and times must have the same length")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise ModelError(f"item indices must be in [0, {n_items})")
    order = np.lexsort((items, times, users))  # per user, in time order (ties by item)
    users, items = users[order], items[order]
    rows, cols, gains = [], [], []
    for g in range(1, min(window, max(len(users) - 1, 0)) + 1):
        same = users[g:] == users[:-g]
        rows.append(items[:-g][same])
        cols.append(items[g:][same])
        gains.append(np.full(int(same.sum()), decay ** (g - 1)))
    n = np.bincount(items, minlength=n_items).astype(np.float64)
    if not rows:
        return sp.csr_matrix((n_items, n_items)), n
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(gains)
    keep = r != c
    upper = sp.coo_matrix((w[keep], (r[keep], c[keep])), shape=(n_items, n_items)).tocsr()
    return (upper + upper.T).tocsr(), n


def similar_items(
    Y: np.ndarray, covisits: sp.csr_matrix | None = None, counts: np.ndarray | None = None,
    k: int = 20, weight: float = 0.5, chunk: int = 512, ann: AnnConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's `k` nearest neighbours: (indices int32, blended scores float32), both n × k,
    best first; rows with fewer candidates are padded with index -1 and score NaN. From
    `ann.min_items` items (when `ann` is given) the cosine candidates come from a graph index
    (`models.similar_search.GraphBlocks`), else from the exact scan in blocks of `chunk` rows."""
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim != 2 or not np.isfinite(Y).all():
        raise ModelError(f"item factors must be a finite 2-d array, got shape {Y.shape}")
    n = len(Y)
    if k < 1:
        raise ModelError("k must be >= 1")
    norms = np.linalg.norm(Y, axis=1)
    unit = np.ascontiguousarray(Y / np.where(norms > 0, norms, 1.0)[:, None], dtype=np.float32)
    session = None
    if covisits is not None and weight > 0:
        if covisits.shape != (n, n) or counts is None or len(counts) != n:
            raise ModelError(f"co-visits must be {n} × {n} with {n} counts")
        inv = 1.0 / np.sqrt(np.maximum(np.asarray(counts, np.float64), 1.0))
        session = sp.diags(inv) @ covisits @ sp.diags(inv)
        session = session.tocsr()
    kk = min(k, n)
    idx = np.full((n, kk), -1, dtype=np.int32)
    val = np.full(idx.shape, np.nan, dtype=np.float32)
    graph = ann is not None and ann.enabled_for(n)
    search = GraphBlocks(unit, ann) if graph else ExactBlocks(unit)  # type: ignore[arg-type]
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        S = session[rows] if session is not None else None
        if S is None:
            covisited: list[np.ndarray] = []
        elif isinstance(search, GraphBlocks):
            covisited = search.covisited(S)
        else:
            covisited = covisited_columns(S)
        block = search.block(rows, kk, covisited)
        idx[rows], val[rows] = blended_top(rows, block, S, weight, kk)
    return idx, val


def named(
    item_ids: Sequence[str], idx: np.ndarray, val: np.ndarray
) -> Iterator[tuple[str, list[tuple[str, float]]]]:
    """(item id, [(neighbour id, score), ...]) per item, the padding left out.

    >>> list(named(["a", "b"], np.array([[1], [-1]]), np.array([[0.5], [np.nan]])))
    [('a', [('b', 0.5)]), ('b', [])]
    """
    for i, item in enumerate(item_ids):
        row = idx[i]
        yield item, [(item_ids[j], float(s)) for j, s in zip(row.tolist(), val[i].tolist(),
                                                               strict=True) if j >= 0]
