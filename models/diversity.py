"""Diversity as a knob: a maximal-marginal-relevance re-rank of a user's best candidates.

From the `depth` best candidates by relevance, the list is built greedily: the next item is

    argmax_i  (1 − λ) · r_i − λ · max_{j already chosen} sim(i, j)

where r is the relevance scaled to [0, 1] over the candidates (min-max) and sim the cosine of
the items' feature rows: their category indicators (so sim is the share of categories two
items have in common, scaled by their counts) or their factor vectors. λ = `strength` in [0, 1]:
0 keeps the relevance order exactly, 1 picks by dissimilarity alone after the first item.
Cost: O(depth · k) after one depth × depth similarity product (depth 50, k 20: ~30 µs).

>>> rel = np.array([1.0, 0.9, 0.8, 0.1])
>>> cats = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=float)   # three of a kind
>>> mmr(rel, cats, k=3, strength=0.0).tolist()
[0, 1, 2]
>>> mmr(rel, cats, k=3, strength=0.5).tolist()
[0, 3, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from models.errors import ModelError


def mmr(
    relevance: np.ndarray, features: np.ndarray | sp.spmatrix, k: int, strength: float
) -> np.ndarray:
    """Positions (into `relevance`) of the re-ranked top `k`; `features` has a row per
    candidate (zero rows are similar to nothing)."""
    if not 0 <= strength <= 1:
        raise ModelError("strength must be in [0, 1]")
    rel = np.asarray(relevance, dtype=np.float64)
    n = len(rel)
    k = min(k, n)
    if strength == 0 or n <= 1:
        return np.argsort(-rel, kind="stable")[:k]
    if features.shape[0] != n:
        raise ModelError(f"features has {features.shape[0]} rows for {n} candidates")
    spread = rel.max() - rel.min()
    r = (rel - rel.min()) / spread if spread > 0 else np.ones(n)
    sim = cosine_matrix(features)
    chosen = np.zeros(k, dtype=np.int64)
    closest = np.full(n, -np.inf)  # max similarity to the chosen items
    free = np.ones(n, dtype=bool)
    for step in range(k):
        gain = (1 - strength) * r - strength * np.maximum(closest, 0.0) if step else r.copy()
        gain[~free] = -np.inf
        best = int(np.argmax(gain))  # ties: the earlier (more relevant, if sorted) candidate
        chosen[step] = best
        free[best] = False
        closest = np.maximum(closest, sim[best])
    return chosen


def cosine_matrix(features: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Dense cosine similarity of the rows of `features` (0 for zero rows)."""
    if sp.issparse(features):
        X = sp.csr_matrix(features, dtype=np.float64)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        G = (X @ X.T).toarray()
    else:
        X = np.asarray(features, dtype=np.float64)
        norms = np.linalg.norm(X, axis=1)
        G = X @ X.T
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return G * inv[:, None] * inv[None, :]


def category_rows(categories: Sequence[Sequence[str]]) -> sp.csr_matrix:
    """Indicator rows of the candidates' category lists (columns in order of first sight)."""
    cols: dict[str, int] = {}
    indptr, indices = [0], []
    for cats in categories:
        indices.extend(sorted({cols.setdefault(c, len(cols)) for c in cats}))
        indptr.append(len(indices))
    data = np.ones(len(indices))
    return sp.csr_matrix((data, indices, indptr), shape=(len(categories), max(len(cols), 1)))


def categories_per_list(categories: Sequence[Sequence[str]]) -> int:
    """Distinct categories of one list (the gain the re-rank is measured by)."""
    return len({c for cats in categories for c in cats})
