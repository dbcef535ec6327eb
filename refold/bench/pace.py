"""A new user's first list on logs of very different pace: adaptive trending next to fixed
half-lives and all-time popularity.

Each log (`producers.synth_pace`: 5 years at ~16 events a day, or 6 hours of a feed whose hits
last ~20 minutes; and MovieLens 100K, 7 months of ratings) is replayed into per-partition
trending counts (users hashed to 6 partitions, like the worker's events); each user's first
event is scored against the top 10 of their partition before it is counted. Adaptive trending
is told which events are newcomers' (fewer than `NEWCOMER_EVENTS` earlier events of the user),
as the worker tells it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from models.adaptive_trending import NEWCOMER_EVENTS, AdaptiveTrending
from models.trending import Trending
from producers.synth_pace import generate_paced

DAY = 86400.0
BASELINES = {"all-time": math.inf, "one week": 7 * DAY, "90 days": 90 * DAY}


def first_list_recall(log: Any, make: Callable[[], Any], partitions: int = 6,
                      k: int = 10) -> float:
    """Recall@k of each new user's first list: the top-k of their partition's trending before
    their first event."""
    users, uid = np.unique(log.user_ids, return_inverse=True)
    _, iid = np.unique(log.item_ids, return_inverse=True)
    part = np.array([zlib.crc32(u.encode()) % partitions for u in users.tolist()])[uid]
    trending = [make() for _ in range(partitions)]
    adaptive = isinstance(trending[0], AdaptiveTrending)
    seen = np.zeros(len(users), dtype=np.int64)
    hits = 0
    for u, i, t, p in zip(uid.tolist(), iid.tolist(), log.times.tolist(), part.tolist(),
                          strict=True):
        if not seen[u]:
            hits += i in trending[p].top(k)[0].tolist()
        if adaptive:
            trending[p].update(i, 1.0, t, newcomer=bool(seen[u] < NEWCOMER_EVENTS))
        else:
            trending[p].update(i, 1.0, t)
        seen[u] += 1
    return hits / len(users)


def run(config: Any) -> dict[str, float]:
    """First-list recall of the baselines and of adaptive trending on one paced log."""
    return run_log(generate_paced(config))


def run_log(log: Any) -> dict[str, float]:
    """First-list recall of the baselines and of adaptive trending on `log`."""
    out = {name: first_list_recall(log, lambda h=h: Trending(h)) for name, h in BASELINES.items()}
    out["adaptive"] = first_list_recall(log, AdaptiveTrending)
    return out


def table(rows: list[tuple[str, int, dict[str, float]]]) -> str:
    names = [*BASELINES, "adaptive"]
    lines = [f"{'log':6} {'seed':>4} " + " ".join(f"{n:>9}" for n in names) + "  adaptive/best"]
    for log, seed, r in rows:
        best = max(r[n] for n in BASELINES)
        lines.append(f"{log:6} {seed:>4} " + " ".join(f"{r[n]:>9.4f}" for n in names)
                     + f"  {r['adaptive'] / best:>13.3f}")
    return "\n".join(lines)
