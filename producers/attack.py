"""A synthetic attack on trending: N bot accounts hammering one item, mixed into an honest log.

Each bot acts every `every_seconds` (± `jitter` of it, uniformly), from a random start inside
[start, start + spread_seconds), for `events_per_bot` events; an event is a purchase of the
target, or, with probability `cover`, a click on a random item of the log (bots that browse a
little to look less single-minded).

>>> from producers.datasets import InteractionLog
>>> honest = InteractionLog(["u1", "u2"], ["a", "b"], ["click"] * 2, [float("nan")] * 2,
...                         [0.0, 100.0])
>>> log = with_bot_attack(honest, AttackConfig(n_bots=2, events_per_bot=3, target="x",
...                                             start=10.0, spread_seconds=1.0))
>>> len(log), sorted(set(log.user_ids.tolist()))
(8, ['bot0', 'bot1', 'u1', 'u2'])
>>> int((log.item_ids == "x").sum())
6
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from producers.datasets import InteractionLog


@dataclass(frozen=True)
class AttackConfig:
    n_bots: int = 50
    events_per_bot: int = 100
    target: str = "target"
    start: float = 0.0
    spread_seconds: float = 3600.0
    every_seconds: float = 10.0
    jitter: float = 0.1
    cover: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_bots < 0 or self.events_per_bot < 1 or not self.every_seconds > 0:
            raise ValueError("n_bots >= 0, events_per_bot >= 1 and every_seconds > 0 please")
        if not 0 <= self.jitter < 1 or not 0 <= self.cover < 1:
            raise ValueError("jitter and cover must be in [0, 1)")


def bot_events(config: AttackConfig, items: np.ndarray) -> InteractionLog:
    """The bots' events alone; cover clicks pick among `items`."""
    c = config
    rng = np.random.default_rng(c.seed)
    n = c.n_bots * c.events_per_bot
    gaps = c.every_seconds * (1 + c.jitter * rng.uniform(-1, 1, (c.n_bots, c.events_per_bot)))
    gaps[:, 0] = 0.0
    starts = c.start + rng.uniform(0, c.spread_seconds, c.n_bots)
    times = (starts[:, None] + np.cumsum(gaps, axis=1)).ravel()
    covered = rng.random(n) < c.cover if len(items) else np.zeros(n, dtype=bool)
    item = np.where(covered, rng.choice(items, n) if len(items) else c.target, c.target)
    users = np.repeat([f"bot{k}" for k in range(c.n_bots)], c.events_per_bot)
    kinds = np.where(covered, "click", "purchase")
    return InteractionLog(users, item, kinds, np.full(n, np.nan), times, name="bots")


def with_bot_attack(log: InteractionLog, config: AttackConfig) -> InteractionLog:
    """`log` and the bots' events, merged in time order (ties: honest events first)."""
    bots = bot_events(config, np.unique(log.item_ids))
    return InteractionLog(
        np.concatenate([log.user_ids, bots.user_ids]), np.concatenate([log.item_ids,
                                                                        bots.item_ids]),
        np.concatenate([log.event_types, bots.event_types]),
        np.concatenate([log.values, bots.values]), np.concatenate([log.times, bots.times]),
        np.concatenate([log.session_ids, bots.session_ids]), name=f"{log.name}+bots")
