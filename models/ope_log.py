"""Logged impressions and outcome events joined into the lists off-policy evaluation reads.

An impression says which list (`rec_id`) a user was shown, when, and per shown item its position,
its rank among the list's candidates, its propensity, plus the list's policy, length and
candidate scores (the context a candidate policy is re-applied to). Events are the user's clicks,
carts and purchases. Each user's impressions and events are replayed in time order (an
impression before an event of the same second) through `models.attribution.Attribution`, so an
outcome counts for the slot it answers exactly as the worker's metrics count it; the result is
one `models.ope.LoggedList` per impression, rewards per shown position (1 if the slot got its
first `outcome`, else 0). A list that logged its candidates' ids also gets each candidate's
popularity when it was shown (`models.rescore.Popularity`, from every user's events), which
re-scored candidate policies rank by.

Inputs are duck-typed (`refold.core.schemas.Impression` and `Event` fit; so do the JSON
lines of an exported file read into objects with the same fields).

>>> from types import SimpleNamespace as O
>>> imp = O(user_id="u1", rec_id="r1", shown_at=10.0, list_size=3, source="collaborative",
...         policy={"name": "epsilon", "epsilon": 0.2}, candidate_scores=[3.0, 2.0, 1.0, 0.0],
...         items=[O(item_id="a", position=1, rank=0, propensity=0.8, explored=False),
...                O(item_id="d", position=2, rank=3, propensity=0.2, explored=True)])
>>> click = O(user_id="u1", item_id="d", event_type="click", event_time=12.0, context=None)
>>> [log] = logged_lists([imp], [click])
>>> log.ranks.tolist(), log.propensities.tolist(), log.rewards.tolist()
([0, 3], [0.8, 0.2], [0.0, 1.0])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from models.attribution import OUTCOMES, Attribution, Slot
from models.exploration import Policy, PolicyError
from models.ope import LoggedList
from models.rescore import Popularity


def logged_lists(
    impressions: Iterable[Any],
    events: Iterable[Any],
    outcome: str = "click",
    window: float = 3600.0,
) -> list[LoggedList]:
    """One `LoggedList` per impression (in time order per user), rewarded by `outcome`.

    An impression without propensities, ranks, policy or candidate scores yields a list with
    `propensities=None`, which the estimators refuse with a count of such lists.
    """
    if outcome not in OUTCOMES:
        raise PolicyError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    by_user: dict[str, list[tuple[float, int, Any]]] = defaultdict(list)
    for imp in impressions:
        by_user[imp.user_id].append((float(imp.shown_at), 0, imp))
    popularity = Popularity()
    for ev in events:
        popularity.add(ev.item_id, ev.event_type, float(ev.event_time))
        if ev.event_type in OUTCOMES and ev.user_id in by_user:
            by_user[ev.user_id].append((float(ev.event_time), 1, ev))
    out: list[tuple[float, LoggedList]] = []
    for stream in by_user.values():
        stream.sort(key=lambda x: (x[0], x[1]))
        out += _replay(stream, outcome, window)
    out.sort(key=lambda x: x[0])
    lists = []
    for t, log in out:  # in time order: each list's candidates as popular as they were then
        if log.candidates is not None:
            popularity.advance(t)
            log = replace(log, popularity=popularity.counts(log.candidates))
        lists.append(log)
    return lists


def _replay(stream: list[tuple[float, int, Any]], outcome: str,
            window: float) -> list[tuple[float, LoggedList]]:
    """One user's impressions and events in order: attribution marks the rewarded slots
    (slots are keyed by the impression's index and the item's index in it)."""
    attribution = Attribution(window, max_slots=10_000)
    shown: list[tuple[float, Any, np.ndarray]] = []
    latest: dict[str, int] = {}  # rec_id -> its latest impression
    for t, kind, msg in stream:
        if kind == 0:
            n = len(shown)
            shown.append((t, msg, np.zeros(len(msg.items))))
            latest[msg.rec_id] = n
            attribution.shown(Slot(it.item_id, j, t, str(n), "", False)
                              for j, it in enumerate(msg.items))
            continue
        hit = attribution.outcome(msg.item_id, msg.event_type, t, _named(msg, latest))
        if hit is not None and hit.first and msg.event_type == outcome:
            shown[int(hit.rec_id)][2][hit.position] = 1.0
    return [(t, _logged(imp, r)) for t, imp, r in shown]


def _named(ev: Any, latest: dict[str, int]) -> str | None:
    """The slot key of the list an event names in its context (its latest impression; "-1",
    which matches nothing, for a list never shown), None when it names none."""
    rec = (getattr(ev, "context", None) or {}).get("rec_id")
    if not isinstance(rec, str):
        return None
    return str(latest.get(rec, -1))


def _logged(imp: Any, rewards: np.ndarray) -> LoggedList:
    """The impression's shown slots in position order, as a `LoggedList`."""
    items = sorted(zip(imp.items, rewards, strict=True), key=lambda x: int(x[0].position))
    ranks = [getattr(it, "rank", None) for it, _ in items]
    props = [getattr(it, "propensity", None) for it, _ in items]
    scores = getattr(imp, "candidate_scores", None)
    policy = getattr(imp, "policy", None)
    k = getattr(imp, "list_size", None)
    # positions must be 1, 2, ... as the list logged them: a service that skipped a slot
    # showed items at positions their propensities do not describe
    contiguous = [int(it.position) for it, _ in items] == list(range(1, len(items) + 1))
    complete = None not in ranks and None not in props and scores and policy and k
    r = np.array([float(x) for _, x in items])
    if not (complete and contiguous):
        return LoggedList(np.zeros(0), Policy(), len(items), np.zeros(len(items), np.int64),
                          None, r)
    ids = getattr(imp, "candidates", None)
    return LoggedList(np.asarray(scores, dtype=np.float64), _policy(policy), int(k),
                      np.asarray(ranks, dtype=np.int64), np.asarray(props, dtype=np.float64), r,
                      tuple(ids) if ids and len(ids) == len(scores) else None)


def _policy(d: Any) -> Policy:
    """A logged policy description (a dict, or an object with its fields) as a `Policy`."""
    get = d.get if isinstance(d, dict) else lambda k: getattr(d, k, None)
    fields = {k: get(k) for k in ("name", "epsilon", "temperature", "candidates")}
    return Policy.from_description({k: v for k, v in fields.items() if v is not None})
