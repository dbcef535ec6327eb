"""The simulated shop: it serves the population's pages as a real service would.

For a variant served by refold, the shop

1. publishes the catalog and the organic history of the customers present at the start, waits
   for the refitter to read it and asks for a first model;
2. walks through the run in ticks of one page interval (`ShopConfig.page_seconds`): for each page
   it reads the customer's latest list from the recommendations topic (`RecommendationsView`,
   once the list caused by the customer's last event is there, as it would be seconds later in a
   real shop), shows its first slots, reports the impression (`EventProducer.impression`), lets
   the customer act (`producers.population.Population.visit`) and publishes their events;
   impressions go out (and are acknowledged) before the tick's events, as a page is shown before
   anyone clicks on it;
3. asks for a refit every `refit_every` simulated seconds, after the refitter read everything.

A variant with `rerank` (`models.rescore`) shows, instead of the list's first slots, the list its
exploration policy draws (seeded by the list's `rec_id`) from the list's logged candidates ranked
by another blend of their scores and popularity (clicks, carts and purchases before the page,
counted from the events the shop sent, as `refold ope` counts them from the logs).

`popularity`, `random` and `oracle` variants are served by the shop alone: the catalog's
most-interacted items so far, less what the customer bought (`refold.simulate.popular`: global
popularity only, counted from every event the shop sent before the page); random items; the
items the customer is most likely to click now, which no recommender can know. Random and the
oracle are the bounds refold is judged between, popularity the baseline it must beat. A
customer gets recommendations once they have had an event (before that, refold has no list for
them); every variant follows that rule.

Every message gets an explicit Kafka timestamp, strictly increasing, so a worker merges a
customer's impressions and events in the order the shop sent them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from consumers.recs_view import RecommendationsView
from models.decision import Demotion
from models.defaults import EXPOSURE_MIN_COUNT, EXPOSURE_STRENGTH, K
from models.exploration import Policy
from models.rescore import Popularity
from producers.population import Page, Population
from producers.sdk import EventProducer
from refold.core.schemas import Event, Recommendation
from refold.simulate.pipeline import Pipeline, SimulationError, Variant
from refold.simulate.popular import MostPopular
from refold.simulate.tally import Tally

WAIT_S = 120.0
"""How long a page may wait for its customer's list."""


