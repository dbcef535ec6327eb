"""Plackett-Luce ranking: sampling, and the exact probability of each item at each position.

A Plackett-Luce (PL) ranking with positive weights w draws the first item with probability
w_a / W, the next among the rest in proportion to theirs, and so on. It is the same as ordering
by `log w_a + Gumbel noise` (the Gumbel-top-k trick, `sample`) and as an *exponential race*:
item a arrives at T_a ~ Exp(w_a), and the ranking is the order of arrival. The race gives the
marginal probability that item a lands at position j (1-based) as a one-dimensional integral:

    P(a at j) = ∫₀^∞ w_a e^(-w_a t) · PB_{j-1}(t) dt,

where PB_{j-1}(t) is the probability that exactly j-1 of the other items arrived before t (a
Poisson-binomial law with success probabilities 1 - e^(-w_b t)). No closed form exists beyond
position 1 (P(a at 1) = w_a / W), and summing over prefixes costs M^(j-1) terms. Substituting
t = e^s makes the integrand decay doubly exponentially on the right and exponentially on the left,
which is where the trapezoidal rule converges geometrically (sinc quadrature): `STEP` = 0.25 gives
relative errors below 1e-9 against full enumeration (`tests/unit/test_plackett_luce.py`), with
80-180 nodes for the weight ranges a temperature produces (0.3 would save a fifth of them for
errors near 1e-7).

The Poisson-binomial coefficients of the other items are products of prefix and suffix
polynomials truncated to the K positions needed (no division, so no cancellation), compiled
with numba: `marginals` (every item at every position, for off-policy evaluation) costs
O(nodes · M · K²), `propensities` (only the positions a drawn list used, for logging) costs
O(nodes · M · K).

>>> w = np.array([4.0, 2.0, 1.0, 1.0])
>>> P = marginals(w, 2)
>>> np.round(P[:, 0], 6).tolist()          # position 1: w / W
[0.5, 0.25, 0.125, 0.125]
>>> round(float(P[0, 1]), 6)               # a second: 2/8·4/6 + 1/8·4/7 + 1/8·4/7
0.309524
>>> np.allclose(P.sum(axis=0), 1.0)        # every position is filled by someone
True
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.errors import ModelError

STEP = 0.25
"""Trapezoid step in s = log t; the relative error falls like exp(-π² / STEP)."""
LEFT_MASS = 1e-13
"""The integral is cut where at most this share of any position's probability is left out."""
MIN_WEIGHT = 1e-12
"""Items lighter than this share of the heaviest are outside the policy (never drawn, zero
propensity): keeps the quadrature range bounded whatever the temperature."""


def normalized(weights: np.ndarray) -> np.ndarray:
    """Weights scaled so the largest is 1, with those below `MIN_WEIGHT` set to 0."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ModelError("weights must be a non-empty 1-D array")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.max() <= 0:
        raise ModelError("weights must be finite, non-negative and not all zero")
    w = w / w.max()
    return np.where(w >= MIN_WEIGHT, w, 0.0)


def sample(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A PL draw of min(k, items with weight) distinct indices, first position first."""
    return draw(weights, k, rng)[0]


def draw(weights: np.ndarray, k: int, rng: np.random.Generator
         ) -> tuple[np.ndarray, np.ndarray]:
    """`sample` and the drawn list's `propensities`, in one compiled pass."""
    w = normalized(weights)
    k = min(int(k), int(np.count_nonzero(w)))
    noise = rng.gumbel(size=len(w))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    return _draw(w, k, noise, _nodes(w, k), STEP)


def marginals(weights: np.ndarray, k: int) -> np.ndarray:
    """(M, k) matrix: entry [a, j] is the probability that item a is at position j + 1."""
    w = normalized(weights)
    k = min(int(k), int(np.count_nonzero(w)))
    s = _nodes(w, k)
    return _marginals(w, k, s, STEP)


def propensities(weights: np.ndarray, items: np.ndarray) -> np.ndarray:
    """P(items[j] at position j + 1) for each j: the propensities of one drawn list."""
    w = normalized(weights)
    items = np.asarray(items, dtype=np.int64)
    if len(items) == 0:
        return np.zeros(0)
    return _propensities(w, items, _nodes(w, len(items)), STEP)


