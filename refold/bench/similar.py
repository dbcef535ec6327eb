"""Similar items on a large catalog: `refold bench similar`.

Synthetic ALS-like item factors (norms log-normal) and session co-visits (Zipf popularity, 20
positive events per item), then, side by side in one run on one thread:

- **graph**: `similar_items(..., ann=AnnConfig(min_items=1))`, every item's neighbours from the
  HNSW graph over the unit vectors, exact scores of the candidates (the build included);
- **exact**: the exact scan in blocks (`models.similar_search.ExactBlocks`) for a random sample of
  `sample` items; its cost is linear in the items scanned, so the whole catalog's time is the
  sample's times n / sample (`exact_s`, extrapolated; `exact_sample_s` is what was measured);
- **recall@k** of the graph's neighbours against the exact ones on the sample, and the share of
  the graph's scores that equal the exact scores of the same item.

CPU seconds (`time.process_time`), so that other processes on the machine do not count.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.ann import AnnConfig
from models.similar import covisit_counts
from models.similar_search import ExactBlocks, blended_top, covisited_columns


def catalog(items: int, factors: int = 64, seed: int = 0
            ) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """(factors, co-visit counts, interactions per item) of a synthetic catalog."""
    rng = np.random.default_rng(seed)
    Y = rng.normal(size=(items, factors)) * rng.lognormal(0.0, 0.5, (items, 1))
    events = 20 * items
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    users = rng.integers(0, max(items // 2, 1), events)
    chosen = rng.choice(items, events, p=popularity / popularity.sum())
    C, n = covisit_counts(users, chosen, rng.random(events), items)
    return Y.astype(np.float32), C, n


def run(items: int = 100_000, k: int = 50, sample: int = 2000, seed: int = 0) -> dict[str, Any]:
    from models.similar import similar_items

    Y, C, n = catalog(items, seed=seed)
    t0 = time.process_time()
    g_idx, g_val = similar_items(Y, C, n, k=k, ann=AnnConfig(min_items=1))
    graph_s = time.process_time() - t0
    rows = np.sort(np.random.default_rng(seed + 1).choice(items, min(sample, items),
                                                          replace=False))
    t0 = time.process_time()
    e_idx, e_val = exact_rows(Y, C, n, rows, k)
    exact_sample_s = time.process_time() - t0
    found = [len(set(a) & set(b)) / k for a, b in zip(g_idx[rows].tolist(), e_idx.tolist(),
                                                       strict=True)]
    same = g_idx[rows] == e_idx
    return {"items": items, "k": k, "sample": len(rows), "graph_s": round(graph_s, 1),
            "exact_sample_s": round(exact_sample_s, 2),
            "exact_s": round(exact_sample_s * items / len(rows), 1),
            "speedup": round(exact_sample_s * items / len(rows) / graph_s, 1),
            "recall_at_k": round(float(np.mean(found)), 4),
            "exact_scores": round(float(np.isclose(g_val[rows][same], e_val[same],
                                                   rtol=1e-5).mean()), 4),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def exact_rows(Y: np.ndarray, C: sp.csr_matrix, n: np.ndarray, rows: np.ndarray, k: int,
               chunk: int = 512, weight: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """What `similar_items`' exact path gives for `rows` (the same blocks, only those rows)."""
    unit = Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-30)
    inv = 1.0 / np.sqrt(np.maximum(n, 1.0))
    session = (sp.diags(inv) @ C @ sp.diags(inv)).tocsr()
    search = ExactBlocks(np.ascontiguousarray(unit, dtype=np.float32))
    idx, val = [], []
    for lo in range(0, len(rows), chunk):
        part = rows[lo: lo + chunk]
        S = session[part]
        got = blended_top(part, search.block(part, k, covisited_columns(S)), S, weight, k)
        idx.append(got[0])
        val.append(got[1])
    return np.vstack(idx), np.vstack(val)


def table(r: dict[str, Any]) -> str:
    return "\n".join([
        f"{r['items']:,} items, {r['k']} neighbours each, one thread, CPU seconds "
        f"(load average {', '.join(map(str, r['load_avg']))})",
        f"graph index (build + search + exact scores): {r['graph_s']:,.1f} s",
        f"exact scan in blocks: {r['exact_s']:,.1f} s (from {r['sample']:,} items: "
        f"{r['exact_sample_s']} s)  -> graph {r['speedup']}x faster",
        f"recall@{r['k']} of the graph against exact: {r['recall_at_k']:.3f}; "
        f"scores equal to exact where the same item: {r['exact_scores']:.1%}"])
