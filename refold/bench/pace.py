"""A new user's first list on logs of very different pace: adaptive trending next to fixed
half-lives and all-time popularity.

Each log (`producers.synth_pace`: 5 years at ~16 events a day, or 6 hours of a feed whose hits
last ~20 minutes; and MovieLens 100K, 7 months of ratings) is replayed into per-partition
trending counts (users hashed to 6 partitions, like the worker's events); each user's first
event is scored against the top 10 of their partition before it is counted. Adaptive trending
is told which events are newcomers' (fewer than `NEWCOMER_EVENTS` earlier events of the user),
as the worker tells it.

Every contender meets the same first events, so adaptive trending is compared with the best
baseline of each log *pairwise*: `wins` are first lists only adaptive trending hit, `losses`
those only the baseline hit. Over several seeds of a log `pooled` adds them up and gives the
ratio of hits with a 95% confidence interval (a paired normal interval: the lists both hit or
both missed carry no evidence either way).

>>> s = pooled([{"log": "slow", "first_lists": 1000, "best": 100, "adaptive": 104,
...              "wins": 10, "losses": 6}])
>>> s["ratio"], round(s["ci_low"], 3), round(s["ci_high"], 3)
(1.04, 0.962, 1.118)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from models.adaptive_trending import NEWCOMER_EVENTS, AdaptiveTrending
from models.trending import Trending
from producers.synth_pace import generate_paced

DAY = 86400.0
BASELINES = {"all-time": math.inf, "one week": 7 * DAY, "90 days": 90 * DAY}


def first_list_hits(log: Any, make: Callable[[], Any], partitions: int = 6,
                    k: int = 10) -> np.ndarray:
    """Per new user (in order of their first event), whether their first list held the item of
    that event: the top-k of their partition's trending before it."""
    users, uid = np.unique(log.user_ids, return_inverse=True)
    _, iid = np.unique(log.item_ids, return_inverse=True)
    part = np.array([zlib.crc32(u.encode()) % partitions for u in users.tolist()])[uid]
    trending = [make() for _ in range(partitions)]
    adaptive = isinstance(trending[0], AdaptiveTrending)
    seen = np.zeros(len(users), dtype=np.int64)
    hits = []
    for u, i, t, p in zip(uid.tolist(), iid.tolist(), log.times.tolist(), part.tolist(),
                          strict=True):
        if not seen[u]:
            hits.append(i in trending[p].top(k)[0].tolist())
        if adaptive:
            trending[p].update(i, 1.0, t, newcomer=bool(seen[u] < NEWCOMER_EVENTS))
        else:
            trending[p].update(i, 1.0, t)
        seen[u] += 1
    return np.array(hits, dtype=bool)


def run(config: Any) -> dict[str, Any]:
    """`run_log` on one paced log."""
    return run_log(generate_paced(config))


def run_log(log: Any) -> dict[str, Any]:
    """First-list recall of the baselines and of adaptive trending on `log`, and adaptive
    trending's wins and losses against the best baseline, list by list."""
    hits = {name: first_list_hits(log, lambda h=h: Trending(h)) for name, h in BASELINES.items()}
    best = max(BASELINES, key=lambda name: int(hits[name].sum()))
    ours = first_list_hits(log, AdaptiveTrending)
    out: dict[str, Any] = {name: float(h.mean()) for name, h in hits.items()}
    out["adaptive"] = float(ours.mean())
    out.update(best_baseline=best, first_lists=len(ours), best=int(hits[best].sum()),
               wins=int((ours & ~hits[best]).sum()), losses=int((hits[best] & ~ours).sum()))
    return out


def pooled(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Adaptive trending against each row's best baseline, summed over the rows (seeds of one
    log): hits ratio, its 95% confidence interval, and the paired z of wins over losses."""
    n = sum(r["first_lists"] for r in rows)
    best = sum(r["best"] for r in rows)
    wins, losses = sum(r["wins"] for r in rows), sum(r["losses"] for r in rows)
    diff = wins - losses
    se = math.sqrt(max(wins + losses - diff * diff / n, 0.0))  # of the difference in hits
    return {"log": rows[0]["log"], "seeds": len(rows), "first_lists": n, "wins": wins,
            "losses": losses, "ratio": (best + diff) / best,
            "ci_low": (best + diff - 1.96 * se) / best, "ci_high": (best + diff + 1.96 * se) / best,
            "z": diff / math.sqrt(wins + losses) if wins + losses else 0.0}


def table(rows: list[tuple[str, int, dict[str, Any]]]) -> str:
    names = [*BASELINES, "adaptive"]
    lines = [f"{'log':7} {'seed':>4} " + " ".join(f"{n:>9}" for n in names)
             + "  adaptive/best  wins  losses"]
    for log, seed, r in rows:
        lines.append(f"{log:7} {seed:>4} " + " ".join(f"{r[n]:>9.4f}" for n in names)
                     + f"  {r['adaptive'] / r[r['best_baseline']]:>13.3f} {r['wins']:>5} "
                       f"{r['losses']:>7}")
    for log in dict.fromkeys(log for log, _, _ in rows):
        mine = [r for name, _, r in rows if name == log]
        if len(mine) > 1:
            s = pooled([{"log": log, **r} for r in mine])
            lines.append(f"{log}, {s['seeds']} seeds pooled: adaptive / best {s['ratio']:.4f} "
                         f"(95% CI {s['ci_low']:.4f}-{s['ci_high']:.4f}), {s['wins']} wins, "
                         f"{s['losses']} losses of {s['first_lists']:,} first lists, "
                         f"z {s['z']:+.2f}")
    return "\n".join(lines)
