"""Which ANN library fetches refold's candidates: hnswlib, usearch and faiss, side by side.

Each builds a graph index (HNSW, degree `m`, construction beam `ef_construction`) over the same
item factors, with inner product as the similarity (the graph type that gives maximum inner
product results directly; the Euclidean reduction, an extra coordinate sqrt(M² − |y|²), is
measured too as `faiss-l2-reduction`: it keeps the order exact but the graph, built on points
crowded at the pole, navigates poorly), and faiss's inverted file (`faiss-ivf`, the beam being
the lists probed), which builds in a fraction of a graph's time, and faiss's graph over 8-bit or
16-bit codes of the vectors (`faiss-8bit`, `faiss-fp16`: fewer bytes read per distance, the
candidates still re-scored on the exact vectors). Each folded-in user fetches
`candidates` items, which are re-scored exactly with the user's own items excluded, as the
ranking does; recall@K is the share of the exact top-K found. The search beam is raised until
the recall target is met, and the per-query (one user at a time) and batched latencies are
reported there, on one thread.
Times are CPU seconds of this process (`time.process_time`), so that other load on the machine
does not move them; builds run on one thread by default for the same reason.

Run: `python -m refold.bench.ann_choice --items 1000000 --shape als` (`--m`, `--efc`,
`--threads`: the graph's degree, build beam and build threads).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from refold.bench import factors as synth

EFS = (32, 48, 64, 96, 128, 192, 256, 384, 512)


@dataclass
class Library:
    """How to build and query one library's inner-product graph index."""

    name: str
    build: Callable[[np.ndarray, int, int, int], Any]
    search: Callable[[Any, np.ndarray, int, int], np.ndarray]
    nbytes: Callable[[Any], int]


def _hnswlib() -> Library:
    import hnswlib

    def build(Y: np.ndarray, m: int, efc: int, threads: int) -> Any:
        ix = hnswlib.Index(space="ip", dim=Y.shape[1])
        ix.init_index(len(Y), M=m, ef_construction=efc, random_seed=0)
        ix.add_items(Y, np.arange(len(Y)), num_threads=threads)
        ix.set_num_threads(1)
        return ix

    def search(ix: Any, X: np.ndarray, n: int, ef: int) -> np.ndarray:
        ix.set_ef(max(ef, n))
        return ix.knn_query(X, n, num_threads=1)[0].astype(np.int64)

    return Library("hnswlib", build, search,
                   lambda ix: ix.get_current_count() * (ix.dim * 4 + ix.M * 2 * 4 + 16))


def _usearch() -> Library:
    from usearch.index import Index

    def build(Y: np.ndarray, m: int, efc: int, threads: int) -> Any:
        ix = Index(ndim=Y.shape[1], metric="ip", dtype="f32", connectivity=m, expansion_add=efc)
        ix.add(np.arange(len(Y)), Y, threads=threads)
        return ix

    def search(ix: Any, X: np.ndarray, n: int, ef: int) -> np.ndarray:
        ix.expansion_search = max(ef, n)
        keys = ix.search(X, n, threads=1).keys
        return np.asarray(keys, dtype=np.int64).reshape(len(X), -1)

    return Library("usearch", build, search, lambda ix: int(ix.memory_usage))


