"""A seeded synthetic world: latent tastes, long-tailed popularity, sessions, arrivals and drift.

Users and items have latent factors; items belong to categories that shape their factors, so
content cold start is learnable. Users arrive in sessions; each session touches a few items chosen
by softmax(user·item) over candidates drawn by popularity, and each touch runs a funnel
view → click → add_to_cart → purchase, sometimes followed by a rating; users also dismiss items
they dislike. New users and items arrive over time; at `drift_at` tastes shift.

>>> log, catalog, truth = generate(SynthConfig(n_users=50, n_items=40, n_events=500, seed=1))
>>> len(log), len(catalog), len(truth.user_factors)      # 20% more users and items arrive
(500, 48, 60)
>>> e = next(log.iter_events("synth"))
>>> e.user_id, e.item_id, e.event_type, e.session_id
('u2', 'i35', 'view', 's0')
>>> catalog[0].item_id, catalog[0].categories
('i0', ['cat05'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from producers.datasets import Catalog, InteractionLog
from refold.core.schemas import EVENT_TYPES, Item

DAY = 86_400.0
_FUNNEL = np.array([EVENT_TYPES.index(t) for t in ("view", "click", "add_to_cart", "purchase")])
_RATING, _DISMISS = EVENT_TYPES.index("rating"), EVENT_TYPES.index("dismiss")


@dataclass(frozen=True)
class SynthConfig:
    """The world's knobs; the defaults make a small shop with 100,000 events over four weeks."""

    n_users: int = 2_000  # users present at the start
    n_items: int = 1_000  # items present at the start
    n_events: int = 100_000
    dim: int = 16  # latent factors
    seed: int = 0
    n_categories: int = 12
    popularity: float = 0.8  # Zipf exponent of item popularity (0: all items equally popular)
    taste: float = 2.0  # weight of user·item in a choice (0: users choose by popularity only)
    new_users: float = 0.2  # users arriving during the run, as a share of n_users
    new_items: float = 0.2  # items arriving during the run, as a share of n_items
    session_length: float = 3.0  # mean number of items a session touches (geometric)
    p_click: float = 0.35  # funnel: P(click | view), P(cart | click), P(purchase | cart)
    p_cart: float = 0.3
    p_purchase: float = 0.5
    p_rating: float = 0.1  # P(a rating follows the funnel)
    p_dismiss: float = 0.05  # P(a touch is a dismiss of a disliked item instead of a funnel)
    n_candidates: int = 32  # items sampled by popularity, among which a choice is made
    drift_at: int | None = None  # event index from which tastes shift
    drift_share: float = 0.3  # at the drift, users whose factors are drawn anew
    drift_trend: float = 0.3  # ... and the pull of every user toward one category (in user norms)
    start_time: float = 1_700_000_000.0
    days: float = 28.0
    gap_seconds: float = 30.0  # mean time between a session's events

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.dim, self.n_categories, self.n_candidates) < 1:
            raise ValueError("n_users, n_items, dim, n_categories and n_candidates must be >= 1")
        if self.n_events < 0 or self.session_length < 1 or self.days <= 0:
            raise ValueError("need n_events >= 0, session_length >= 1 and days > 0")
        probs = (self.p_click, self.p_cart, self.p_purchase, self.p_rating, self.p_dismiss,
                 self.drift_share)
        if not all(0 <= p <= 1 for p in probs):
            raise ValueError("probabilities and drift_share must be in [0, 1]")
        if self.drift_at is not None and not 0 < self.drift_at < self.n_events:
            raise ValueError(f"drift_at must be in (0, n_events), got {self.drift_at}")


@dataclass(frozen=True, eq=False)
class SynthTruth:
    """What generated the log. Row k of the user (item) arrays is user `u{k}` (item `i{k}`)."""

    user_factors: np.ndarray  # tastes before the drift
    drifted_user_factors: np.ndarray | None  # tastes from the drift on (None: no drift)
    item_factors: np.ndarray
    item_log_popularity: np.ndarray  # log of the Zipf weight with which candidates are drawn
    item_categories: np.ndarray  # each item's main category (index into `category_names`)
    category_names: list[str]
    user_arrival: np.ndarray  # Unix seconds; start_time for the users present at the start
    drift_at: int | None  # touches (view, dismiss) from this event index on use drifted tastes
    drift_time: float | None  # time of the event at drift_at
    trend_category: str | None  # the category every user was pulled toward at the drift


