"""The bot attack, side by side: N bot accounts hammer one item; with and without the guard.

A synthetic shop (`producers.synth`) is the honest log; item factors are fitted on its first
`fit_share`. Halfway through, `bots` accounts start buying one middling item every ~10 s
(`producers.attack`, a fifth of their events clicks on random items). The rest of the log is
replayed in micro-batches through `OnlineRecommender` (the worker's code, events hashed to
`partitions` partitions like the worker's), four times: the honest log and the attacked log,
each with the guard off and on (`models.guard`). Measured per run:

- how many partitions have the target in their trending top 10 (what a newcomer is shown),
  after every batch;
- the share of the lists published to honest users that hold the target;
- honest users' quality: each honest positive event judged against its user's list in force
  (`models.online_quality`: the worker's online recall@K, over the whole replay);
- the guard's outcome counts, and the most users it judged automated within an hour of event
  time (`refold_guard_automated_users`), after any batch.

The figure puts the runs side by side; `--json` gives the numbers.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.als import csr_from, fit_als
from models.online_quality import OnlineQuality
from models.recommender import FoldInConfig, OnlineRecommender
from models.weights import EventWeights
from producers.attack import AttackConfig, with_bot_attack
from producers.synth import SynthConfig, generate


@dataclass(frozen=True)
class Scenario:
    n_users: int = 2000
    n_items: int = 1000
    events: int = 60_000
    days: float = 14.0
    fit_share: float = 0.3
    bots: int = 50
    events_per_bot: int = 200
    every_seconds: float = 10.0
    cover: float = 0.2
    partitions: int = 6
    batch: int = 500
    k: int = 10
    factors: int = 32
    seed: int = 3


def logs(s: Scenario) -> tuple[Any, Any, str, float]:
    """The honest log, the attacked one, the target item and the attack's start."""
    honest, _, _ = generate(SynthConfig(n_users=s.n_users, n_items=s.n_items,
                                        n_events=s.events, days=s.days, seed=s.seed))
    items, counts = np.unique(honest.item_ids, return_counts=True)
    target = str(items[np.argsort(counts, kind="stable")[len(items) // 2]])  # a middling item
    start = float(honest.times[len(honest) // 2])
    attack = AttackConfig(n_bots=s.bots, events_per_bot=s.events_per_bot, target=target,
                          start=start, spread_seconds=3600.0, every_seconds=s.every_seconds,
                          cover=s.cover, seed=s.seed)
    return honest, with_bot_attack(honest, attack), target, start


def replay(s: Scenario, log: Any, fit: Any, guard: bool, target: str) -> dict[str, Any]:
    """One run: the time series and totals of the module docstring."""
    weights = EventWeights()
    n_fit = len(fit)
    users, u = np.unique(fit.user_ids, return_inverse=True)
    items, i = np.unique(fit.item_ids, return_inverse=True)
    w = [weights.weight(t, None if math.isnan(v) else v)
         for t, v in zip(fit.event_types.tolist(), fit.values.tolist(), strict=True)]
    factors = fit_als(csr_from(u, i, np.asarray(w), (len(users), len(items))), s.factors, 5.0,
                      2.0, 10, s.seed, item_ids=items.tolist(), version=1)
    rec = OnlineRecommender(FoldInConfig(k=s.k, guard=guard), factors)

    def part(user: str) -> int:
        return zlib.crc32(user.encode()) % s.partitions

    for ev in fit.iter_events("fit"):
        rec.learn_event(ev, part(ev.user_id))
    quality = OnlineQuality(k=s.k)
    times, in_trending, exposed = [], [], []
    shown = holding = judged = hits = peak = 0
    batch: list = []
    for ev in log[n_fit:].iter_events("replay"):
        honest = not ev.user_id.startswith("bot")
        if honest and weights.weight(ev.event_type, ev.value, ev.weight) > 0:
            rank = quality.judge(ev.user_id, ev.item_id)
            if rank is not None:
                judged, hits = judged + 1, hits + (rank >= 0)
        batch.append(ev)
        if len(batch) < s.batch:
            continue
        lists = rec.process_batch(batch, [part(e.user_id) for e in batch])
        honest_lists = [r for e, r in lists if not e.user_id.startswith("bot")]
        for r in honest_lists:
            quality.record(r.user_id, r.items, r.source)
        shown += len(honest_lists)
        holding += sum(target in r.items for r in honest_lists)
        ti = rec.catalog.get(target)
        times.append(batch[-1].event_time)
        in_trending.append(sum(ti in rec.partition(p).trending.top(10)[0].tolist()
                               for p in range(s.partitions)) if ti >= 0 else 0)
        exposed.append(sum(target in r.items for r in honest_lists) / max(len(honest_lists), 1))
        peak = max(peak, rec.guard_stats.automated_users())
        batch = []
    return {"guard": guard, "times": times, "partitions_with_target": in_trending,
            "lists_with_target": exposed, "share_of_lists_with_target": holding / max(shown, 1),
            "max_partitions_with_target": max(in_trending, default=0),
            "honest_recall": hits / max(judged, 1), "honest_judged": judged,
            "automated_users": peak,
            "guard_events": rec.guard_stats.totals()}


def run(s: Scenario | None = None, progress: Callable[[], None] | None = None
        ) -> dict[str, Any]:
    """The four replays (`progress` is called after each)."""
    s = s or Scenario()
    honest, attacked, target, start = logs(s)
    fit = honest[: int(s.fit_share * len(honest))]
    runs = {}
    for name, log in (("honest", honest), ("attacked", attacked)):
        for guard in (False, True):
            runs[f"{name} log, guard {'on' if guard else 'off'}"] = replay(s, log, fit, guard,
                                                                          target)
            if progress is not None:
                progress()
    return {"scenario": asdict(s), "target": target, "attack_start": start, "runs": runs}


def table(result: dict[str, Any]) -> str:
    lines = [f"{'run':28} {'honest recall@10':>16} {'lists with target':>17} "
             f"{'max partitions':>14} {'automated users':>15}"]
    for name, r in result["runs"].items():
        lines.append(f"{name:28} {r['honest_recall']:>16.4f} "
                     f"{r['share_of_lists_with_target']:>17.2%} "
                     f"{r['max_partitions_with_target']:>14} "
                     f"{r['automated_users']:>15}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Three panels: partitions whose trending top 10 holds the target, share of honest users'
    lists that hold it, honest users' recall@10; each run side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t0, start = None, result["attack_start"]
    styles = {"honest log, guard off": ("tab:gray", ":"),
              "honest log, guard on": ("tab:green", ":"),
              "attacked log, guard off": ("tab:red", "-"),
              "attacked log, guard on": ("tab:blue", "-")}
    for name, r in result["runs"].items():
        t0 = r["times"][0] if t0 is None else t0
        hours = (np.asarray(r["times"]) - t0) / 3600.0
        color, ls = styles[name]
        axes[0].plot(hours, r["partitions_with_target"], color=color, ls=ls, label=name)
        axes[1].plot(hours, np.asarray(r["lists_with_target"]) * 100, color=color, ls=ls,
                     label=name)
    for ax in axes[:2]:
        ax.axvline((start - (t0 or start)) / 3600.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("hours into the replay (dashed: the attack starts)")
    axes[0].set_ylabel(f"partitions with the target in trending top 10 "
                       f"(of {result['scenario']['partitions']})")
    axes[1].set_ylabel("% of honest users' lists holding the target")
    names = list(result["runs"])
    values = [result["runs"][n]["honest_recall"] for n in names]
    axes[2].bar(range(len(names)), values, color=[styles[n][0] for n in names])
    axes[2].set_xticks(range(len(names)), [n.replace(", ", "\n") for n in names], fontsize=8)
    axes[2].set_ylabel("honest users' online recall@10")
    for x, v in enumerate(values):
        axes[2].text(x, v, f"{v:.4f}", ha="center", va="bottom", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result['scenario']['bots']} bots buying one item every "
                 f"~{result['scenario']['every_seconds']:.0f} s: guard off and on")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
