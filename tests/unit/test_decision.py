"""A list's decision: demotion, then the policy; the same rec_id gives the same list."""

from __future__ import annotations

import numpy as np
import pytest

from models.decision import Demotion, decide
from models.exploration import Policy, position_matrix
from models.weights import ModelError

ITEMS = [f"i{k}" for k in range(30)]
SCORES = np.linspace(3.0, 0.0, 30)


@pytest.mark.parametrize("policy", [Policy(), Policy("epsilon", epsilon=0.3),
                                    Policy("plackett_luce", temperature=0.2)], ids=str)
def test_the_logged_context_reproduces_the_propensities(policy: Policy) -> None:
    d = decide(ITEMS, SCORES, 10, policy, "rec-1")
    again = decide(ITEMS, SCORES, 10, policy, "rec-1")
    assert d == again
    assert len(d.items) == 10 == len(set(d.items))
    P = position_matrix(Policy.from_description(d.policy), np.array(d.candidate_scores), 10)
    np.testing.assert_allclose(d.propensities, P[d.ranks, np.arange(10)], rtol=1e-9)
    assert [ITEMS[r] for r in d.ranks] == d.items  # no demotion: ranks index the candidates
    assert d.explored == [r > j for j, r in enumerate(d.ranks)]


def test_demotion_moves_unanswered_items_down_before_the_draw() -> None:
    exposure = np.zeros(30, dtype=int)
    exposure[:3] = [5, 2, 3]
    d = decide(ITEMS, SCORES, 5, Policy(), "r", exposure, Demotion(min_count=3, strength=0.5))
    assert d.demoted == 2
    assert d.items == ["i1", "i3", "i4", "i5", "i6"]  # i0 and i2 sank, i1 (2 < 3) stayed
    assert d.candidate_scores == sorted(d.candidate_scores, reverse=True)
    off = decide(ITEMS, SCORES, 5, Policy(), "r", exposure, Demotion(strength=0.0))
    assert off.items == ITEMS[:5] and off.demoted == 0


def test_short_and_mismatched_candidates() -> None:
    d = decide(ITEMS[:3], SCORES[:3], 10, Policy("plackett_luce"), "r")
    assert sorted(d.items) == ITEMS[:3]
    with pytest.raises(ModelError):
        decide(ITEMS[:3], SCORES[:4], 2, Policy(), "r")
    with pytest.raises(ModelError):
        Demotion(min_count=0)
