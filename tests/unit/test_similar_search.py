"""Similar items in blocks and from the graph index, against the plain full scan."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.ann import AnnConfig
from models.similar import similar_items


def full_scan(Y: np.ndarray, C: sp.csr_matrix, n: np.ndarray, k: int,
              weight: float) -> tuple[np.ndarray, np.ndarray]:
    """The definition, n × n dense: cosines and co-visits, each over its row's max, blended."""
    unit = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    f = (unit @ unit.T).astype(np.float64)
    np.fill_diagonal(f, 0.0)
    f /= np.abs(f).max(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(np.maximum(n, 1.0))
    s = (sp.diags(inv) @ C @ sp.diags(inv)).toarray()
    s_max = s.max(axis=1, keepdims=True)
    f += weight * s / np.where(s_max > 0, s_max, 1.0)
    np.fill_diagonal(f, -np.inf)
    order = np.argsort(-f, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(f, order, axis=1)


def catalog(items: int = 600, factors: int = 16, seed: int = 0
            ) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """Clustered factors and random sparse co-visits (some items with none)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, factors))
    Y = (centres[rng.integers(0, 12, items)] + 0.6 * rng.normal(size=(items, factors)))
    upper = sp.random(items, items, density=0.01, random_state=seed, format="csr")
    C = sp.triu(upper, k=1)
    C = (C + C.T).tocsr() * 10
    return Y.astype(np.float32), C, rng.integers(1, 50, items).astype(np.float64)


def test_blocks_match_the_full_scan() -> None:
    Y, C, n = catalog()
    want_idx, want_val = full_scan(Y, C, n, k=20, weight=0.5)
    for chunk in (64, 512, 1000):  # blocks smaller, larger than the catalog
        idx, val = similar_items(Y, C, n, k=20, weight=0.5, chunk=chunk)
        assert np.array_equal(idx, want_idx)
        assert np.allclose(val, want_val, rtol=1e-6)
    idx, _ = similar_items(Y, k=20)  # factors alone
    assert np.array_equal(idx, full_scan(Y, C * 0, n, k=20, weight=0.0)[0])


def test_the_graph_index_finds_the_full_scans_neighbours_on_a_small_catalog() -> None:
    Y, C, n = catalog()
    want_idx, want_val = full_scan(Y, C, n, k=20, weight=0.5)
    ann = AnnConfig(min_items=1, candidates=60, ef_search=600)
    idx, val = similar_items(Y, C, n, k=20, weight=0.5, chunk=128, ann=ann)
    assert idx.shape == want_idx.shape and (idx >= 0).all()
    found = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(idx.tolist(), want_idx.tolist(),
                                                                  strict=True)])
    assert found >= 0.99
    same = idx == want_idx  # where the same item is found, its score is the exact one
    assert same.mean() >= 0.95 and np.allclose(val[same], want_val[same], rtol=1e-5)
    off = AnnConfig(min_items=10_000)  # below min_items: the exact blocks
    assert np.array_equal(similar_items(Y, C, n, k=20, ann=off)[0], want_idx)
