"""The simulated shop in one process: the same customers and the same model, without Kafka.

`refold simulate` runs each policy through a broker, a refitter and a worker process, which is
what it must measure, and takes minutes. For studying the *model* in the closed loop, this runs
the same parts in-process: `producers.population` customers, a `models.recommender
.OnlineRecommender` with the worker's fold-in settings, `consumers.feedback.Feedback` for
exposure and exploration (exactly the worker's decision step), refits with `models.refit.train`
every `refit_every` simulated seconds on a `models.store.InteractionStore` of everything sent
(and, with `learn_mixer`, the mixer fitted on a replay as `consumers.refit_hybrid` does), and
the shop's rule that a page shows the list caused by the customer's last event. What it leaves
out: the batch boundaries of a worker (each page's events are one batch here) and the refitter's
holdout gate. On the default population it gives the pipeline's figures to within a run's
noise (README, closing the loop), with no broker and no processes to start; a policy's run
takes about as long as in the pipeline (the ranking is the same work), but runs need nothing
else and repeat exactly.

Beyond the shop's own figures (`refold.simulate.tally`) it reports `repeats`: the impressions
and CTR@3 of a list shown for the first, second, third, fourth-or-later time (a list changes
only when its customer acts, so pages without an event show the same list again).

>>> from producers.population import ShopConfig
>>> from refold.core.config import Settings
>>> r = run_in_process(ShopConfig(n_users=20, n_items=40, days=0.05, seed=1), Settings(),
...                    Variant("refold"), refit_every=1200.0)
>>> r["impressions"] > 0, sorted(r["repeats"]) == sorted(set(r["repeats"]))
(True, True)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from consumers.feedback import Facts, Feedback
from consumers.model_source import foldin_config
from models.catalog import ItemIndex
from models.decision import decide
from models.foldin import ItemFactors
from models.mixer import Mixer
from models.mixer_fit import ExampleBuffer, collect
from models.recommender import OnlineRecommender
from models.refit import RefitParams, train
from models.store import InteractionStore, StoreConfig
from producers.population import Page, Population, ShopConfig
from refold.core.config import Settings
from refold.core.schemas import Cause, Event, Recommendation, impression_of
from refold.simulate.pipeline import Variant
from refold.simulate.run import ttfc_against, variants
from refold.simulate.shop import Shop
from refold.simulate.tally import Tally

MIXER_MIN_POSITIVES = 500
"""As the refitter (`consumers.refit_hybrid.MIN_POSITIVES`)."""


class Loop:
    """One variant's closed loop (a variant with `settings`/`fold_in`, not shop-served)."""

    def __init__(self, shop: ShopConfig, settings: Settings, variant: Variant,
                 refit_every: float) -> None:
        if variant.shop is not None or variant.rerank is not None:
            raise ValueError(f"{variant.name} is not a refold ranking")
        self.settings = settings.replace(**variant.settings)
        self.config = foldin_config(self.settings, **variant.fold_in)
        s = self.settings
        self.params = RefitParams(factors=s.factors, regularization=s.regularization,
                                  alpha=s.alpha, iterations=s.iterations, k=s.k)
        self.pop = Population(shop)
        self.refit_every = refit_every
        self.rec = OnlineRecommender(self.config, None, ItemIndex())
        self.rec.apply_items(self.pop.catalog)
        self.feedback = Feedback(self.rec, keep_lists=False)
        self.store = InteractionStore(StoreConfig(), self.config.weights)
        self.tally = Tally.for_shop(shop)
        self.lists: dict[str, Recommendation] = {}
        self.recent: list[Event] = []
        self.examples = ExampleBuffer()
        self.live: ItemFactors | None = None
        self.covered = -np.inf
        self.shown_before: dict[str, int] = {}
        self.repeats = np.zeros((4, 2))  # per times shown before: impressions, clicks at 1-3

    def run(self) -> dict[str, Any]:
        """Serve every page; the shop's figures plus `repeats` and `first_lists`."""
        c = self.pop.config
        history = sorted((t + act.after, u, n, act) for u in range(c.n_users)
                         for n, (t, acts) in enumerate(self.pop.history(u)) for act in acts)
        events = [Event(event_id=f"h{u}-{n}-{k}", user_id=f"u{u}", item_id=act.item_id,
                        event_type=act.event_type, event_time=t)
                  for k, (t, u, n, act) in enumerate(history)]
        for lo in range(0, len(events), 500):
            self.learn(events[lo : lo + 500])
        self.refit()
        first = self.first_lists()
        pages = sorted((p for s in self.pop.sessions for p in s.pages),
                       key=lambda p: (p.time, p.user))
        next_refit = c.start_time + self.refit_every
        for page in pages:
            if page.time >= next_refit:
                self.refit()
                next_refit += self.refit_every
            self.page(page)
        rep = {str(n) if n < 3 else "3+": {"impressions": int(i), "ctr_at_3": round(
            float(k) / (3 * i), 4) if i else 0.0} for n, (i, k) in enumerate(self.repeats)}
        return {**self.tally.result(), "repeats": rep, "first_lists": first,
                "model_version": self.rec.model_version}

    def first_lists(self) -> dict[str, float]:
        """The expected CTR@3 (the customers' click probabilities, position bias, no fatigue)
        of the returning customers' lists once the first model is served: the `held` ones,
        drawn from their history before any model, and `ranked` ones the model would draw
        now (the same policy, no exposure yet: nothing was shown); `oracle` is the best
        possible. Nothing is changed: the run goes on with the held lists."""
        users = sorted(self.lists)
        if not users:
            return {}
        exam = 1.0 / np.log2(2 + np.arange(3))
        now = self.pop.config.start_time

        def ctr(user: str, ids: Sequence[str]) -> float:
            idx = np.array([self.pop.item_index[i] for i in ids[:3]], dtype=np.int64)
            p = self.pop.click_probability(int(user[1:]), idx)
            return float(exam[: len(idx)] @ p) / 3

        ranked = self.rec.recommend_many(users, [now] * len(users), self.feedback.depth)
        held, drawn, best = [], [], []
        for u, recs in zip(users, ranked, strict=True):
            scores = np.maximum.accumulate(np.asarray(recs.scores)[::-1])[::-1]
            d = decide(recs.items, scores, self.feedback.k, self.feedback.policy, f"first-{u}")
            held.append(ctr(u, [it.item_id for it in self.lists[u].items]))
            drawn.append(ctr(u, d.items))
            p = self.pop.click_probability(int(u[1:]), np.arange(len(self.pop.catalog)))
            best.append(ctr(u, [self.pop.catalog[i].item_id for i in np.argsort(-p)[:3]]))
        return {"held": round(float(np.mean(held)), 4), "ranked": round(float(np.mean(drawn)), 4),
                "oracle": round(float(np.mean(best)), 4), "users": len(users)}

    def page(self, page: Page) -> None:
        """Show the customer's list, count and apply the impression, then their acts."""
        if self.pop.is_new[page.user]:
            self.tally.arrival(page.user, page.time)
        rec = self.lists.get(page.user_id)
        shown: list[str] = []
        again = 0
        if rec is not None:
            items = rec.items[: self.pop.config.shown]
            shown = [it.item_id for it in items]
            self.tally.impression(shown, [bool(it.explored) for it in items])
            again = min(self.shown_before.get(rec.rec_id or "", 0), 3)
            self.shown_before[rec.rec_id or ""] = again + 1
            self.repeats[again, 0] += 1
            imp = impression_of(rec, shown, page.time, f"i{page.user}-{page.session}-{page.page}")
            self.feedback.apply([(imp, 0)], Facts())
        events = []
        for k, act in enumerate(self.pop.visit(page, shown)):
            t = page.time + act.after
            if act.position is not None:
                self.tally.outcome(act.position, act.event_type)
                if act.event_type == "click" and act.position <= 3:
                    self.repeats[again, 1] += 1
            if act.event_type == "purchase":
                self.tally.purchase(from_list=act.position is not None)
                self.tally.conversion(page.user, t)
            events.append(Event(event_id=f"e{page.user}-{page.session}-{page.page}-{k}",
                                user_id=page.user_id, item_id=act.item_id,
                                event_type=act.event_type, event_time=t))
        if events:
            self.learn(events)

    def learn(self, events: Sequence[Event]) -> None:
        """One batch, as the worker takes it: feedback, fold-in, a list per customer."""
        facts = Facts()
        self.feedback.apply([(e, 0) for e in events], facts)
        self.recent.extend(events)
        for e in events:
            self.store.add(e.user_id, e.item_id, e.event_type, e.event_time)
        for ev, recs in self.rec.process_batch(events, k=self.feedback.depth):
            self.publish(ev, recs, facts)

    def publish(self, ev: Event, recs: Any, facts: Facts) -> None:
        d = self.feedback.decide(ev, recs, facts)
        cause = Cause(event_id=ev.event_id, event_time=ev.event_time, topic="events",
                      partition=0, offset=0)
        self.lists[recs.user_id] = Feedback.message(ev, cause, recs, d, ev.event_time, [])

    def refit(self) -> None:
        """Train on everything sent; the mixer from a replay served by the live model."""
        data = self.store.training_data()
        c = train(data, self.params, None)
        col = {x: j for j, x in enumerate(data.item_ids)}
        users = np.diff((data.full > 0).tocsc().indptr)
        counts = np.array([users[col[x]] if x in col else 0 for x in c.item_ids], np.float32)
        mixer = self.live.mixer if self.live is not None else None
        if self.settings.learn_mixer and self.live is not None:
            mixer = self.fit_mixer(self.live) or mixer
        version = (self.rec.model_version or 0) + 1
        self.live = ItemFactors(c.item_ids, c.Y, version, c.XtX, counts=counts, mixer=mixer)
        self.covered = max((e.event_time for e in self.recent), default=-np.inf)
        self.rec.swap_factors(self.live)

    def fit_mixer(self, live: ItemFactors) -> Mixer | None:
        """The refitter's mixer step (`consumers.refit_hybrid.HybridRefit.mixer`): the recent
        events replayed through `live`, examples from those after its data, a fit."""
        events = self.recent[-self.settings.mixer_window_events:]
        split = next((j for j, ev in enumerate(events) if ev.event_time > self.covered),
                     len(events))
        replay = OnlineRecommender(self.config, live)
        replay.apply_items(self.pop.catalog)
        weigh = self.config.weights.weight
        scored = self.settings.mixer_scored_events / max(len(events) - split, 1)
        collect(replay, events, positive=lambda ev: weigh(ev.event_type, ev.value,
                                                          ev.weight) > 0,
                buffer=self.examples, score_from=split, sample=min(1.0, scored),
                seed=live.version)
        return self.examples.fit(MIXER_MIN_POSITIVES)