def _faiss(reduction: bool, quantized: str | None = None) -> Library:
    """faiss's graph; `quantized` ("8bit", "fp16"): its vectors stored by a scalar quantizer
    (`IndexHNSWSQ`, trained on the items), a quarter or half of the bytes each distance reads."""
    import faiss

    def build(Y: np.ndarray, m: int, efc: int, threads: int) -> Any:
        faiss.omp_set_num_threads(threads)
        if reduction:
            norms = np.linalg.norm(Y, axis=1)
            extra = np.sqrt(np.maximum(norms.max() ** 2 - norms**2, 0.0))
            Y = np.hstack([Y, extra[:, None]]).astype(np.float32)
        metric = faiss.METRIC_L2 if reduction else faiss.METRIC_INNER_PRODUCT
        if quantized is None:
            ix = faiss.IndexHNSWFlat(Y.shape[1], m, metric)
        else:
            qtype = getattr(faiss.ScalarQuantizer, f"QT_{quantized}")
            ix = faiss.IndexHNSWSQ(Y.shape[1], qtype, m, metric)
            ix.train(np.ascontiguousarray(Y))
        ix.hnsw.efConstruction = efc
        ix.add(np.ascontiguousarray(Y))
        faiss.omp_set_num_threads(1)
        return ix

    def search(ix: Any, X: np.ndarray, n: int, ef: int) -> np.ndarray:
        if reduction:  # on the sphere too: same order, a query among the points
            X = X / np.linalg.norm(X, axis=1, keepdims=True)
            X = np.hstack([X, np.zeros((len(X), 1), np.float32)]).astype(np.float32)
        ix.hnsw.efSearch = max(ef, n)
        return ix.search(np.ascontiguousarray(X, dtype=np.float32), n)[1]

    name = "faiss-l2-reduction" if reduction else "faiss"
    code = {"8bit": 1, "fp16": 2}.get(quantized or "", 4)  # bytes a coordinate takes
    return Library(name if quantized is None else f"{name}-{quantized}", build, search,
                   lambda ix: ix.ntotal * (ix.d * code + ix.hnsw.nb_neighbors(0) * 4 * 2))


def _faiss_ivf() -> Library:
    """faiss's inverted file over inner product (`IndexIVFFlat`, ~4·sqrt(n) lists trained by
    spherical k-means on a sample): far cheaper to build than a graph; the beam is the number
    of lists probed."""
    import faiss

    def build(Y: np.ndarray, m: int, efc: int, threads: int) -> Any:
        faiss.omp_set_num_threads(threads)
        nlist = max(1, int(4 * np.sqrt(len(Y))))
        ix = faiss.IndexIVFFlat(faiss.IndexFlatIP(Y.shape[1]), Y.shape[1], nlist,
                                faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(Y), min(len(Y), 50 * nlist), replace=False)
        ix.train(np.ascontiguousarray(Y[np.sort(sample)]))
        ix.add(np.ascontiguousarray(Y))
        faiss.omp_set_num_threads(1)
        return ix

    def search(ix: Any, X: np.ndarray, n: int, probes: int) -> np.ndarray:
        ix.nprobe = probes
        return ix.search(np.ascontiguousarray(X, dtype=np.float32), n)[1]

    return Library("faiss-ivf", build, search,
                   lambda ix: ix.ntotal * (ix.d * 4 + 8) + ix.nlist * ix.d * 4)


LIBRARIES: dict[str, Callable[[], Library]] = {
    "hnswlib": _hnswlib, "usearch": _usearch, "faiss": lambda: _faiss(False),
    "faiss-l2-reduction": lambda: _faiss(True), "faiss-ivf": _faiss_ivf,
    "faiss-8bit": lambda: _faiss(False, "8bit"), "faiss-fp16": lambda: _faiss(False, "fp16"),
}


def exact_topk(Y: np.ndarray, X: np.ndarray, exclude: list[np.ndarray], k: int) -> np.ndarray:
    """Each user's exact top-k rows, their own items excluded."""
    out = np.empty((len(X), k), dtype=np.int64)
    for lo in range(0, len(X), 64):
        S = X[lo : lo + 64] @ Y.T
        for r, items in enumerate(exclude[lo : lo + 64]):
            S[r, items] = -np.inf
        top = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, top, 1), axis=1)
        out[lo : lo + 64] = np.take_along_axis(top, order, 1)
    return out


