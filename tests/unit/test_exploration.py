"""Exploration policies: deterministic draws from rec_id, exact position propensities."""

from __future__ import annotations

import numpy as np
import pytest

from models.exploration import (
    Policy,
    PolicyError,
    choose,
    make_rec_id,
    pl_weights,
    position_matrix,
    rng_for,
)

SCORES = np.sort(np.random.default_rng(0).normal(size=30))[::-1]
POLICIES = [
    Policy("none"),
    Policy("epsilon", epsilon=0.15),
    Policy("epsilon", epsilon=0.6, candidates=12),  # pool of 2 for k=10: it runs out
    Policy("plackett_luce", temperature=0.1),
    Policy("plackett_luce", temperature=1.0, candidates=25),
]


def frequencies(policy: Policy, k: int, n: int) -> np.ndarray:
    counts = np.zeros((len(SCORES), k))
    for i in range(n):
        s = choose(policy, SCORES, k, rng_for(f"r{i}"))
        counts[s.ranks, np.arange(len(s.ranks))] += 1
    return counts / n


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_the_position_matrix_is_what_the_policy_draws(policy: Policy) -> None:
    k, n = 10, 6000
    P = position_matrix(policy, SCORES, k)
    assert P.shape == (len(SCORES), k)
    np.testing.assert_allclose(P.sum(axis=0), 1.0, atol=1e-9)
    se = np.sqrt(P * (1 - P) / n)
    assert np.all(np.abs(frequencies(policy, k, n) - P) <= 5 * se + 2e-3)


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_logged_propensities_are_the_matrix_entries(policy: Policy) -> None:
    P = position_matrix(policy, SCORES, 8)
    for i in range(30):
        s = choose(policy, SCORES, 8, rng_for(f"x{i}"))
        np.testing.assert_allclose(s.propensities, P[s.ranks, np.arange(8)], rtol=1e-9)
        assert len(set(s.ranks.tolist())) == 8
        assert np.all(s.ranks < policy.depth(8))


def test_the_same_rec_id_draws_the_same_list_and_others_differ() -> None:
    policy = Policy("plackett_luce", temperature=0.5)
    rec = make_rec_id("u1", "e1", 4)
    a, b = (choose(policy, SCORES, 10, rng_for(rec)) for _ in range(2))
    assert a.ranks.tolist() == b.ranks.tolist()
    assert a.propensities.tolist() == b.propensities.tolist()
    others = {tuple(choose(policy, SCORES, 10, rng_for(make_rec_id("u1", f"e{i}", 4))).ranks)
              for i in range(20)}
    assert len(others) > 10
    assert make_rec_id("u1", "e1", 5) != rec and make_rec_id("u2", "e1", 4) != rec


def test_none_is_the_top_k_with_propensity_one() -> None:
    s = choose(Policy("none"), SCORES, 5, rng_for("r"))
    assert s.ranks.tolist() == [0, 1, 2, 3, 4]
    assert s.propensities.tolist() == [1.0] * 5
    assert not s.explored.any()


def test_explored_means_placed_above_its_rank() -> None:
    s = choose(Policy("epsilon", epsilon=1.0), SCORES, 4, rng_for("r"))
    assert np.all(s.ranks >= 4) and s.explored.all()  # every slot from the pool
    s = choose(Policy("epsilon", epsilon=0.0), SCORES, 4, rng_for("r"))
    assert s.ranks.tolist() == [0, 1, 2, 3] and not s.explored.any()


def test_epsilon_closed_form_for_the_first_slots() -> None:
    eps, k = 0.2, 5
    P = position_matrix(Policy("epsilon", epsilon=eps, candidates=15), SCORES, k)
    assert P[0, 0] == pytest.approx(1 - eps)
    assert P[0, 1] == pytest.approx(eps * (1 - eps))  # pushed down by one explored slot
    assert P[1, 1] == pytest.approx((1 - eps) ** 2)
    assert P[10, 3] == pytest.approx(eps / 10)  # a pool item at any slot: ε / |pool|
    assert np.all(P[15:] == 0.0)  # beyond the candidates


def test_short_candidate_lists_give_short_slates() -> None:
    for policy in POLICIES:
        s = choose(policy, SCORES[:3], 10, rng_for("r"))
        assert sorted(s.ranks.tolist()) == [0, 1, 2]
        assert position_matrix(policy, SCORES[:3], 10).shape == (3, 3)
    assert len(choose(Policy("epsilon"), SCORES[:0], 10, rng_for("r")).ranks) == 0


def test_temperature_is_scale_free() -> None:
    w = pl_weights(SCORES[:20], 0.3)
    np.testing.assert_allclose(pl_weights(SCORES[:20] * 7.0 + 100.0, 0.3), w)
    assert pl_weights(np.full(5, 2.0), 0.3).tolist() == [1.0] * 5


def test_descriptions_round_trip() -> None:
    for policy in POLICIES:
        assert Policy.from_description(policy.describe()) == policy
    assert Policy("none").describe() == {"name": "none"}


@pytest.mark.parametrize("kwargs", [{"name": "greedy"}, {"epsilon": 1.5}, {"temperature": 0},
                                    {"candidates": -1}])
def test_bad_policies_are_refused(kwargs) -> None:
    with pytest.raises(PolicyError):
        Policy(**kwargs)


def test_unsorted_or_infinite_scores_are_refused() -> None:
    with pytest.raises(PolicyError):
        choose(Policy("epsilon"), np.array([1.0, 2.0]), 1, rng_for("r"))
    with pytest.raises(PolicyError):
        position_matrix(Policy("epsilon"), np.array([np.inf, 1.0]), 1)


@pytest.mark.parametrize("policy", POLICIES, ids=str)
def test_the_first_positions_alone_equal_those_of_the_whole_list(policy: Policy) -> None:
    full = position_matrix(policy, SCORES, 10)
    np.testing.assert_allclose(position_matrix(policy, SCORES, 10, positions=3), full[:, :3],
                               rtol=1e-9, atol=1e-15)
