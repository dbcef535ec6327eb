"""What a simulated shop measures itself, per policy: the truth the pipeline's metrics estimate.

The shop knows exactly which item it showed where and what the customer did with it, so it
counts without attribution windows: CTR@n is the share of shown slots at positions 1..n that were
clicked (first click per slot), the conversion rate the share of shown slots bought, coverage the
share of the catalog shown at least once. Time to first conversion is measured for the users who
arrive during the run, from their first page to their first purchase (from the list or not):
`ttfc_seconds_median` is the median over those who bought, next to the share who did
(`new_users_converted`); `ttfc_km_median_seconds`, `ttfc_restricted_mean_seconds` (with its
bootstrap interval) and `ttfc_converted_by_horizon` are over *every* new customer, those who
did not buy censored at the run's `end` (`refold.simulate.survival`), up to `horizon` seconds
after their first page (`ttfc_horizon_seconds`: half the run, `for_shop`, so that every
customer arriving in its first half is followed to it).

>>> t = Tally(shown=3, catalog_size=10)
>>> t.impression(["a", "b", "c"], [False, False, True])
>>> t.outcome(2, "click"); t.outcome(2, "click"); t.outcome(3, "purchase")
>>> r = t.result()
>>> r["ctr_at_1"], r["ctr_at_3"], r["conversion_rate"], r["coverage"]
(0.0, 0.3333, 0.3333, 0.3)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from producers.population import DAY, ShopConfig
from refold.simulate.survival import KaplanMeier, restricted_mean_interval


class Tally:
    """Counts of one policy's run. Call `impression` for each shown list, then `outcome` for
    what the customer did on it (positions are 1-based), before the next `impression`."""

    def __init__(self, shown: int, catalog_size: int, end: float | None = None,
                 horizon: float | None = None) -> None:
        self.shown = shown
        self.catalog_size = catalog_size
        self.end = end
        self.horizon = horizon
        self.slots = np.zeros(shown)
        self.clicks = np.zeros(shown)
        self.purchases = np.zeros(shown)
        self.explored_slots = np.zeros(2)
        self.explored_clicks = np.zeros(2)
        self.impressions = 0
        self.items_shown: set[str] = set()
        self.purchases_total = 0
        self.purchases_from_lists = 0
        self.arrived: dict[int, float] = {}
        self.converted: dict[int, float] = {}
        self._explored: list[bool] = []
        self._answered: set[tuple[int, str]] = set()

    @classmethod
    def for_shop(cls, shop: ShopConfig) -> Tally:
        """The tally of a run of `shop`: censored at its end, horizon half the run."""
        return cls(shop.shown, shop.n_items, end=shop.start_time + shop.days * DAY,
                   horizon=shop.days * DAY / 2)

    def impression(self, items: list[str], explored: list[bool]) -> None:
        n = min(len(items), self.shown)
        self.impressions += 1
        self.slots[:n] += 1
        self.items_shown.update(items[:n])
        self._explored = list(explored[:n])
        for flag in self._explored:
            self.explored_slots[int(flag)] += 1
        self._answered = set()

    def outcome(self, position: int, event_type: str) -> None:
        """An act on the slot at `position` of the last impression (once per slot and kind)."""
        key = (position, event_type)
        if key in self._answered or position > len(self._explored):
            return
        self._answered.add(key)
        if event_type == "click":
            self.clicks[position - 1] += 1
            self.explored_clicks[int(self._explored[position - 1])] += 1
        elif event_type == "purchase":
            self.purchases[position - 1] += 1

    def purchase(self, from_list: bool) -> None:
        """Any purchase (for the share of purchases that followed a list)."""
        self.purchases_total += 1
        self.purchases_from_lists += from_list

    def arrival(self, user: int, t: float) -> None:
        """A user who arrived during the run opened their first page at t."""
        self.arrived.setdefault(user, t)

    def conversion(self, user: int, t: float) -> None:
        if user in self.arrived:
            self.converted.setdefault(user, t)

    def ttfc(self) -> list[float]:
        return sorted(self.converted.get(u, math.inf) - t for u, t in self.arrived.items())

    def follow_up(self) -> tuple[np.ndarray, np.ndarray, float]:
        """Per new customer (in arrival order): seconds to first conversion, or to the end
        (censored); whether they converted; and the horizon."""
        users = sorted(self.arrived, key=lambda u: (self.arrived[u], u))
        last = max([*self.arrived.values(), *self.converted.values()], default=0.0)
        end = self.end if self.end is not None else last
        times = np.array([self.converted.get(u, end) - self.arrived[u] for u in users])
        done = np.array([u in self.converted for u in users], dtype=bool)
        first = min(self.arrived.values(), default=end)
        horizon = self.horizon if self.horizon is not None else (end - first) / 2
        return times, done, horizon

    def survival(self) -> dict[str, Any]:
        """The Kaplan-Meier figures of time to first conversion over every new customer."""
        times, done, horizon = self.follow_up()
        if not len(times) or horizon <= 0:
            return {"ttfc_km_median_seconds": None, "ttfc_restricted_mean_seconds": None,
                    "ttfc_restricted_mean_interval": None, "ttfc_converted_by_horizon": None,
                    "ttfc_horizon_seconds": None, "new_users": len(times)}
        km = KaplanMeier(times, done)
        median = km.km_median()
        low, high = restricted_mean_interval(times, done, horizon)
        return {
            "ttfc_km_median_seconds": None if median is None else round(median, 1),
            "ttfc_restricted_mean_seconds": round(km.restricted_mean(horizon), 1),
            "ttfc_restricted_mean_interval": [round(low, 1), round(high, 1)],
            "ttfc_converted_by_horizon": round(km.converted_by(horizon), 4),
            "ttfc_horizon_seconds": round(horizon, 1),
            "new_users": len(times),
        }

    def result(self) -> dict[str, Any]:
        """The figures, rounded to 4 digits (`ttfc_seconds_median` to the second)."""
        def rate(num: np.ndarray | float, den: np.ndarray | float) -> float:
            d = float(np.sum(den))
            return round(float(np.sum(num)) / d, 4) if d else 0.0

        ttfc = self.ttfc()
        bought = [x for x in ttfc if math.isfinite(x)]
        median = float(np.median(bought)) if bought else math.inf
        return {
            "ctr_at_1": rate(self.clicks[:1], self.slots[:1]),
            "ctr_at_3": rate(self.clicks[:3], self.slots[:3]),
            f"ctr_at_{self.shown}": rate(self.clicks, self.slots),
            "conversion_rate": rate(self.purchases, self.slots),
            "ttfc_seconds_median": None if math.isinf(median) else round(median),
            "new_users_converted": rate(sum(math.isfinite(x) for x in ttfc), len(ttfc)),
            **self.survival(),
            "coverage": rate(len(self.items_shown), self.catalog_size),
            "purchases_from_lists": rate(self.purchases_from_lists, self.purchases_total),
            "ctr_explored": rate(self.explored_clicks[1], self.explored_slots[1]),
            "ctr_exploited": rate(self.explored_clicks[0], self.explored_slots[0]),
            "explored_share": rate(self.explored_slots[1], self.explored_slots),
            "impressions": self.impressions,
        }
