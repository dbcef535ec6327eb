"""Impressions and events joined into logged lists, as the estimators read them."""

from __future__ import annotations

from types import SimpleNamespace as O

import numpy as np
import pytest

from models.exploration import Policy, choose, rng_for
from models.ope import MissingPropensities, evaluate
from models.ope_log import logged_lists

SCORES = [3.0, 2.5, 2.0, 1.0, 0.5, 0.0]
POLICY = {"name": "epsilon", "epsilon": 0.3, "candidates": 6}


def impression(user: str, rec: str, t: float, items: list[str], ranks=None, props=None,
               positions=None, **over) -> O:
    ranks = ranks or list(range(len(items)))
    props = props or [1.0] * len(items)
    positions = positions or list(range(1, len(items) + 1))
    fields = {"user_id": user, "rec_id": rec, "shown_at": t, "list_size": 3,
              "policy": POLICY, "candidate_scores": SCORES, "source": "collaborative",
              "items": [O(item_id=i, position=p, rank=r, propensity=q, explored=False)
                        for i, p, r, q in zip(items, positions, ranks, props, strict=True)]}
    return O(**{**fields, **over})


def event(user: str, item: str, kind: str, t: float, rec: str | None = None) -> O:
    return O(user_id=user, item_id=item, event_type=kind, event_time=t,
             context={"rec_id": rec} if rec else None)


def test_clicks_within_the_window_reward_their_slot_once() -> None:
    imps = [impression("u1", "r1", 100.0, ["a", "b", "c"]),
            impression("u2", "r2", 100.0, ["a", "b", "c"])]
    evs = [event("u1", "b", "click", 150.0), event("u1", "b", "click", 160.0),
           event("u1", "c", "click", 100.0 + 7200), event("u2", "a", "purchase", 120.0),
           event("u3", "a", "click", 120.0)]
    logs = logged_lists(imps, evs, window=3600.0)
    assert [log.rewards.tolist() for log in logs] == [[0, 1, 0], [0, 0, 0]]
    buys = logged_lists(imps, evs, outcome="purchase")
    assert [log.rewards.tolist() for log in buys] == [[0, 0, 0], [1, 0, 0]]


def test_a_later_impression_of_the_item_takes_the_click_unless_the_event_names_its_list() -> None:
    imps = [impression("u1", "r1", 0.0, ["a", "b", "c"]),
            impression("u1", "r2", 10.0, ["b", "a", "c"])]
    logs = logged_lists(imps, [event("u1", "a", "click", 20.0)])
    assert [log.rewards.tolist() for log in logs] == [[0, 0, 0], [0, 1, 0]]
    logs = logged_lists(imps, [event("u1", "a", "click", 20.0, rec="r1")])
    assert [log.rewards.tolist() for log in logs] == [[1, 0, 0], [0, 0, 0]]
    logs = logged_lists(imps, [event("u1", "a", "click", 20.0, rec="r-never-shown")])
    assert all(log.rewards.sum() == 0 for log in logs)


def test_an_impression_comes_before_an_event_of_the_same_second() -> None:
    logs = logged_lists([impression("u1", "r1", 5.0, ["a"])], [event("u1", "a", "click", 5.0)])
    assert logs[0].rewards.tolist() == [1.0]


def test_incomplete_impressions_are_refused_by_the_estimators() -> None:
    imps = [impression("u1", "r1", 0.0, ["a", "b"], props=[1.0, 1.0]),
            impression("u2", "r2", 0.0, ["a", "b"], positions=[1, 3]),
            impression("u3", "r3", 0.0, ["a", "b"], candidate_scores=None)]
    logs = logged_lists(imps, [])
    assert [log.propensities is None for log in logs] == [False, True, True]
    with pytest.raises(MissingPropensities, match="2 of 3"):
        evaluate(logs, Policy("none"))


def test_a_logged_exploration_policy_evaluates_end_to_end() -> None:
    """Lists drawn by epsilon, clicks from a known model: the top-3 target's CTR@3 comes out."""
    rng = np.random.default_rng(0)
    examine, relevance = np.array([1.0, 0.63, 0.5]), np.array([0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    logging = Policy.from_description(POLICY)
    imps, evs = [], []
    for n in range(4000):
        s = choose(logging, np.array(SCORES), 3, rng_for(f"r{n}"))
        names = [f"i{r}" for r in s.ranks]
        imps.append(impression(f"u{n}", f"r{n}", float(n), names, s.ranks.tolist(),
                               s.propensities.tolist()))
        for j, r in enumerate(s.ranks):
            if rng.random() < examine[j] * relevance[r]:
                evs.append(event(f"u{n}", names[j], "click", n + 1.0))
    truth = float(np.mean(examine * relevance[:3]))
    for est in evaluate(logged_lists(imps, evs), Policy("none")):
        assert est.ci_low <= truth <= est.ci_high