class Shop:
    """Serves the pages of `population` with `variant`'s lists (through `pipeline` unless the
    variant is served by the shop itself), counting what happens in `tally`."""

    def __init__(self, population: Population, variant: Variant, tally: Tally,
                 pipeline: Pipeline | None = None, refit_every: float = 6 * 3600.0) -> None:
        self.pop = population
        self.variant = variant
        self.tally = tally
        self.pipeline = pipeline
        self.refit_every = refit_every
        self.rng = np.random.default_rng([population.config.seed, 7])
        self.last_event: dict[str, str] = {}
        self.sent = 0
        self.pages = 0
        self.popularity = Popularity()
        self.most_popular = MostPopular(len(population.catalog)) \
            if variant.shop != "popularity-exposure" else MostPopular(
                len(population.catalog), Demotion(EXPOSURE_MIN_COUNT, EXPOSURE_STRENGTH), K)
        self._ts = 0
        self._producer: EventProducer | None = None
        self._view: RecommendationsView | None = None

    def run(self, progress: Callable[[int], Any] | None = None) -> None:
        """Serve every page of the run (`progress(pages)` is called after each tick)."""
        if self.pipeline is not None:
            self._producer = EventProducer(self.pipeline.settings)
            self._view = RecommendationsView(self.pipeline.settings)
            self._start()
        else:  # the customers with a history have had events, as in a pipeline's run
            for ev in self._history():
                self._count(ev)
                self.last_event[ev.user_id] = "history"
        try:
            self._ticks(progress)
        finally:
            if self._producer is not None:
                self._producer.close()
            if self._view is not None:
                self._view.close()

    # -- the run

    def _start(self) -> None:
        """Catalog and organic history in, a first model out."""
        assert self._producer is not None and self.pipeline is not None
        for item in self.pop.catalog:
            self._producer.send_item(item)
        for ev in self._history():
            self._count(ev)
            self._send(ev)
        self._producer.flush()
        self.pipeline.ready()
        self.pipeline.catch_up(self.sent)
        self.pipeline.refit("first model")
        self._view.start(poll_interval=0.01)  # type: ignore[union-attr]

    def _history(self) -> list[Event]:
        """The organic history of the customers present at the start, in time order."""
        history = sorted((t + act.after, u, n, act) for u in range(self.pop.config.n_users)
                         for n, (t, acts) in enumerate(self.pop.history(u)) for act in acts)
        return [Event(event_id=f"h{u}-{n}-{k}", user_id=f"u{u}", item_id=act.item_id,
                      event_type=act.event_type, event_time=t)
                for k, (t, u, n, act) in enumerate(history)]

    def _count(self, ev: Event) -> None:
        """An event the shop sent, in its popularity counts (and its orders)."""
        self.popularity.add(ev.item_id, ev.event_type, ev.event_time)
        i = self.pop.item_index[ev.item_id]
        self.most_popular.add(i, ev.event_time)
        self.most_popular.interacted(ev.user_id, i)
        if ev.event_type == "purchase":
            self.most_popular.bought(ev.user_id, i)

    def _ticks(self, progress: Callable[[int], Any] | None) -> None:
        c = self.pop.config
        pages = sorted((p for s in self.pop.sessions for p in s.pages),
                       key=lambda p: (p.time, p.user))
        next_refit = c.start_time + self.refit_every
        j = 0
        while j < len(pages):
            t0 = pages[j].time
            tick = []
            while j < len(pages) and pages[j].time < t0 + c.page_seconds:
                tick.append(pages[j])
                j += 1
            if self.pipeline is not None and t0 >= next_refit:
                self._producer.flush()  # type: ignore[union-attr]
                self.pipeline.catch_up(self.sent)
                self.pipeline.refit(f"simulated time {(t0 - c.start_time) / 3600:.0f} h")
                next_refit += self.refit_every
            self._tick(tick)
            if progress is not None:
                progress(len(tick))

    def _tick(self, pages: list[Page]) -> None:
        """Show each page's list, then send the impressions, then the customers' events; a
        customer back within the tick (two sessions at once) sees their earlier page's acts."""
        events: list[Event] = []
        seen: set[int] = set()
        for page in pages:
            if page.user in seen:
                self._send_all(events)
                events, seen = [], set()
            seen.add(page.user)
            if self.pop.is_new[page.user]:
                self.tally.arrival(page.user, page.time)
            shown, explored, rec = self._list(page)
            if shown:
                self.tally.impression(shown, explored)
                if rec is not None:
                    self._producer.impression(  # type: ignore[union-attr]
                        rec, shown=shown, shown_at=page.time, timestamp=self._stamp())
            events += self._acts(page, shown)
            self.pages += 1
        self._send_all(events)

    def _send_all(self, events: list[Event]) -> None:
        """The impressions sent so far acknowledged (a page is shown before anyone clicks on
        it), then `events`."""
        if self._producer is not None:
            self._producer.flush()
            for ev in events:
                self._send(ev)
            self._producer.flush()

    def _list(self, page: Page) -> tuple[list[str], list[bool], Recommendation | None]:
        """What the page shows: item ids, whether each was explored, and refold's list."""
        user = page.user_id
        if user not in self.last_event:
            return [], [], None
        n = self.pop.config.shown
        if self.variant.shop == "random":
            items = self.rng.choice(len(self.pop.catalog), n, replace=False)
            return [self.pop.catalog[i].item_id for i in items], [False] * n, None
        if self.variant.shop in ("popularity", "popularity-exposure"):
            top = self.most_popular.top(user, n, page.time)
            self.most_popular.shown(user, top.tolist())
            return [self.pop.catalog[i].item_id for i in top], [False] * len(top), None
        if self.variant.shop == "oracle":
            p = self.pop.click_probability(page.user, np.arange(len(self.pop.catalog)))
            best = np.argsort(-p, kind="stable")[:n]
            return [self.pop.catalog[i].item_id for i in best], [False] * n, None
        rec = self._latest(user)
        if self.variant.rerank is not None and rec.candidates and rec.policy is not None:
            self.popularity.advance(page.time)
            items, explored = self.variant.rerank.draw(
                Policy.from_description({k: v for k, v in msgspec.structs.asdict(
                    rec.policy).items() if v is not None}), rec.candidates,
                np.asarray(rec.candidate_scores), self.popularity.counts(rec.candidates),
                len(rec.items), rec.rec_id or "")
            return items[:n], explored[:n], rec
        items = rec.items[:n]
        return [it.item_id for it in items], [bool(it.explored) for it in items], rec

    def _latest(self, user: str) -> Recommendation:
        """The customer's list caused by their last event (waiting for it if need be)."""
        assert self._view is not None and self.pipeline is not None
        want = self.last_event[user]
        deadline = time.monotonic() + WAIT_S
        while True:
            rec = self._view.get(user)
            if rec is not None and rec.cause is not None and rec.cause.event_id == want:
                return rec
            if time.monotonic() > deadline:
                raise SimulationError(f"{self.variant.name}: no list for {user} after event "
                                      f"{want} in {WAIT_S:.0f} s")
            self.pipeline.check_alive()
            time.sleep(0.002)

    def _acts(self, page: Page, shown: list[str]) -> list[Event]:
        """The customer's acts on the page, counted, as events (sent after the impressions)."""
        out = []
        for k, act in enumerate(self.pop.visit(page, shown)):
            t = page.time + act.after
            if act.position is not None:
                self.tally.outcome(act.position, act.event_type)
            if act.event_type == "purchase":
                self.tally.purchase(from_list=act.position is not None)
                self.tally.conversion(page.user, t)
            ev = Event(event_id=f"e{page.user}-{page.session}-{page.page}-{k}",
                       user_id=page.user_id, item_id=act.item_id, event_type=act.event_type,
                       event_time=t)
            self._count(ev)
            self.last_event[page.user_id] = ev.event_id
            out.append(ev)
        return out

    def _send(self, ev: Event) -> None:
        if self._producer is not None:
            self._producer.send(ev, timestamp=self._stamp())
            self.sent += 1
        self.last_event[ev.user_id] = ev.event_id

    def _stamp(self) -> int:
        """A Kafka timestamp (ms), after every earlier one: the order the shop sent things."""
        self._ts = max(self._ts + 1, int(time.time() * 1000))
        return self._ts
