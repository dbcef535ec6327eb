"""A simulated shop's customers: hidden preferences, sessions, and how they react to a shown list.

refold never sees any of this; it only sees the events the customers make. Each user u and item i
have latent vectors (items clustered by category, as in `producers.synth`), and the *utility*

    util(u, i) = taste · (x_u · y_i) + quality · q_i,

where q_i ~ N(0, 1) is the item's global appeal, correlated (`appeal_popularity`) with how popular
the item is (popular items are popular partly because they suit everyone, partly because they
are easy to find). On a page, the shop shows the first `shown` slots of the user's list and the user

1. examines position j (1-based) with probability 1 / log2(1 + j) (the position bias);
2. clicks an examined item with probability σ(click_bias + util) · fatigue^n, n being how often
   they examined it before (a customer who passed on an item twice is less likely to take it the
   third time), and almost never (`rebuy`) an item they bought;
3. on the item's page, adds it to the cart with `p_cart` and buys it from the cart with
   σ(purchase_bias + util).

Besides the list, with probability `p_browse` a page also brings an item the user finds on their
own: they open a category page (category c with probability softmax over c of their mean utility
for its items), which lists `n_browse` of its items drawn by popularity, and open the one chosen
by softmax(util) (a `view`; it counts as examined), then step 3. These organic events, and a
history of them before the run for the users present at the start, are what a recommender can
learn from at first.

Users present at the start come back in sessions (a Poisson process of `sessions_per_day`); new
users arrive during the run, their first session on arrival (their time to first purchase is
what `ttfc` measures). Every random draw of a page comes from a generator seeded by (seed, user,
session, page), so policies compared on the same seed meet the same customers making the same
draws: only what they are shown differs (common random numbers).

>>> pop = Population(ShopConfig(n_users=20, n_items=50, seed=1))
>>> len(pop.catalog), len(pop.sessions) > 0
(50, True)
>>> page = pop.sessions[0].pages[0]
>>> a = pop.visit(page, ["i1", "i2", "i3"])
>>> b = Population(ShopConfig(n_users=20, n_items=50, seed=1)).visit(page, ["i1", "i2", "i3"])
>>> a == b                                          # same seed, same page, same list: same acts
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, ndtri

from refold.core.schemas import Item

DAY = 86_400.0


@dataclass(frozen=True)
class ShopConfig:
    """The population's knobs (defaults: a shop of 2,000 customers and 1,000 items for 2 days)."""

    n_users: int = 2_000
    n_items: int = 1_000
    new_users: float = 0.3  # share of n_users who arrive during the run
    days: float = 2.0
    seed: int = 0
    dim: int = 16
    n_categories: int = 12
    taste: float = 2.0  # weight of the personal match x_u · y_i (~N(0, 1)) in the utility
    quality: float = 0.8  # weight of the item's global appeal q_i ~ N(0, 1)
    appeal_popularity: float = 0.8  # correlation of q_i with the item's popularity
    popularity: float = 0.8  # Zipf exponent of how often items are found without recommendations
    click_bias: float = -4.0  # logit of P(click | examined) at utility 0
    purchase_bias: float = -4.5  # logit of P(purchase | in cart) at utility 0
    p_cart: float = 0.3
    fatigue: float = 0.7  # P(click) multiplier per earlier examination of the same item
    rebuy: float = 0.02  # P(click) multiplier for an item the user bought
    shown: int = 5  # slots a page shows
    sessions_per_day: float = 1.0
    pages_per_session: float = 4.0  # mean (geometric)
    page_seconds: float = 120.0  # between two pages of a session
    p_browse: float = 0.3  # P(a page also brings an item found without the list)
    n_browse: int = 16  # popularity-drawn candidates a browsing user chooses among
    history_days: float = 14.0  # organic history of the users present at the start ...
    history_touches: float = 20.0  # ... with this many browsed items each, on average
    start_time: float = 1_700_000_000.0

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.dim, self.n_categories, self.shown,
               self.n_browse) < 1:
            raise ValueError("sizes must be >= 1")
        if not (0 <= self.new_users < 1 and self.days > 0 and self.pages_per_session >= 1):
            raise ValueError("need 0 <= new_users < 1, days > 0, pages_per_session >= 1")
        for name in ("p_cart", "fatigue", "rebuy", "p_browse", "appeal_popularity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Page:
    """One page view: who, when, and its place in the user's sessions (seeds its draws)."""

    user: int
    session: int
    page: int
    time: float

    @property
    def user_id(self) -> str:
        return f"u{self.user}"


@dataclass(frozen=True, slots=True)
class Session:
    user: int
    start: float
    pages: list[Page]


@dataclass(frozen=True, slots=True)
class Act:
    """One thing a user did: an event type on an item, where it was shown (None: found on
    their own), seconds after the page opened."""

    item_id: str
    event_type: str
    position: int | None
    after: float


@dataclass
class UserMemory:
    """What a customer remembers: how often they examined each item, what they bought."""

    examined: dict[int, int] = field(default_factory=dict)
    bought: set[int] = field(default_factory=set)


class Population:
    """The customers of one run; `visit` plays one page, remembering what the user saw."""

    def __init__(self, config: ShopConfig | None = None) -> None:
        self.config = c = config or ShopConfig()
        rng = np.random.default_rng([c.seed, 0])
        scale = c.dim**-0.25  # entries of this size make x_u · y_i about N(0, 1)
        centroids = rng.normal(0, scale, (c.n_categories, c.dim))
        self.item_category = rng.integers(c.n_categories, size=c.n_items)
        self.centroids = centroids
        self.items = 0.8 * centroids[self.item_category] + 0.6 * rng.normal(0, scale,
                                                                           (c.n_items, c.dim))
        rank = rng.permutation(c.n_items)
        self.browse_weights = np.exp(-c.popularity * np.log1p(rank))
        # normal scores of the popularity ranks, mixed with the item's own luck
        pop_score = ndtri(1.0 - (rank + 0.5) / c.n_items)
        rho = c.appeal_popularity
        self.appeal = rho * pop_score + math.sqrt(1 - rho**2) * rng.normal(size=c.n_items)
        self.users = rng.normal(0, scale, (c.n_users, c.dim))
        n_new = round(c.n_users * c.new_users)
        self.arrival = np.full(c.n_users, c.start_time)
        self.arrival[c.n_users - n_new:] = np.sort(
            rng.uniform(c.start_time, c.start_time + c.days * DAY, n_new))
        self.is_new = np.arange(c.n_users) >= c.n_users - n_new
        self.categories = [f"cat{k:02d}" for k in range(c.n_categories)]
        self.catalog = [Item(item_id=f"i{k}", categories=[self.categories[a]])
                        for k, a in enumerate(self.item_category.tolist())]
        self.item_index = {it.item_id: k for k, it in enumerate(self.catalog)}
        self._members = [np.flatnonzero(self.item_category == k) for k in range(c.n_categories)]
        self._empty = np.array([len(m) == 0 for m in self._members])
        self.sessions = self._schedule(rng)
        self.memory = [UserMemory() for _ in range(c.n_users)]

    def utility(self, user: int, items: np.ndarray | None = None) -> np.ndarray:
        """util(u, i) of `items` (indices; default all)."""
        c = self.config
        y = self.items if items is None else self.items[items]
        a = self.appeal if items is None else self.appeal[items]
        return c.taste * (y @ self.users[user]) + c.quality * a

    def click_probability(self, user: int, items: np.ndarray) -> np.ndarray:
        """P(click | examined) now, with the user's fatigue and purchases."""
        c, mem = self.config, self.memory[user]
        p = expit(c.click_bias + self.utility(user, items))
        seen = np.array([mem.examined.get(int(i), 0) for i in items])
        bought = np.array([int(i) in mem.bought for i in items], dtype=bool)
        return p * c.fatigue**seen * np.where(bought, c.rebuy, 1.0)

    def visit(self, page: Page, shown: list[str]) -> list[Act]:
        """What the user does on `page` given the item ids shown in its first slots (ids the shop
        does not know are skipped over, as a broken tile would be)."""
        c = self.config
        rng = np.random.default_rng([c.seed, 1, page.user, page.session, page.page])
        draws = rng.random((c.shown, 4))  # the same draws whatever the list: common numbers
        acts: list[Act] = []
        for j, item_id in enumerate(shown[: c.shown]):
            i = self.item_index.get(item_id)
            if i is None or draws[j, 0] >= 1.0 / math.log2(2 + j):
                continue
            acts += self._funnel(page.user, i, j + 1, draws[j, 1:], 2.0 * (j + 1))
        if rng.random() < c.p_browse:
            acts += self._browse(page.user, rng, after=c.page_seconds / 2)
        return acts

    def history(self, user: int) -> list[tuple[float, list[Act]]]:
        """Organic touches of a user present at the start, before it: (time, acts) in order."""
        c = self.config
        if self.is_new[user]:
            return []
        rng = np.random.default_rng([c.seed, 2, user])
        n = rng.poisson(c.history_touches)
        times = np.sort(c.start_time - rng.uniform(0, c.history_days * DAY, n))
        return [(float(t), self._browse(user, rng, after=0.0)) for t in times]

    def _funnel(self, user: int, i: int, position: int, u: np.ndarray,
                after: float) -> list[Act]:
        """A shown item the user examined: clicked (its page opened), then maybe carted and
        bought; `u` are three uniform draws."""
        p_click = float(self.click_probability(user, np.array([i]))[0])
        self._examined(user, i)
        if u[0] >= p_click:
            return []
        return [Act(self.catalog[i].item_id, "click", position, after),
                *self._opened(user, i, position, u[1:], after)]

    def _browse(self, user: int, rng: np.random.Generator, after: float) -> list[Act]:
        """An item found on a category page: its page viewed, then maybe carted and bought."""
        c = self.config
        util = self.utility(user)
        mean = np.bincount(self.item_category, weights=util, minlength=c.n_categories) / \
            np.maximum(np.bincount(self.item_category, minlength=c.n_categories), 1)
        mean[self._empty] = -np.inf
        members = self._members[_softmax_draw(mean, rng)]
        w = self.browse_weights[members]
        cand = members[rng.choice(len(members), size=c.n_browse, p=w / w.sum())]
        i = int(cand[_softmax_draw(util[cand], rng)])
        self._examined(user, i)
        return [Act(self.catalog[i].item_id, "view", None, after),
                *self._opened(user, i, None, rng.random(2), after)]

    def _examined(self, user: int, i: int) -> None:
        mem = self.memory[user]
        mem.examined[i] = mem.examined.get(i, 0) + 1

    def _opened(self, user: int, i: int, position: int | None, u: np.ndarray,
                after: float) -> list[Act]:
        """On an item's page: to the cart with `p_cart`, bought from it with
        σ(purchase_bias + util); `u` are two uniform draws."""
        c = self.config
        if u[0] >= c.p_cart:
            return []
        item_id = self.catalog[i].item_id
        acts = [Act(item_id, "add_to_cart", position, after + 5.0)]
        if u[1] < expit(c.purchase_bias + self.utility(user, np.array([i]))[0]):
            acts.append(Act(item_id, "purchase", position, after + 10.0))
            self.memory[user].bought.add(i)
        return acts

    def _schedule(self, rng: np.random.Generator) -> list[Session]:
        """Every session of the run, in start order."""
        c = self.config
        end = c.start_time + c.days * DAY
        out = []
        for u in range(c.n_users):
            t = float(self.arrival[u])
            if not self.is_new[u]:  # a returning user's first visit comes at a random time
                t += rng.exponential(DAY / c.sessions_per_day)
            s = 0
            while t < end:
                n = int(rng.geometric(1.0 / c.pages_per_session))
                pages = [Page(u, s, k, t + k * c.page_seconds) for k in range(n)]
                out.append(Session(u, t, pages))
                s += 1
                t += rng.exponential(DAY / c.sessions_per_day)
        out.sort(key=lambda s: (s.start, s.user))
        return out


def _softmax_draw(z: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn with probability softmax(z)."""
    p = np.exp(z - z.max())
    return int(rng.choice(len(z), p=p / p.sum()))
