"""Off-policy estimators against closed-form cases: a uniform logging policy, known propensities."""

from __future__ import annotations

import numpy as np
import pytest

from models.exploration import Policy, choose, position_matrix, rng_for
from models.ope import (
    LoggedList,
    MissingPropensities,
    OPEError,
    SupportError,
    dr,
    evaluate,
    ips,
    on_policy,
    snips,
)

EXAMINE = np.array([1.0, 0.63, 0.5])  # position bias 1 / log2(1 + position)
RELEVANCE = np.linspace(0.4, 0.05, 12)  # by candidate rank


def simulate(policy: Policy, n: int, seed: int, k: int = 6, scores=None) -> list[LoggedList]:
    """Lists drawn by `policy` over 12 candidates; clicks from a position-based model."""
    rng = np.random.default_rng(seed)
    s = np.linspace(1.0, 0.0, 12) if scores is None else scores
    logs = []
    for i in range(n):
        slate = choose(policy, s, k, rng_for(f"{seed}-{i}"))
        shown = slate.ranks[:3]
        clicks = (rng.random(3) < EXAMINE * RELEVANCE[shown]).astype(float)
        logs.append(LoggedList(s, policy, k, slate.ranks, slate.propensities, clicks))
    return logs


def truth(policy: Policy, k: int = 6) -> float:
    """CTR@3 of `policy` under the click model, from its exact position table."""
    P = position_matrix(policy, np.linspace(1.0, 0.0, 12), k, 3)
    return float(np.mean(EXAMINE * (RELEVANCE @ P)))


def test_hand_computed_ips_snips_and_dr() -> None:
    w = np.array([[4.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.5, 0.5]])
    r = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    assert ips(w, r).estimate == pytest.approx((4 + 2 + 1) / 8)
    assert snips(w, r).estimate == pytest.approx(0.5 * 5 / 5.5 + 0.5 * 2 / 3.5)
    q = np.full_like(r, 0.25)
    expect = (0.25 * 8 + (4 * 0.75 + 0 - 0) + (2 * 0.75) + (0.75 - 0.25) + (-0.125 - 0.125)) / 8
    assert dr(w, r, q, q).estimate == pytest.approx(expect)
    assert dr(w, r, np.zeros_like(r), np.zeros_like(r)).estimate == ips(w, r).estimate
    masked = ips(w, r, mask=np.array([[1, 1], [1, 1], [1, 0], [1, 0]], dtype=bool))
    assert masked.estimate == pytest.approx((4 + 2 + 1) / 6)


def test_the_ess_of_equal_weights_is_the_sample_and_falls_with_spread() -> None:
    r = np.zeros((100, 3))
    assert ips(np.ones((100, 3)), r).ess == pytest.approx(100)
    w = np.ones((100, 3))
    w[:50] = 3.0
    assert ips(w, r).ess == pytest.approx(200**2 / (50 * 9 + 50) / 1)


def test_a_uniform_logging_policy_closed_form() -> None:
    """All scores equal: Plackett-Luce is a uniform shuffle, every propensity 1/12, and the
    weight of the top-k target is 12 where the shown candidate is the target's, else 0."""
    flat = np.zeros(12)
    uniform = Policy("plackett_luce", temperature=1.0, candidates=12)
    logs = simulate(uniform, 200, seed=1, scores=flat)
    assert all(np.allclose(log.propensities, 1 / 12) for log in logs)
    est = {e.estimator: e for e in evaluate(logs, Policy("none"), estimators=("ips", "snips"))}
    hits = sum(float(log.rewards[j]) for log in logs for j in range(3) if log.ranks[j] == j)
    assert est["ips"].estimate == pytest.approx(12 * hits / (3 * 200))


@pytest.mark.slow
@pytest.mark.parametrize("target", [Policy("none"), Policy("plackett_luce", temperature=0.3),
                                    Policy("epsilon", epsilon=0.3)], ids=str)
def test_estimates_from_exploring_logs_recover_the_truth(target: Policy) -> None:
    logging = Policy("plackett_luce", temperature=0.5)
    logs = simulate(logging, 6000, seed=2)
    for est in evaluate(logs, target):
        assert est.ci_low <= truth(target) <= est.ci_high, est
        assert abs(est.estimate - truth(target)) < 0.1 * truth(target), est
        assert 0 < est.ess <= 6000


def test_logging_equals_target_gives_the_on_policy_rate() -> None:
    policy = Policy("epsilon", epsilon=0.2)
    logs = simulate(policy, 500, seed=3)
    est = {e.estimator: e for e in evaluate(logs, policy)}
    plain = on_policy(np.stack([log.rewards for log in logs]))
    assert est["ips"].estimate == pytest.approx(plain.estimate)
    assert est["snips"].estimate == pytest.approx(plain.estimate)
    assert est["ips"].ess == pytest.approx(500)
    # weights 1: DR is the rate plus the model's mean error over the logged and the same
    # policy's slots, which cancel only on average
    assert est["dr"].estimate == pytest.approx(plain.estimate, abs=0.01)


@pytest.mark.slow
def test_intervals_cover_the_truth_at_their_level() -> None:
    logging, target = Policy("epsilon", epsilon=0.3), Policy("none")
    covered = {"ips": 0, "snips": 0, "dr": 0}
    runs = 80
    for seed in range(runs):
        for est in evaluate(simulate(logging, 250, seed=100 + seed), target):
            covered[est.estimator] += est.ci_low <= truth(target) <= est.ci_high
    for name, c in covered.items():
        assert 0.88 <= c / runs <= 1.0, (name, c / runs)


def test_a_candidate_outside_the_logging_support_is_refused() -> None:
    logs = simulate(Policy("none"), 20, seed=4)
    with pytest.raises(SupportError, match="never shows"):
        evaluate(logs, Policy("epsilon", epsilon=0.1))
    # epsilon never shows a candidate above its rank except from the pool; Plackett-Luce does
    logs = simulate(Policy("epsilon", epsilon=0.2), 20, seed=5)
    with pytest.raises(SupportError):
        evaluate(logs, Policy("plackett_luce", temperature=0.5))
    evaluate(logs, Policy("none"))  # inside: fine


def test_a_candidate_reaching_beyond_the_logged_candidates_is_refused() -> None:
    logs = simulate(Policy("plackett_luce", temperature=0.3), 20, seed=7)  # 12 = 2k candidates
    evaluate(logs, Policy("plackett_luce", temperature=0.5, candidates=12))
    with pytest.raises(SupportError, match="never shows"):
        evaluate(logs, Policy("plackett_luce", temperature=0.3, candidates=20))
    # a log with fewer candidates than its policy asked for: the catalog ran out for both
    short = simulate(Policy("plackett_luce", temperature=0.3), 20, seed=8,
                     scores=np.linspace(1.0, 0.0, 8))
    evaluate(short, Policy("plackett_luce", temperature=0.3, candidates=20))


def test_lists_without_propensities_are_refused() -> None:
    logs = simulate(Policy("epsilon"), 5, seed=6)
    bare = LoggedList(logs[0].scores, logs[0].policy, 6, logs[0].ranks, None, logs[0].rewards)
    with pytest.raises(MissingPropensities, match="1 of 6"):
        evaluate([*logs, bare], Policy("none"))
    with pytest.raises(OPEError):
        evaluate(logs, Policy("none"), estimators=("magic",))
    with pytest.raises(OPEError):
        evaluate([], Policy("none"))