def rescored_recall(Y: np.ndarray, X: np.ndarray, cands: np.ndarray,
                    exclude: list[np.ndarray], exact: np.ndarray) -> float:
    """Share of the exact top-k found by re-scoring each user's candidates exactly."""
    k, hits = exact.shape[1], 0
    for r, c in enumerate(cands):
        c = np.setdiff1d(c[c >= 0], exclude[r])
        top = c[np.argsort(-(Y[c] @ X[r]), kind="stable")[:k]]
        hits += len(np.intersect1d(top, exact[r]))
    return hits / exact.size


def measure(lib: Library, Y: np.ndarray, X: np.ndarray, exclude: list[np.ndarray],
            exact: np.ndarray, candidates: int, target: float, m: int, efc: int,
            threads: int) -> dict:
    t0 = time.process_time()
    ix = lib.build(Y, m, efc, threads)
    out: dict[str, Any] = {"library": lib.name, "build_seconds": time.process_time() - t0,
                           "index_mb": lib.nbytes(ix) / 1e6}
    for ef in EFS:
        if ef < candidates and ef != EFS[-1] and lib.name != "faiss-ivf":
            continue
        cands = lib.search(ix, X, candidates, ef)
        recall = rescored_recall(Y, X, cands, exclude, exact)
        if recall >= target or ef == EFS[-1]:
            break
    t0 = time.process_time()
    for r in range(len(X)):
        lib.search(ix, X[r : r + 1], candidates, ef)
    single = (time.process_time() - t0) / len(X)
    t0 = time.process_time()
    lib.search(ix, X, candidates, ef)
    batch = (time.process_time() - t0) / len(X)
    return {**out, "ef_search": ef, "recall": recall, "single_ms": single * 1e3,
            "batch_ms": batch * 1e3}


def run(items: int, shape: synth.Shape, libraries: list[str], factors: int = 64,
        queries: int = 1000, k: int = 20, candidates: int = 100, target: float = 0.95,
        m: int = 16, efc: int = 100, threads: int = 1) -> dict:
    Y = synth.item_factors(items, factors, shape)
    X, exclude = synth.users(Y, queries)
    X = np.ascontiguousarray(X, dtype=np.float32)
    with threadpool_limits(1):
        t0 = time.process_time()
        exact = exact_topk(Y, X, exclude, k)
        exact_ms = (time.process_time() - t0) / queries * 1e3
        rows = [measure(LIBRARIES[name](), Y, X, exclude, exact, candidates, target, m, efc,
                        threads) for name in libraries]
    return {"items": items, "factors": factors, "shape": shape, "k": k,
            "candidates": candidates, "target_recall": target, "m": m,
            "ef_construction": efc, "build_threads": threads, "exact_ms": exact_ms,
            "loadavg": os.getloadavg(), "libraries": rows}


def table(r: dict) -> str:
    lines = [f"{r['items']:,} items x {r['factors']} ({r['shape']}), {r['candidates']} "
             f"candidates re-scored, target recall@{r['k']} {r['target_recall']}; exact scan "
             f"{r['exact_ms']:.2f} ms/user; load {r['loadavg'][0]:.1f}",
             f"{'library':>20} {'build cpu s':>11} {'MB':>7} {'ef':>4} {'recall':>7} "
             f"{'1 user ms':>10} {'batched ms':>11}"]
    for x in r["libraries"]:
        lines.append(f"{x['library']:>20} {x['build_seconds']:11.1f} {x['index_mb']:7.0f} "
                     f"{x['ef_search']:4d} {x['recall']:7.4f} {x['single_ms']:10.3f} "
                     f"{x['batch_ms']:11.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--shape", choices=synth.SHAPES, default="als")
    p.add_argument("--libraries", default="hnswlib,usearch,faiss,faiss-l2-reduction")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="build threads")
    p.add_argument("--m", type=int, default=16, help="graph degree")
    p.add_argument("--efc", type=int, default=100, help="build beam")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    r = run(a.items, a.shape, a.libraries.split(","), queries=a.queries,
            candidates=a.candidates, m=a.m, efc=a.efc, threads=a.threads)
    print(json.dumps(r, indent=2) if a.json else table(r))


if __name__ == "__main__":
    main()
