"""The worker's side of closing the loop: impressions in, logged decisions out, outcomes counted.

The fold-in worker reads the impressions topic with the events topic, partition by partition in
timestamp order (`consumers.merge`). For a batch, `Feedback`

1. `split`s each user's impressions and events at the user's last event of the batch: what
   comes before it is applied before the batch's lists are ranked, what comes after, after (so a
   user's list is as of their last event, whatever the batch boundaries);
2. `apply`s them in order to the user's `models.feedback.UserFeedback` (kept in the user's
   history, so it is saved, undone and restored with it): an impression counts as exposure of
   its items and opens its slots to attribution; an event answers the exposure of its item, is
   credited to the slot it answers, and times a new user's first purchase;
3. `decide`s each ranked user's list from the candidates (`models.decision`: exposure demotion,
   then the exploration policy seeded from the list's `rec_id`), and `message` makes the
   `Recommendation` with its log.

What a batch's feedback did (impressions, credited outcomes, times to first conversion, how often
replaced lists were shown) is collected in `Facts`; `record` turns it into the metrics once the
batch committed (`refold_impression_*`, `refold_purchases_total`, ...: `refold.core.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np

from models.attribution import Attributed, Slot
from models.decision import Decision, decide
from models.exploration import make_rec_id
from models.feedback import UserFeedback
from models.history import UserHistory
from models.recommender import OnlineRecommender, Recs
from refold.core import metrics as M
from refold.core.schemas import (
    BasisItem,
    Cause,
    Event,
    Impression,
    PolicyInfo,
    Recommendation,
    RecommendedItem,
)

Op = tuple[Event | Impression, int]
"""A message of the batch in stream order, with its partition."""


class Trigger(NamedTuple):
    """What a list no event caused is drawn for (`consumers.republish`): the id its `rec_id` is
    made from, and the time it is ranked at."""

    event_id: str
    event_time: float


@dataclass
class Facts:
    """What the feedback of one batch did, for the metrics."""

    impressions: list[Impression] = field(default_factory=list)
    outcomes: list[Attributed] = field(default_factory=list)
    """Clicks, carts and purchases credited to a shown slot."""
    purchases: list[bool] = field(default_factory=list)
    """Every purchase: whether it followed a shown list (credited, or naming its list)."""
    ttfc: list[float] = field(default_factory=list)
    """Times from a new user's first event to their first purchase (s)."""
    replaced: list[int] = field(default_factory=list)
    """Impressions of each list a new list replaced."""
    decisions: list[Decision] = field(default_factory=list)


