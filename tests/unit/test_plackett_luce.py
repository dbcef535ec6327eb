"""Plackett-Luce position probabilities against full enumeration and against sampling."""

from __future__ import annotations

import numpy as np
import pytest

from models import plackett_luce as pl


def enumerate_marginals(w: np.ndarray, k: int) -> np.ndarray:
    """P(a at j) by summing over every ordered prefix (M^k terms: small cases only)."""
    w = np.asarray(w, dtype=float)
    P = np.zeros((len(w), k))

    def walk(prob: float, left: np.ndarray, j: int) -> None:
        if j == k:
            return
        total = left.sum()
        for a in np.flatnonzero(left):
            pa = prob * left[a] / total
            P[a, j] += pa
            rest = left.copy()
            rest[a] = 0.0
            walk(pa, rest, j + 1)

    walk(1.0, w.copy(), 0)
    return P


@pytest.mark.parametrize("temperature", [0.02, 0.1, 0.5, 3.0])
@pytest.mark.parametrize("m,k", [(3, 3), (6, 4), (7, 5)])
def test_marginals_equal_enumeration(m: int, k: int, temperature: float) -> None:
    rng = np.random.default_rng(m * 10 + k)
    z = -np.sort(rng.random(m))
    w = np.exp(z / temperature)
    live = int(np.count_nonzero(pl.normalized(w)))  # the lightest may fall below MIN_WEIGHT
    exact = enumerate_marginals(pl.normalized(w), min(k, live))
    got = pl.marginals(w, k)
    assert got.shape == (m, min(k, live))
    np.testing.assert_allclose(got, exact, rtol=1e-9, atol=1e-300)


def test_propensities_of_a_drawn_list_are_its_marginals() -> None:
    rng = np.random.default_rng(1)
    w = np.exp(-np.linspace(0, 1, 7) / 0.2)
    exact = enumerate_marginals(pl.normalized(w), 5)
    for _ in range(20):
        items = pl.sample(w, 5, rng)
        np.testing.assert_allclose(pl.propensities(w, items), exact[items, np.arange(5)],
                                   rtol=1e-9)


@pytest.mark.slow
def test_marginals_are_a_distribution_per_position_and_match_sampling() -> None:
    m, k, n = 40, 10, 40_000
    w = np.exp(-np.linspace(0, 1, m) / 0.15)
    P = pl.marginals(w, k)
    np.testing.assert_allclose(P.sum(axis=0), 1.0, atol=1e-9)
    assert np.all(P.sum(axis=1) <= 1.0 + 1e-9)
    rng = np.random.default_rng(7)
    counts = np.zeros((m, k))
    for _ in range(n):
        counts[pl.sample(w, k, rng), np.arange(k)] += 1
    # every cell within 5 standard errors of its exact probability
    se = np.sqrt(P * (1 - P) / n) + 1e-12
    assert np.all(np.abs(counts / n - P) <= 5 * se + 1e-4)


def test_sampling_is_reproducible_and_distinct() -> None:
    w = np.ones(10)
    a = pl.sample(w, 10, np.random.default_rng(3))
    b = pl.sample(w, 10, np.random.default_rng(3))
    assert a.tolist() == b.tolist()
    assert sorted(a.tolist()) == list(range(10))


def test_negligible_weights_are_outside_the_policy() -> None:
    w = np.array([1.0, 0.5, 1e-20, 0.0])
    P = pl.marginals(w, 3)
    assert P.shape == (4, 2)  # only two items can be drawn
    assert np.all(P[2:] == 0.0)
    rng = np.random.default_rng(0)
    assert all(set(pl.sample(w, 3, rng).tolist()) == {0, 1} for _ in range(50))


@pytest.mark.parametrize("bad", [[], [1.0, np.nan], [1.0, -1.0], [0.0, 0.0], [[1.0]]])
def test_bad_weights_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        pl.marginals(np.array(bad), 1)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.3, 2.0])
def test_propensities_of_longer_lists_equal_enumeration(temperature: float) -> None:
    m, k = 8, 6  # 20,160 ordered prefixes
    w = pl.normalized(np.exp(-np.sort(np.random.default_rng(5).random(m)) / temperature))
    exact = enumerate_marginals(w, k)
    rng = np.random.default_rng(2)
    for _ in range(10):
        items = pl.sample(w, k, rng)
        np.testing.assert_allclose(pl.propensities(w, items), exact[items, np.arange(k)],
                                   rtol=1e-9)


def candidate_weights(temperature: float, seed: int) -> np.ndarray:
    """PL weights of the top 40 of 2,000 dot-product scores, as the worker's lists have."""
    rng = np.random.default_rng(seed)
    scores = np.sort(rng.normal(size=(2000, 16)) @ rng.normal(size=16))[::-1][:40]
    z = (scores - scores[0]) / (scores[0] - scores[-1])
    return np.exp(z / temperature)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_cut_ends_leave_out_at_most_the_budget(temperature: float) -> None:
    """The node ranges: against the same quadrature over ranges wide enough to omit nothing
    (a budget of 1e-40), the default budget changes no propensity by more than its share."""
    rng = np.random.default_rng(3)
    for seed in range(10):
        w = candidate_weights(temperature, seed)
        items = pl.sample(w, 20, rng)
        wide = pl.propensities(w, items, budget=1e-40)
        cut = pl.propensities(w, items)
        assert np.all(np.abs(cut - wide) <= pl.BUDGET * wide)


@pytest.mark.parametrize("temperature,rtol", [(0.1, 1e-8), (0.3, 1e-6), (100.0, 3e-6)])
def test_propensities_of_20_of_40_match_the_marginals(temperature: float, rtol: float) -> None:
    """Lists of the worker's size: every position against `marginals` (one node range, no
    cut beyond 1e-13 absolute); the error budget is the step's (module docstring)."""
    rng = np.random.default_rng(4)
    for seed in range(5):
        w = candidate_weights(temperature, seed)
        P = pl.marginals(w, 20)
        items = pl.sample(w, 20, rng)
        np.testing.assert_allclose(pl.propensities(w, items), P[items, np.arange(20)],
                                   rtol=rtol, atol=1e-12)


def test_a_list_drawn_twice_has_the_same_bits() -> None:
    w = candidate_weights(0.1, 0)
    a = pl.draw(w, 20, np.random.default_rng(9))
    b = pl.draw(w, 20, np.random.default_rng(9))
    assert a[0].tolist() == b[0].tolist()
    assert a[1].tobytes() == b[1].tobytes()


@pytest.mark.parametrize("items", [[0, 0], [0, 3], [[0, 1]]])
def test_propensities_refuse_lists_no_draw_could_give(items) -> None:
    with pytest.raises(ValueError):
        pl.propensities(np.array([1.0, 0.5, 0.2, 0.0]), np.array(items))
