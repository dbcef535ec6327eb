"""Approximate maximum-inner-product retrieval over item vectors: candidates for exact re-scoring.

A user's list is the top K of x·y over the catalog. For a large catalog `MipsIndex` proposes a few
hundred candidates and `models.candidates` scores them exactly, so only the retrieval is
approximate. The index is a graph (HNSW, faiss's `IndexHNSWFlat`) whose similarity is the inner
product itself, the index type that returns maximum-inner-product neighbours directly. The other
way, the Euclidean reduction (append sqrt(M² − |y|²) to every item, 0 to the query, then nearest
neighbours are exactly the largest inner products), keeps the order exact but the graph, built on
points crowded near one pole of the sphere, navigates badly: measured by
`python -m refold.bench.ann_choice`, it found 13% of the top 20 where the inner-product graph
found 96% (100K items of ALS-like norms, 100 candidates). The same benchmark chose faiss: on 300K
such items, at recall 0.96 all three libraries needed the same beam (384); faiss built in 37 CPU s
(hnswlib 50, usearch 67) and answered in 0.57 ms per user alone, 0.44 ms in a batch (hnswlib
0.48 / 0.45, usearch 1.06 / 0.85), where the exact scan takes 7.4 ms.

Labels are the caller's item indices (e.g. catalog indices); the graph holds rows of the matrix it
was built from, mapped to labels by `labels` (settable: items placed after the build). An item
that gets a vector after the build (`add`) is searchable at once: it waits in `pending`, which
`candidates` returns along with the graph's answer (the caller scores them exactly), and `drain`
moves a bounded number of pending items into the graph between batches. An item added again keeps
one label; its earlier graph entry may still propose it, which exact re-scoring makes harmless.

>>> Y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]] * np.array([1, 2, 3, 4, 5])[:, None]
>>> ix = MipsIndex(Y.astype(np.float32), AnnConfig(candidates=2))
>>> ix.search(np.array([[1.0, 0, 0, 0.5]], dtype=np.float32), 2).tolist()
[[4, 3]]
>>> ix.add([7]); ix.candidates(np.ones((1, 4), np.float32), 1).tolist()
[[4, 7]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models import defaults
from models.candidates import with_columns
from models.errors import ModelError


@dataclass(frozen=True)
class AnnConfig:
    """When the index is used and how it is built and searched."""

    min_items: int = 200_000
    """Catalog size from which ranking retrieves candidates instead of scanning every item."""
    candidates: int = 100
    """Items fetched per user before exact re-scoring (plus the user's excluded items)."""
    connectivity: int = 32
    """Graph degree (HNSW M): more is better recall, more memory and a slower build. On 300K
    ALS-like items, M = 32 reached recall 0.96 at a beam of 128 in 0.24 ms a user where M = 16
    needed 384 and 0.43 ms (the build took 1.9x as long)."""
    ef_construction: int = defaults.ANN_EF_CONSTRUCTION
    ef_search: int = defaults.ANN_EF_SEARCH
    """Search beam: at least `candidates`; more is better recall and a slower search."""
    build_threads: int = 1
    drain_items: int = 256
    """Pending items moved into the graph per `drain` (bounds the work between batches)."""

    def __post_init__(self) -> None:
        small = {name: value for name, value in vars(self).items()
                 if name != "min_items" and value < 1}
        if small:
            raise ModelError(f"index settings must be at least 1: {small}")

    def enabled_for(self, n_items: int) -> bool:
        return n_items >= self.min_items


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ModelError("approximate retrieval needs faiss: pip install 'refold[ann]'") from exc
    return faiss


class MipsIndex:
    """An inner-product HNSW graph over item vectors (see the module docstring)."""

    def __init__(self, vectors: np.ndarray, config: AnnConfig | None = None,
                 labels: np.ndarray | None = None) -> None:
        """Build the graph over the rows of `vectors` (labels default to the row numbers); this
        takes seconds to minutes, so build off the processing thread."""
        faiss = _faiss()
        self.config = config or AnnConfig()
        V = np.ascontiguousarray(vectors, dtype=np.float32)
        if V.ndim != 2 or not np.isfinite(V).all():
            raise ModelError(f"item vectors must be a finite 2-D array, got shape {V.shape}")
        self.labels = np.arange(len(V), dtype=np.int64) if labels is None else \
            np.array(labels, dtype=np.int64)
        if len(self.labels) != len(V):
            raise ModelError(f"{len(self.labels)} labels for {len(V)} vectors")
        self._graph = faiss.IndexHNSWFlat(V.shape[1], self.config.connectivity,
                                          faiss.METRIC_INNER_PRODUCT)
        self._graph.hnsw.efConstruction = self.config.ef_construction
        # OpenMP's thread count is per calling thread: the processing thread keeps its own.
        faiss.omp_set_num_threads(self.config.build_threads)
        self._graph.add(V)
        self._params = faiss.SearchParametersHNSW(efSearch=self.config.ef_search)
        self._pending: dict[int, None] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (and so `copy.deepcopy`-able): the graph as faiss serializes it, so that
        a copy costs a read of the graph, not a build."""
        return {"config": self.config, "labels": self.labels, "pending": self._pending,
                "graph": _faiss().serialize_index(self._graph)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        faiss = _faiss()
        self.config, self.labels = state["config"], np.array(state["labels"], dtype=np.int64)
        self._pending = dict(state["pending"])
        self._graph = faiss.deserialize_index(state["graph"])
        self._params = faiss.SearchParametersHNSW(efSearch=self.config.ef_search)

    @property
    def dim(self) -> int:
        return int(self._graph.d)

    def __len__(self) -> int:
        return int(self._graph.ntotal)

    @property
    def pending(self) -> np.ndarray:
        """Labels added since the build that are not in the graph yet (sorted)."""
        return np.array(sorted(self._pending), dtype=np.int64)

    def add(self, labels: Any) -> None:
        """Make items searchable at once: `candidates` returns them until `drain` puts them in
        the graph (with their vectors as of then)."""
        for label in np.asarray(labels, dtype=np.int64).tolist():
            self._pending[label] = None

    def drain(self, vectors: np.ndarray, limit: int | None = None) -> int:
        """Move up to `limit` (default `drain_items`) pending items into the graph, with their
        rows of `vectors` (indexed by label); returns how many moved."""
        limit = self.config.drain_items if limit is None else limit
        take = list(self._pending)[:limit]
        if not take:
            return 0
        V = np.ascontiguousarray(vectors[take], dtype=np.float32)
        self._graph.add(V)
        self.labels = np.concatenate([self.labels, np.array(take, dtype=np.int64)])
        for label in take:
            del self._pending[label]
        return len(take)

    def search(self, X: np.ndarray, n: int, ef: int | None = None) -> np.ndarray:
        """The graph's best `n` labels per row of `X` (B, dim), -1 where it has fewer; `ef` the
        beam (default `ef_search`; at least `n`)."""
        X = np.ascontiguousarray(np.atleast_2d(X), dtype=np.float32)
        if X.shape[1] != self.dim:
            raise ModelError(f"queries have {X.shape[1]} dimensions, the index {self.dim}")
        n = max(1, min(int(n), len(self)))
        params = self._params
        beam = self.config.ef_search if ef is None else ef
        if n > beam or beam != self.config.ef_search:  # the beam must hold the answer
            params = _faiss().SearchParametersHNSW(efSearch=max(n, beam))
        _, pos = self._graph.search(X, n, params=params)
        return np.where(pos >= 0, self.labels[np.maximum(pos, 0)], -1)

    def candidates(self, X: np.ndarray, n: int | np.ndarray,
                   extra: list[np.ndarray | None] | None = None) -> np.ndarray:
        """`search` plus the pending items and each row's `extra` (e.g. its session's items):
        sorted, unique, -1 padded (`models.candidates.with_columns`). `n` may differ per row:
        rows are searched in groups of similar `n` (one user with many excluded items should not
        widen everyone's search)."""
        X = np.ascontiguousarray(np.atleast_2d(X), dtype=np.float32)
        need = np.broadcast_to(np.asarray(n, dtype=np.int64), (len(X),))
        group = np.ceil(np.log2(np.maximum(need, 1) / need.min(initial=1)) * 2).astype(int)
        parts = {g: np.flatnonzero(group == g) for g in np.unique(group).tolist()}
        found = np.full((len(X), int(need.max(initial=1))), -1, dtype=np.int64)
        for rows in parts.values():
            got = self.search(X[rows], int(need[rows].max()))
            found[rows, : got.shape[1]] = got
        pending = self.pending
        extra = extra if extra is not None else [None] * len(found)
        merged = [pending if e is None else np.concatenate([pending, e]) for e in extra]
        return with_columns(found, merged)

    def score_range(self, X: np.ndarray, vectors: np.ndarray, hidden: np.ndarray | None = None,
                    exclude: list[np.ndarray] | None = None, n: int = 8,
                    found: np.ndarray | None = None) -> np.ndarray:
        """Per row, max |x·y| over shown items (approximately: the best of x and of −x, and the
        pending items), the session blend's f_max. `vectors` are indexed by label; `hidden` (a
        mask) and each row's `exclude` (labels) are not shown. `found`: what `candidates`
        retrieved for `X` (a wider beam than `n`): then only −x is searched."""
        X = np.atleast_2d(X).astype(np.float32)
        n += max(map(len, exclude), default=0) if exclude is not None else 0
        plus = self.search(X, n) if found is None else found  # x's best are retrieved already
        cands = with_columns(np.hstack([plus, self.search(-X, n)]), [self.pending] * len(X))
        safe = np.maximum(cands, 0)
        S = np.abs(np.einsum("bck,bk->bc", vectors[safe], X))
        S[cands < 0] = 0.0
        if hidden is not None:
            S[(cands >= 0) & hidden[safe]] = 0.0
        for r, ex in enumerate(exclude or []):
            S[r, np.isin(cands[r], ex)] = 0.0
        return S.max(axis=1, initial=0.0).astype(np.float64)
