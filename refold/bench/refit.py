"""One refit cycle next to a bare implicit fit of the same matrix; snapshot publish and load speed.

The cycle is the steady state: the store holds the log up to its last `share_new` part, a cold
refit publishes v1, the rest arrives, and the measured refit (v2) builds the CSR from the store,
warm-starts from v1, trains, gates against v1 on a holdout v1 has not seen, and publishes. The
bare fit is implicit's `AlternatingLeastSquares.fit` on the final full matrix, same parameters
and threads. Both are timed `repeats` times, interleaved, and the best of each is kept.
Throughput is measured on a random `publish_items` × factors snapshot, and the swap pause is
`OnlineRecommender.swap_factors` of a layout prepared beforehand, as the worker does between
batches (the follower's thread prepares it: `swap_prepare_p50_ms`), with the catalog scanned
exactly (at `ann_min_items` or more the preparation would build a candidate index each time:
~100 s at 200K items here). `refold bench swap` measures what a swap costs the events in flight,
through the broker.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from consumers.assembly import RefitterOptions, assemble_refitter
from consumers.refitter import Refitter, Triggers
from consumers.snapshot_publisher import SnapshotPublisher
from consumers.snapshots import load_latest
from models.refit import RefitParams
from models.snapshot import Snapshot
from producers.datasets import InteractionLog
from refold.bench.swap import swap_timings
from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.topics import create_topics, delete_topics, topic_specs

MB = 1e6


def _fill(refitter: Refitter, log: InteractionLog, rows: slice) -> None:
    add = refitter.store.add
    part = log[rows]
    for u, i, kind, value, t in zip(part.user_ids.tolist(), part.item_ids.tolist(),
                                    part.event_types.tolist(), part.values.tolist(),
                                    part.times.tolist(), strict=True):
        add(u, i, kind, t, None if value != value else value)
    refitter.offsets[0] = rows.stop or len(log)


def bare_fit_seconds(matrix, params: RefitParams) -> float:
    """implicit alone: the same matrix, parameters and thread settings as `models.als`."""
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=params.factors, regularization=params.regularization, alpha=params.alpha,
            iterations=params.iterations, random_state=params.random_state, num_threads=0)
        t0 = time.perf_counter()
        model.fit(matrix, show_progress=False)
        return time.perf_counter() - t0


def run(settings: Settings, log: InteractionLog, publish_items: int = 200_000,
        share_new: float = 0.05, repeats: int = 3) -> dict:
    """The figures of `refold bench refit` (see the module docstring)."""
    settings = settings.replace(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    admin = make_admin(settings)
    create_topics(admin, settings)
    try:
        refitter = assemble_refitter(settings, RefitterOptions(
            triggers=Triggers(0, 0, 0), keep_versions=2, serve_metrics=False))
        params = refitter.params  # ALS settings from `settings`, as `refold refit` has them
        split = int(len(log) * (1 - share_new))
        _fill(refitter, log, slice(0, split))
        cold = refitter.refit("bench: cold")
        cold_seconds = refitter.last_refit.get("refit_seconds", float("nan"))
        _fill(refitter, log, slice(split, len(log)))
        full = refitter.store.training_data().full
        cycles, bare = [], []
        for _ in range(repeats):  # interleaved, best of each: other load hits both alike
            refitter.live = cold
            snap = refitter.refit("bench: warm")
            if cold is None or snap is None:
                raise RuntimeError(f"a bench refit was refused: {refitter.gate.last_reason}")
            cycles.append(dict(refitter.last_refit))
            bare.append(bare_fit_seconds(full, params))
        cycle = min(cycles, key=lambda c: c["refit_seconds"])
        implicit_seconds = min(bare)
        refitter.publisher.close()

        rng = np.random.default_rng(0)
        ids = [f"item-{i}" for i in range(publish_items)]
        big = [Snapshot.build(v, time.time(), ids, rng.standard_normal(
            (publish_items, params.factors), dtype=np.float32)) for v in (10, 11)]
        with SnapshotPublisher(settings, keep=2) as publisher:
            first = publisher.publish(big[0])  # includes the producer's start
            published = publisher.publish(big[1])
        t0 = time.perf_counter()
        loaded = load_latest(settings, timeout=120)
        load_seconds = time.perf_counter() - t0
        assert loaded is not None and loaded.version == 11
        timed = swap_timings(big[0].item_factors(), big[1].item_factors(), 30, inline=False)
        pauses, prepares = timed["prepared"], timed["prepare"]
    finally:
        delete_topics(admin, [s.name for s in topic_specs(settings)])
    return {
        "events": len(log), "repeats": repeats, "users": int(full.shape[0]),
        "items": int(full.shape[1]), "nnz": int(full.nnz), "factors": params.factors,
        "iterations": params.iterations,
        "refit_seconds": cycle["refit_seconds"], "store_seconds": cycle["store_seconds"],
        "fit_seconds": cycle["fit_seconds"], "gate_seconds": cycle["gate_seconds"],
        "publish_seconds": cycle["publish_seconds"], "cold_refit_seconds": cold_seconds,
        "implicit_fit_seconds": implicit_seconds,
        "overhead_ratio": cycle["refit_seconds"] / implicit_seconds,
        "recall_at_k": snap.metrics.get("recall_at_k"),
        "live_recall_at_k": snap.metrics.get("live_recall_at_k"),
        "snapshot_items": publish_items, "snapshot_mb": published.bytes / MB,
        "publish_seconds_big": published.seconds,
        "publish_mb_per_s": published.bytes / MB / published.seconds,
        "first_publish_mb_per_s": first.bytes / MB / first.seconds,
        "load_seconds": load_seconds, "load_mb_per_s": published.bytes / MB / load_seconds,
        "swap_pause_p50_ms": float(np.percentile(pauses, 50)),
        "swap_pause_p99_ms": float(np.percentile(pauses, 99)),
        "swap_prepare_p50_ms": float(np.percentile(prepares, 50)),
    }


def table(r: dict) -> str:
    return "\n".join([
        f"{r['events']:,} events -> {r['users']:,} users x {r['items']:,} items, "
        f"nnz {r['nnz']:,}, {r['factors']} factors, {r['iterations']} iterations",
        f"refit cycle (warm, gated, published) {r['refit_seconds']:8.3f} s  "
        f"(store {r['store_seconds']:.3f}, fit {r['fit_seconds']:.3f}, gate "
        f"{r['gate_seconds']:.3f}, publish {r['publish_seconds']:.3f})",
        f"bare implicit fit                    {r['implicit_fit_seconds']:8.3f} s",
        f"overhead                             {r['overhead_ratio']:8.2f}x",
        f"snapshot {r['snapshot_items']:,} x {r['factors']} ({r['snapshot_mb']:.1f} MB): publish "
        f"{r['publish_mb_per_s']:.0f} MB/s (first, with the producer's start: "
        f"{r['first_publish_mb_per_s']:.0f}), load {r['load_mb_per_s']:.0f} MB/s",
        f"swap pause p50 {r['swap_pause_p50_ms']:.1f} ms, p99 {r['swap_pause_p99_ms']:.1f} ms "
        f"(after {r['swap_prepare_p50_ms']:.0f} ms of layout on the follower's thread)",
    ])
