"""Candidates and blended scores for `models.similar`: the exact scan in blocks, or a graph index.

The blended score of neighbour j of item i is f_ij / max_j |f_ij| + w · s_ij / max_j s_ij, with
f the cosine of the factors and s ≥ 0 the co-visit similarity (zero for most j). Since s is zero
outside a row's co-visited columns, an item that is neither among the row's top k by cosine nor
co-visited with it cannot beat those k: every one of them scores at least its cosine part. So
the exact top k is found among (top k by cosine) ∪ (co-visited columns), which is what
`ExactBlocks` gives per block of rows: one float32 product and one partial sort per block, and no
dense co-visit rows (the full scan built two n-wide float64 rows per item). The top k by cosine
is `models.topk.topk_batch` (a sampled bound first, then an exact select of the few above it;
ties by index, as everywhere).

For a large catalog, `GraphBlocks` takes the cosine candidates from an HNSW inner-product graph
over the unit vectors (`models.ann.MipsIndex`), with the most co-visited columns (at most
`covisit_candidates` per row); max_j |f_ij| is then the largest |cosine| among the candidates and
a short search with −y_i. Scores of the candidates are exact; which candidates were found is
approximate (`tests/unit/test_similar.py` compares both paths with the full scan).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from models.ann import AnnConfig, MipsIndex
from models.candidates import with_columns
from models.topk import topk_batch

Block = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(candidates (B, C) int64 padded with -1, their cosines (B, C) float64, max |cosine| (B,))."""


class ExactBlocks:
    """Candidates of a block of rows from the full cosine scan (exact)."""

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = unit

    def block(self, rows: np.ndarray, k: int, covisited: list[np.ndarray]) -> Block:
        f = self.unit[rows] @ self.unit.T  # float32, (B, n)
        here = np.arange(len(rows))
        f[here, rows] = 0.0
        f_max = np.abs(f).max(axis=1).astype(np.float64)
        f[here, rows] = -np.inf
        top, _ = topk_batch(f, k)
        cands = with_columns(top, covisited)
        cos = np.take_along_axis(f, np.maximum(cands, 0), axis=1).astype(np.float64)
        return cands, cos, f_max


@dataclass
class GraphBlocks:
    """Candidates of a block of rows from an HNSW graph over the unit vectors (approximate)."""

    unit: np.ndarray
    config: AnnConfig
    covisit_candidates: int = 100

    def __post_init__(self) -> None:
        self.index = MipsIndex(self.unit, self.config)

    def block(self, rows: np.ndarray, k: int, covisited: list[np.ndarray]) -> Block:
        q = self.unit[rows]
        found = self.index.search(q, k + 1)
        cands = with_columns(found, covisited)
        safe = np.maximum(cands, 0)
        cos = np.einsum("bcd,bd->bc", self.unit[safe], q).astype(np.float64)
        away = self.index.search(-q, 4, ef=16)  # the most negative cosines, for max |f|
        cos_away = np.einsum("bcd,bd->bc", self.unit[np.maximum(away, 0)], q)
        absolute = np.hstack([np.where((cands >= 0) & (cands != rows[:, None]), np.abs(cos), 0),
                              np.where((away >= 0) & (away != rows[:, None]),
                                       np.abs(cos_away), 0)])
        return cands, cos, absolute.max(axis=1)

    def covisited(self, S: sp.csr_matrix) -> list[np.ndarray]:
        """Each row's co-visited columns, the `covisit_candidates` strongest."""
        out = []
        for r in range(S.shape[0]):
            cols = S.indices[S.indptr[r]:S.indptr[r + 1]]
            if len(cols) > self.covisit_candidates:
                vals = S.data[S.indptr[r]:S.indptr[r + 1]]
                cols = cols[np.argpartition(-vals, self.covisit_candidates - 1)
                            [: self.covisit_candidates]]
            out.append(cols)
        return out


def covisited_columns(S: sp.csr_matrix) -> list[np.ndarray]:
    """Each row's co-visited columns (all of them)."""
    return [S.indices[S.indptr[r]:S.indptr[r + 1]] for r in range(S.shape[0])]


def blended_top(rows: np.ndarray, block: Block, S: sp.csr_matrix | None, weight: float,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """The `k` best candidates per row by blended score (ties by index): (indices int32,
    scores float32), padded with -1 / NaN."""
    cands, cos, f_max = block
    score = cos / np.where(f_max > 0, f_max, 1.0)[:, None]
    if S is not None and weight > 0:
        r = np.repeat(np.arange(len(rows)), cands.shape[1])
        s = np.asarray(S[r, np.maximum(cands, 0).ravel()]).reshape(cands.shape)
        s_max = S.max(axis=1).toarray().ravel()
        score += weight * s / np.where(s_max > 0, s_max, 1.0)[:, None]
    score[(cands < 0) | (cands == rows[:, None])] = -np.inf
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]  # candidates are sorted by index
    top, val = np.take_along_axis(cands, order, 1), np.take_along_axis(score, order, 1)
    idx = np.full((len(rows), k), -1, dtype=np.int32)
    out = np.full((len(rows), k), np.nan, dtype=np.float32)
    ok = np.isfinite(val)
    idx[:, : top.shape[1]] = np.where(ok, top, -1)
    out[:, : top.shape[1]] = np.where(ok, val, np.nan)
    return idx, out