def _nodes(w: np.ndarray, k: int) -> np.ndarray:
    """Quadrature nodes s (t = e^s) covering positions 1..k to `LEFT_MASS`.

    Left end: below t0 the integrand of position j >= 2 is at most (W t)^j, so t0 = ε^(1/2) / W
    leaves out less than ε (position 1 is done in closed form). Right end: once the k heaviest
    other items have all arrived no position <= k is free, and by t1 = 40 / w_(k+1) that has
    failed with probability below k·e^-40 (an absolute error, whatever the item).
    """
    live = np.sort(w[w > 0])[::-1]
    W = float(live.sum())
    t0 = math.sqrt(LEFT_MASS) / W
    t1 = 40.0 / float(live[min(k, len(live) - 1)])
    lo, hi = math.log(t0), math.log(t1)
    n = math.ceil((hi - lo) / STEP) + 1
    return lo + STEP * np.arange(n)


@njit(cache=True, nogil=True)
def _poly_tables(
    w: np.ndarray, t: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival probabilities q = e^(-w t) (not yet), and the prefix / suffix products of
    (q_b + p_b z) over items < a / > a, truncated to degree k - 1."""
    m = w.shape[0]
    q = np.exp(-w * t)
    p = -np.expm1(-w * t)
    pre = np.zeros((m + 1, k))
    suf = np.zeros((m + 1, k))
    pre[0, 0] = 1.0
    suf[m, 0] = 1.0
    for a in range(m):
        for d in range(k):
            pre[a + 1, d] = pre[a, d] * q[a] + (pre[a, d - 1] * p[a] if d > 0 else 0.0)
    for a in range(m - 1, -1, -1):
        for d in range(k):
            suf[a, d] = suf[a + 1, d] * q[a] + (suf[a + 1, d - 1] * p[a] if d > 0 else 0.0)
    return q, pre, suf


@njit(cache=True, nogil=True)
def _marginals(w: np.ndarray, k: int, s: np.ndarray, h: float) -> np.ndarray:
    m = w.shape[0]
    out = np.zeros((m, k))
    for node in range(s.shape[0]):
        t = math.exp(s[node])
        q, pre, suf = _poly_tables(w, t, k)
        for a in range(m):
            if w[a] == 0.0:
                continue
            dens = h * w[a] * t * q[a]  # w_a e^(-w_a t) dt, with dt = t ds
            for j in range(1, k):
                c = 0.0
                for i in range(j + 1):  # coefficient of z^j in pre[a] · suf[a + 1]
                    c += pre[a, i] * suf[a + 1, j - i]
                out[a, j] += dens * c
    total = w.sum()
    for a in range(m):
        out[a, 0] = w[a] / total
    return out


@njit(cache=True, nogil=True)
def _draw(w: np.ndarray, k: int, noise: np.ndarray, s: np.ndarray, h: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel-top-k (the k largest perturbed log-weights, in order, are a PL ranking) over the
    items with weight, then the drawn list's propensities."""
    keys = np.full(w.shape[0], -np.inf)
    for a in range(w.shape[0]):
        if w[a] > 0.0:
            keys[a] = math.log(w[a]) + noise[a]
    items = np.argsort(-keys, kind="mergesort")[:k].astype(np.int64)
    return items, _propensities(w, items, s, h)


@njit(cache=True, nogil=True)
def _propensities(w: np.ndarray, items: np.ndarray, s: np.ndarray, h: float) -> np.ndarray:
    k = items.shape[0]
    out = np.zeros(k)
    for node in range(s.shape[0]):
        t = math.exp(s[node])
        q, pre, suf = _poly_tables(w, t, k)
        for j in range(1, k):
            a = items[j]
            c = 0.0
            for i in range(j + 1):
                c += pre[a, i] * suf[a + 1, j - i]
            out[j] += h * w[a] * t * q[a] * c
    out[0] = w[items[0]] / w.sum()
    return out
