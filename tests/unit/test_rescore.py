"""Re-scored candidate policies: their position tables, their draws, and off-policy estimates
of them from logs drawn by another ranking, against the exact value under a click model."""

from __future__ import annotations

import numpy as np
import pytest

from models.exploration import Policy, choose, position_matrix, rng_for
from models.ope import LoggedList, MissingPropensities, evaluate
from models.rescore import Popularity, Rescore

EXAMINE = np.array([1.0, 0.63, 0.5])  # position bias 1 / log2(1 + position)
IDS = tuple(f"i{n}" for n in range(12))
SCORES = np.linspace(1.0, 0.0, 12)
LOGGING = Policy("plackett_luce", temperature=0.5)


def context(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One list's candidates' popularity, and their click probabilities: the logged ranking
    knows a little, popularity a lot more."""
    popularity = rng.poisson(rng.uniform(0, 40, 12)).astype(float)
    relevance = 0.05 + 0.15 * SCORES + 0.3 * np.log1p(popularity) / np.log1p(80)
    return popularity, relevance


def simulate(n: int, seed: int) -> tuple[list[LoggedList], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    logs, relevances = [], []
    for i in range(n):
        popularity, relevance = context(rng)
        slate = choose(LOGGING, SCORES, 6, rng_for(f"{seed}-{i}"))
        shown = slate.ranks[:3]
        clicks = (rng.random(3) < EXAMINE * relevance[shown]).astype(float)
        logs.append(LoggedList(SCORES, LOGGING, 6, slate.ranks, slate.propensities, clicks,
                               IDS, popularity))
        relevances.append(relevance)
    return logs, relevances


def truth(logs: list[LoggedList], relevances: list[np.ndarray], target: Policy,
          rescore: Rescore) -> float:
    """CTR@3 of the re-scored policy on these contexts, from its exact position tables."""
    per_list = [np.mean(EXAMINE * (rel @ rescore.table(target, log.scores, log.popularity,
                                                       log.k, 3)))
                for log, rel in zip(logs, relevances, strict=True)]
    return float(np.mean(per_list))


def test_the_logged_weights_alone_give_the_logged_table() -> None:
    pop = np.arange(12.0)
    for policy in (Policy("none"), LOGGING, Policy("epsilon", epsilon=0.3)):
        assert np.allclose(Rescore().table(policy, SCORES, pop, 6, 3),
                           position_matrix(policy, SCORES, 6, 3))


def test_the_table_is_what_the_draws_do() -> None:
    """Draw frequencies of each (logged candidate, position) match the table."""
    rescore, pop = Rescore(score=0.5, popularity=1.0), np.array(
        [0, 50, 3, 3, 9, 0, 1, 20, 2, 0, 7, 4], dtype=float)
    table = rescore.table(LOGGING, SCORES, pop, 6, 3)
    counts = np.zeros((12, 3))
    n = 6000
    for i in range(n):
        items, _ = rescore.draw(LOGGING, IDS, SCORES, pop, 6, f"r{i}")
        for j, item in enumerate(items[:3]):
            counts[IDS.index(item), j] += 1
    assert np.abs(counts / n - table).max() < 0.02
    assert np.allclose(table.sum(axis=0), 1.0)
    assert rescore.draw(LOGGING, IDS, SCORES, pop, 6, "same") == \
        rescore.draw(LOGGING, IDS, SCORES, pop, 6, "same")  # seeded by the list's id


@pytest.mark.slow
@pytest.mark.parametrize(("target", "rescore"), [
    (Policy("none"), Rescore(score=0.0, popularity=1.0)),
    (Policy("plackett_luce", temperature=0.2), Rescore(score=1.0, popularity=1.0)),
    (Policy("epsilon", epsilon=0.2), Rescore(score=1.0, popularity=0.6)),
], ids=["popularity-only", "blend-1", "blend-0.6-epsilon"])
def test_estimates_of_a_re_scored_policy_recover_the_truth(target: Policy,
                                                           rescore: Rescore) -> None:
    logs, relevances = simulate(6000, seed=3)
    value = truth(logs, relevances, target, rescore)
    logged = truth(logs, relevances, LOGGING, Rescore())
    assert abs(value - logged) > 0.04 * logged, (value, logged)  # something to find
    for est in evaluate(logs, target, rescore=rescore):
        assert est.ci_low <= value <= est.ci_high, est
        assert abs(est.estimate - value) < 0.1 * value, est


def test_lists_without_candidate_ids_are_refused_for_re_scoring() -> None:
    logs, _ = simulate(20, seed=4)
    bare = [LoggedList(x.scores, x.policy, x.k, x.ranks, x.propensities, x.rewards)
            for x in logs]
    evaluate(bare, Policy("none"))  # the logged ranking needs no ids
    with pytest.raises(MissingPropensities, match="candidate ids"):
        evaluate(bare, Policy("none"), rescore=Rescore(popularity=1.0))


def test_popularity_counts_only_earlier_events_of_the_popular_types() -> None:
    pop = Popularity()
    for item, kind, t in [("a", "click", 3.0), ("a", "purchase", 1.0), ("b", "view", 0.5),
                          ("b", "add_to_cart", 2.0), ("a", "click", 2.0)]:
        pop.add(item, kind, t)
    pop.advance(2.0)
    assert pop.counts(["a", "b", "c"]).tolist() == [1.0, 0.0, 0.0]
    pop.advance(1.0)  # time does not go back
    pop.advance(3.5)
    assert pop.counts(["a", "b"]).tolist() == [3.0, 1.0]


def test_rejects_weights_that_rank_nothing() -> None:
    with pytest.raises(ValueError, match="weights"):
        Rescore(score=0.0, popularity=0.0)
    with pytest.raises(ValueError, match="weights"):
        Rescore(score=-1.0, popularity=1.0)