class SynthWorld:
    """A world built from `config`: its catalog at once, its events on first use (then cached).

    Events are simulated as integer columns (about 40 bytes an event); `chunks` turns them into
    `InteractionLog`s of strings a chunk at a time, so millions need not be held as strings.
    """

    def __init__(self, config: SynthConfig | None = None) -> None:
        self.config = c = config or SynthConfig()
        self._rng = rng = np.random.default_rng(c.seed)
        n_u = c.n_users + round(c.n_users * c.new_users)
        n_i = c.n_items + round(c.n_items * c.new_items)
        t0, t1 = c.start_time, c.start_time + c.days * DAY
        scale = c.dim**-0.25  # entries of this size make user·item about N(0, 1)
        # items: factors near their category's centroid, popularity Zipf over a random ranking
        centroids = rng.normal(0, scale, (c.n_categories, c.dim))
        self._item_cat = rng.integers(c.n_categories, size=n_i)
        noise = rng.normal(0, scale, (n_i, c.dim))
        self._items = 0.8 * centroids[self._item_cat] + 0.6 * noise
        self._log_pop = -c.popularity * np.log1p(rng.permutation(n_i))
        self._created = np.concatenate([  # nondecreasing: the active catalog is a prefix
            np.sort(rng.uniform(t0 - 365 * DAY, t0, c.n_items)),
            np.sort(rng.uniform(t0, t1, n_i - c.n_items)),
        ])
        # users: factors, arrival, activity (a few users make many sessions)
        self._users = rng.normal(0, scale, (n_u, c.dim))
        self._arrival = np.concatenate([np.full(c.n_users, t0),
                                        np.sort(rng.uniform(t0, t1, n_u - c.n_users))])
        self._activity = rng.lognormal(0.0, 1.0, n_u)
        self._drifted, self._trend = None, None
        if c.drift_at is not None:  # its own random stream: the rest equals a run without drift
            drift_rng = np.random.default_rng([c.seed, 1])
            self._trend = int(drift_rng.integers(c.n_categories))
            direction = centroids[self._trend] / np.linalg.norm(centroids[self._trend])
            self._drifted = self._users.copy()
            redraw = drift_rng.random(n_u) < c.drift_share
            self._drifted[redraw] = drift_rng.normal(0, scale, (int(redraw.sum()), c.dim))
            self._drifted += c.drift_trend * scale * math.sqrt(c.dim) * direction
        self.categories = [f"cat{k:02d}" for k in range(c.n_categories)]
        self.catalog = self._make_catalog(centroids)
        self._events: dict[str, np.ndarray] | None = None

    def _make_catalog(self, centroids: np.ndarray) -> Catalog:
        # a second category, the next nearest, for some items
        near = self._items @ centroids.T
        near[np.arange(len(near)), self._item_cat] = -np.inf
        second = np.where(self._rng.random(len(near)) < 0.3, near.argmax(axis=1), -1)
        return Catalog(
            Item(item_id=f"i{k}", created_at=t, categories=[self.categories[a]]
                 + ([self.categories[b]] if b >= 0 else []))
            for k, (a, b, t) in enumerate(zip(self._item_cat.tolist(), second.tolist(),
                                              self._created.tolist(), strict=True))
        )

    @property
    def truth(self) -> SynthTruth:
        ev = self._simulate()
        drift_at = self.config.drift_at
        return SynthTruth(
            self._users, self._drifted, self._items, self._log_pop, self._item_cat,
            self.categories, self._arrival, drift_at,
            None if drift_at is None else float(ev["time"][drift_at]),
            None if self._trend is None else self.categories[self._trend],
        )

    def log(self) -> InteractionLog:
        """All events as one log."""
        return self._log(0, self.config.n_events)

    def chunks(self, size: int = 100_000) -> Iterator[InteractionLog]:
        """The events in time order as consecutive logs of `size` rows (ids as in `log()`)."""
        for a in range(0, self.config.n_events, size):
            yield self._log(a, a + size)

    def _log(self, a: int, b: int) -> InteractionLog:
        ev = {k: v[a:b] for k, v in self._simulate().items()}
        sessions = np.array([f"s{s}" for s in ev["session"].tolist()], dtype=str)
        return InteractionLog(
            _names("u", ev["user"]), _names("i", ev["item"]), np.array(EVENT_TYPES)[ev["type"]],
            ev["value"], ev["time"], sessions, name=f"synth-{self.config.seed}", first_row=a,
        )

    def _simulate(self) -> dict[str, np.ndarray]:
        if self._events is None:
            self._events = self._run()
        return self._events

    def _touches(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For m sessions: touches per session, each touch's kind, events per session.

        A kind is the funnel depth 1-4, plus 8 when a rating follows; 0 is a dismiss."""
        c, rng = self.config, self._rng
        n_touch = rng.geometric(1 / c.session_length, m)
        r = rng.random((5, int(n_touch.sum())))
        depth = 1 + (r[0] < c.p_click) * (1 + (r[1] < c.p_cart) * (1 + (r[2] < c.p_purchase)))
        kind = np.where(r[3] < c.p_dismiss, 0, depth + 8 * (r[4] < c.p_rating))
        counts = np.add.reduceat(_n_events(kind), _starts(n_touch)) if m else n_touch
        return n_touch, kind, counts

    def _sessions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sessions (user, start, touches) and touch kinds, just enough to reach n_events."""
        c, rng = self.config, self._rng
        n_new = len(self._arrival) - c.n_users
        blocks = [self._touches(n_new)]  # each new user starts with a session on arrival
        total = int(blocks[0][2].sum())
        funnel = 1 + c.p_click * (1 + c.p_cart * (1 + c.p_purchase)) + c.p_rating
        per_session = c.session_length * (c.p_dismiss + (1 - c.p_dismiss) * funnel)
        while total < c.n_events:
            n_touch, kind, counts = self._touches(int((c.n_events - total) / per_session) + 64)
            m = int(np.searchsorted(np.cumsum(counts), c.n_events - total)) + 1
            blocks.append((n_touch[:m], kind[: n_touch[:m].sum()], counts[:m]))
            total += int(counts[:m].sum())
        n_touch, kind = (np.concatenate([b[k] for b in blocks]) for k in (0, 1))
        # the other sessions: uniform times, users drawn by activity among those arrived
        t0, n_reg = c.start_time, len(n_touch) - n_new
        starts = np.sort(rng.uniform(t0, t0 + c.days * DAY, n_reg))
        arrived = np.searchsorted(self._arrival, starts, side="right")
        cum = np.cumsum(self._activity)
        pick = np.searchsorted(cum, rng.random(n_reg) * cum[arrived - 1], side="right")
        users = np.concatenate([np.arange(c.n_users, len(self._arrival)),
                                np.minimum(pick, arrived - 1)])
        starts = np.concatenate([self._arrival[c.n_users :], starts])
        return users, starts, n_touch, kind

    def _run(self) -> dict[str, np.ndarray]:
        c, rng = self.config, self._rng
        users, starts, n_touch, kind = self._sessions()
        touch_session = np.repeat(np.arange(len(n_touch)), n_touch)
        n_ev = _n_events(kind)
        first = _starts(n_ev)  # each touch's first event
        ev_touch = np.repeat(np.arange(len(kind)), n_ev)
        ev_session = touch_session[ev_touch]
        step = np.arange(len(ev_touch)) - first[ev_touch]
        depth = (kind & 7)[ev_touch]
        etype = np.where(kind[ev_touch] == 0, _DISMISS,
                         np.where(step < depth, _FUNNEL[np.minimum(step, 3)], _RATING))
        # a session's events follow its start by exponential gaps
        gaps = rng.exponential(c.gap_seconds, len(ev_touch))
        session_first = first[_starts(n_touch)]
        gaps[session_first] = 0.0
        elapsed = np.cumsum(gaps)
        times = starts[ev_session] + elapsed - elapsed[session_first][ev_session]
        order = np.argsort(times, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        # choices: tastes drift for touches that begin at or after drift_at
        drifted = rank[first] >= (len(order) if c.drift_at is None else c.drift_at)
        touch_depth = kind & 7
        beta = np.where(kind == 0, -c.taste, c.taste * (0.75 + 0.25 * touch_depth))
        item, score = self._choose(users[touch_session], times[first], drifted, beta)
        rating = np.clip(np.rint(3.0 + 1.2 * score + rng.normal(0, 0.6, len(score))), 1, 5)
        session_rank = np.empty(len(starts), dtype=np.int64)
        session_rank[np.argsort(starts, kind="stable")] = np.arange(len(starts))
        events = {
            "user": users[ev_session], "item": item[ev_touch], "type": etype.astype(np.int8),
            "value": np.where(etype == _RATING, rating[ev_touch], np.nan), "time": times,
            "session": session_rank[ev_session],
        }
        keep = order[: c.n_events]
        return {k: v[keep] for k, v in events.items()}

    def _choose(self, users: np.ndarray, times: np.ndarray, drifted: np.ndarray,
                beta: np.ndarray, block: int = 32_768) -> tuple[np.ndarray, np.ndarray]:
        """Per touch: draw candidates by popularity, and pick one by softmax(beta * user·item);
        deeper funnels pick more by taste, dismisses pick what the user likes least.
        Returns the items and their user·item scores."""
        c, rng = self.config, self._rng
        weights = np.exp(self._log_pop)
        draw_any, draw_old = _alias(weights), _alias(weights[: c.n_items])
        items = self._items.astype(np.float32)
        before = self._users.astype(np.float32)
        after = before if self._drifted is None else self._drifted.astype(np.float32)
        item, score = np.empty(len(users), dtype=np.int64), np.empty(len(users))
        for a in range(0, len(users), block):
            part = slice(a, a + block)
            shape = (len(users[part]), c.n_candidates)
            cand = draw_any(rng, shape)
            # a draw not yet in the catalog is replaced by one among the items present at start
            cand = np.where(self._created[cand] <= times[part, None], cand, draw_old(rng, shape))
            taste = np.where(drifted[part, None], after[users[part]], before[users[part]])
            s = np.matmul(items[cand], taste[:, :, None])[..., 0]
            # softmax sampling by inverse CDF
            z = beta[part, None] * s
            cdf = np.cumsum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1)
            pick = (cdf < rng.random(shape[0])[:, None] * cdf[:, -1:]).sum(axis=1)
            rows = np.arange(shape[0])
            item[part], score[part] = cand[rows, pick], s[rows, pick]
        return item, score


def _alias(weights: np.ndarray) -> Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]:
    """Walker's alias method: a sampler of indices with probability proportional to `weights`,
    at O(1) a draw (`rng.choice` with `p=` costs a binary search a draw)."""
    n = len(weights)
    prob = (weights * n / weights.sum()).tolist()
    alias = list(range(n))
    small = [k for k in range(n) if prob[k] < 1.0]
    large = [k for k in range(n) if prob[k] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        alias[s] = g
        prob[g] -= 1.0 - prob[s]
        (small if prob[g] < 1.0 else large).append(g)
    for k in small + large:  # left over: exactly 1 up to rounding
        prob[k] = 1.0
    p, al = np.array(prob), np.array(alias)

    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        k = rng.integers(n, size=shape)
        return np.where(rng.random(shape) < p[k], k, al[k])

    return draw


def _names(prefix: str, index: np.ndarray) -> np.ndarray:
    """Ids like "u7" for indices, formatting each distinct index once."""
    distinct, inverse = np.unique(index, return_inverse=True)
    return np.array([f"{prefix}{k}" for k in distinct.tolist()], dtype=str)[inverse]


def _starts(counts: np.ndarray) -> np.ndarray:
    """Index of the first element of each group, for groups of `counts` consecutive elements."""
    return np.cumsum(counts) - counts


def _n_events(kind: np.ndarray) -> np.ndarray:
    """Events a touch makes: a dismiss is one; a funnel its depth, plus one when rated."""
    return np.where(kind == 0, 1, (kind & 7) + (kind >= 8))


def generate(config: SynthConfig | None = None) -> tuple[InteractionLog, Catalog, SynthTruth]:
    """Build a world and return its whole log, its catalog and the truth behind them."""
    world = SynthWorld(config)
    return world.log(), world.catalog, world.truth