class Feedback:
    """Applies impressions and events to users' feedback and draws their lists."""

    def __init__(self, recommender: OnlineRecommender, keep_lists: bool = True) -> None:
        cfg = recommender.config
        self.recommender = recommender
        self.keep_lists = keep_lists
        """Whether users' records keep their last list's items (`consumers.republish`)."""
        self.k = cfg.k
        self.depth = cfg.depth()
        self.policy = cfg.policy()
        self.demotion = cfg.demotion()
        self.config = cfg.feedback()

    @staticmethod
    def split(ops: Sequence[Op]) -> tuple[list[Op], list[Op]]:
        """The ops up to each user's last event of the batch, and those after it."""
        last = {msg.user_id: j for j, (msg, _) in enumerate(ops) if isinstance(msg, Event)}
        before, after = [], []
        for j, op in enumerate(ops):
            (before if j <= last.get(op[0].user_id, -1) else after).append(op)
        return before, after

    def apply(self, ops: Sequence[Op], facts: Facts) -> None:
        for msg, partition in ops:
            if isinstance(msg, Impression):
                self._shown(msg, partition, facts)
            else:
                self._acted(msg, partition, facts)

    def decide(self, ev: Event | Trigger, recs: Recs, facts: Facts) -> Decision:
        """The user's list, drawn from `recs` (the ranked candidates, `depth` of them)."""
        rec = self.recommender
        fb = self._feedback(rec.users.get_or_create(recs.user_id, rec.users.partition_of(
            recs.user_id), ev.event_time))
        rec_id = make_rec_id(recs.user_id, ev.event_id, recs.model_version)
        counts = None  # (nothing unanswered: no candidate can be demoted, none is looked up)
        if self.demotion.on and len(fb.exposure):
            counts = fb.counts(np.fromiter(map(rec.catalog.index, recs.items), np.int64,
                                           len(recs.items)))
        scores = np.asarray(recs.scores, dtype=np.float64)
        if recs.reasons:  # a reserved slot's score may be below the next: lift it to sort
            scores = np.maximum.accumulate(scores[::-1])[::-1]
        d = decide(recs.items, scores, self.k, self.policy, rec_id, counts, self.demotion)
        if recs.reasons:  # a reserved item keeps its reason wherever the policy draws it
            why = {i: r for i, r in zip(recs.items, recs.reasons, strict=True) if r}
            d = replace(d, reasons=[why.get(i) for i in d.items])
        replaced = fb.published(rec_id, d.items if self.keep_lists else ())
        if replaced is not None:
            facts.replaced.append(replaced)
        facts.decisions.append(d)
        return d

    @staticmethod
    def message_fields(d: Decision) -> dict[str, Any]:
        """The `Recommendation` fields of a decision: items with their log, and the list's."""
        reasons = d.reasons or [None] * len(d.items)
        items = [RecommendedItem(i, s, j + 1, p, r, e, why) for j, (i, s, p, r, e, why)
                 in enumerate(zip(d.items, d.scores, d.propensities, d.ranks, d.explored,
                                  reasons, strict=True))]
        drawn = d.policy["name"] != "none"
        return {"items": items, "rec_id": d.rec_id, "policy": PolicyInfo(**d.policy),
                "candidate_scores": d.candidate_scores if drawn else None,
                "candidates": d.candidates if drawn else None}

    @staticmethod
    def message(ev: Event, cause: Cause, recs: Recs, d: Decision, now: float,
                basis: Sequence[str]) -> Recommendation:
        """The list as published: the decision with its log, what caused it, its basis."""
        return Recommendation(
            user_id=recs.user_id, **Feedback.message_fields(d), model_version=recs.model_version,
            source=recs.source, generated_at=now, cause=cause,
            basis=[BasisItem(item_id=i, event_type=ev.event_type if i == ev.item_id else None)
                   for i in basis])

    # -- internals

    def _feedback(self, h: UserHistory) -> UserFeedback:
        if h.feedback is None:  # a user with no event yet is one refold sees arrive
            h.feedback = UserFeedback.new(self.config, new_user=h.seq == 0)
        return h.feedback

    def _shown(self, imp: Impression, partition: int, facts: Facts) -> None:
        rec = self.recommender
        fb = self._feedback(rec.users.get_or_create(imp.user_id, partition, imp.shown_at))
        source = imp.source or "unknown"
        fb.shown((rec.catalog.index(it.item_id),
                  Slot(it.item_id, it.position, imp.shown_at, imp.rec_id, source,
                       bool(it.explored))) for it in imp.items)
        facts.impressions.append(imp)

    def _acted(self, ev: Event, partition: int, facts: Facts) -> None:
        rec = self.recommender
        fb = self._feedback(rec.users.get_or_create(ev.user_id, partition, ev.event_time))
        named = (ev.context or {}).get("rec_id")
        named = named if isinstance(named, str) else None
        hit, ttfc = fb.acted(rec.catalog.index(ev.item_id), ev.item_id, ev.event_type,
                             ev.event_time, named)
        if hit is not None:
            facts.outcomes.append(hit)
        if ttfc is not None:
            facts.ttfc.append(ttfc)
        if ev.event_type == "purchase":
            facts.purchases.append(hit is not None or named is not None)


def slot_of(position: int) -> str:
    """A position's bucket among `refold.core.metrics.SLOTS`.

    >>> [slot_of(p) for p in (1, 3, 5, 9, 20)]
    ['1', '3', '4-5', '6-10', '11+']
    """
    if position <= 3:
        return str(position)
    return "4-5" if position <= 5 else "6-10" if position <= 10 else "11+"


def record(facts: Facts) -> None:
    """A committed batch's feedback as metrics (no user or item ids in labels)."""
    for imp in facts.impressions:
        source = imp.source or "unknown"
        M.IMPRESSIONS.labels(source, imp.policy.name if imp.policy else "none").inc()
        for it in imp.items:
            M.IMPRESSION_SLOTS.labels(source, slot_of(it.position),
                                      "true" if it.explored else "false").inc()
    for hit in facts.outcomes:
        metric = {"click": M.IMPRESSION_CLICKS, "purchase": M.IMPRESSION_PURCHASES}.get(
            hit.event_type)
        if hit.first and metric is not None:
            metric.labels(hit.source, slot_of(hit.position),
                          "true" if hit.explored else "false").inc()
    for followed in facts.purchases:
        M.PURCHASES.labels("true" if followed else "false").inc()
    for seconds in facts.ttfc:
        M.TIME_TO_FIRST_CONVERSION.observe(seconds)
    for shown in facts.replaced:
        M.LIST_IMPRESSIONS.observe(shown)
    demoted = sum(d.demoted > 0 for d in facts.decisions)
    if demoted:
        M.EXPOSURE_DEMOTED.inc(demoted)