def run_in_process(shop: ShopConfig, settings: Settings, variant: Variant,
                   refit_every: float = 6 * 3600.0) -> dict[str, Any]:
    """One variant's figures (see the module docstring)."""
    return Loop(shop, settings, variant, refit_every).run()


def simulate_in_process(shop: ShopConfig, settings: Settings,
                        only: Sequence[str] | None = None,
                        refit_every: float = 6 * 3600.0) -> dict[str, Any]:
    """`refold simulate --in-process`: the default variants (or those named in `only`) that
    rank with refold or are served by the shop, one after the other; no off-policy estimates
    (the re-ranking variants need the pipeline's logs)."""
    chosen = [v for v in variants(settings) if v.rerank is None
              and (v.name in only if only else v.default)]
    policies, follow_ups = {}, {}
    for v in chosen:
        started = time.monotonic()
        if v.shop is not None:
            tally = Tally.for_shop(shop)
            Shop(Population(shop), v, tally).run()
            figures = tally.result()
        else:
            loop = Loop(shop, settings, v, refit_every)
            figures, tally = loop.run(), loop.tally
        follow_ups[v.name] = tally.follow_up()[:2]
        policies[v.name] = {**figures, "seconds": round(time.monotonic() - started, 1)}
    return {"policies": policies, "ope": [],
            "ttfc_against_popularity": ttfc_against(follow_ups, shop),
            "population": asdict(shop)}
