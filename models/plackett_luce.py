"""Plackett-Luce ranking: sampling, and the exact probability of each item at each position.

A Plackett-Luce (PL) ranking with positive weights w draws the first item with probability
w_a / W, the next among the rest in proportion to theirs, and so on. It is the same as ordering
by `log w_a + Gumbel noise` (the Gumbel-top-k trick, `sample`) and as an *exponential race*:
item a arrives at T_a ~ Exp(w_a), and the ranking is the order of arrival. The race gives the
marginal probability that item a lands at position j (1-based) as a one-dimensional integral:

    P(a at j) = ∫₀^∞ w_a e^(-w_a t) · PB_{j-1}(t) dt,

where PB_{j-1}(t) is the probability that exactly j-1 of the other items arrived before t (a
Poisson-binomial law with success probabilities 1 - e^(-w_b t)). No closed form exists beyond
the first two positions (P(a at 1) = w_a / W; P(a at 2) sums over the first item), and summing
over prefixes costs M^(j-1) terms. Substituting t = e^s makes the integrand decay doubly
exponentially on the right and exponentially on the left, which is where the trapezoidal rule
converges geometrically (sinc quadrature). With `STEP` = 0.25 the relative error against full
enumeration is below 1e-9 for small lists (`tests/unit/test_plackett_luce.py`); for 20 of 40
candidates it is ~3e-9 at the default temperature 0.1 and grows as the weights flatten (3e-7
at T = 0.3, 1.5e-6 when all weights are equal), measured against a quadrature of step 0.05.

The Poisson-binomial coefficients of the other items are products of prefix and suffix
polynomials truncated to the positions needed (no division, so no cancellation), compiled
with numba. `marginals` (every item at every position, for off-policy evaluation) costs
O(nodes · M · K²) over one node range. `propensities` (only the positions a drawn list used,
for logging: every list the worker publishes) integrates each position over its own range:
the ends are cut where the omitted nodes sum to at most `BUDGET` times a lower bound of that
propensity (the probability of the drawn prefix itself), so the cut costs a relative 1e-8 at
most, and each node's polynomials stop at the highest position still being integrated there.

>>> w = np.array([4.0, 2.0, 1.0, 1.0])
>>> P = marginals(w, 2)
>>> np.round(P[:, 0], 6).tolist()          # position 1: w / W
[0.5, 0.25, 0.125, 0.125]
>>> round(float(P[0, 1]), 6)               # a second: 2/8·4/6 + 1/8·4/7 + 1/8·4/7
0.309524
>>> np.allclose(P.sum(axis=0), 1.0)        # every position is filled by someone
True
>>> items = np.array([1, 0, 3])             # a drawn list: its positions' probabilities
>>> np.allclose(propensities(w, items), marginals(w, 3)[items, [0, 1, 2]], rtol=1e-9)
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
BUDGET = 1e-8
"""`propensities` cuts each integral where the nodes left out sum to at most this share of a
lower bound of the propensity (see `_ranges`)."""
MIN_WEIGHT = 1e-12
"""Items lighter than this share of the heaviest are outside the policy (never drawn, zero
propensity): keeps the quadrature range bounded whatever the temperature."""


def normalized(weights: np.ndarray) -> np.ndarray:
    """Weights scaled so the largest is 1, with those below `MIN_WEIGHT` set to 0."""
    w = np.ascontiguousarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ModelError("weights must be a non-empty 1-D array")
    out = _normalized(w, MIN_WEIGHT)
    if out is None:
        raise ModelError("weights must be finite, non-negative and not all zero")
    return out


@njit(cache=True, nogil=True)
def _normalized(w: np.ndarray, floor: float) -> np.ndarray | None:
    """`normalized` in one pass (None: a weight is not finite or negative, or all are 0)."""
    top = 0.0
    for x in w:
        if not (0.0 <= x < np.inf):
            return None
        top = max(top, x)
    if top <= 0.0:
        return None
    out = np.empty_like(w)
    for i in range(w.shape[0]):
        x = w[i] / top
        out[i] = x if x >= floor else 0.0
    return out


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
    return _draw(w, k, noise, STEP, BUDGET)


def marginals(weights: np.ndarray, k: int) -> np.ndarray:
    """(M, k) matrix: entry [a, j] is the probability that item a is at position j + 1."""
    w = normalized(weights)
    k = min(int(k), int(np.count_nonzero(w)))
    s = _nodes(w, k)
    return _marginals(w, k, s, STEP)


def propensities(weights: np.ndarray, items: np.ndarray, budget: float = BUDGET) -> np.ndarray:
    """P(items[j] at position j + 1) for each j: the propensities of one drawn list (`budget`:
    the relative share each integral's cut ends may leave out)."""
    w = normalized(weights)
    items = np.asarray(items, dtype=np.int64)
    if len(items) == 0:
        return np.zeros(0)
    if items.ndim != 1 or len(set(items.tolist())) < len(items) or np.any(w[items] == 0.0):
        raise ModelError("a drawn list holds distinct items of positive weight")
    return _propensities(w, items, STEP, budget)


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
def _draw(w: np.ndarray, k: int, noise: np.ndarray, h: float, budget: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel-top-k (the k largest perturbed log-weights, in order, are a PL ranking) over the
    items with weight, then the drawn list's propensities."""
    keys = np.full(w.shape[0], -np.inf)
    for a in range(w.shape[0]):
        if w[a] > 0.0:
            keys[a] = math.log(w[a]) + noise[a]
    items = np.argsort(-keys, kind="mergesort")[:k].astype(np.int64)
    return items, _propensities(w, items, h, budget)


@njit(cache=True, nogil=True)
def _propensities(w: np.ndarray, items: np.ndarray, h: float, budget: float) -> np.ndarray:
    """P(items[j] at j + 1): positions 1 and 2 in closed form, the others by quadrature on
    the lattice s = n·h, each over its own node range (`_ranges`).

    The weights are reordered: the drawn items first, in drawn order, then the other items
    with weight. The prefix product of the first j factors (q + p z) is then the drawn
    prefix's, and the suffix one after position j is the rest of the list times the product
    R of the undrawn items, so a node costs O((M + K) · degree) instead of O(M · K).
    """
    k = items.shape[0]
    out = np.zeros(k)
    v, rest = _drawn_first(w, items)
    m = v.shape[0]
    W = rest[0]
    out[0] = v[0] / W
    if k > 1:  # a second: some b first, then items[1] among the others
        for b in range(m):
            if b != 1:
                out[1] += v[b] / W * (v[1] / _sum_without(v, b))
    if k < 3:
        return out
    lo, hi = _ranges(v, rest, k, h, budget)
    q = np.empty(m)
    p = np.empty(m)
    pre = np.zeros((k, k))
    suf = np.empty(k)
    for n in range(lo[2:].min(), hi[2:].max() + 1):
        top = -1
        for j in range(2, k):
            if lo[j] <= n <= hi[j]:
                top = j
        if top < 0:
            continue
        deg = top + 1
        t = math.exp(n * h)
        _arrivals(v, t, q, p)
        pre[0, 0] = 1.0  # pre[j]: product over positions < j, degree j (<= top)
        for j in range(1, deg):
            pre[j, 0] = pre[j - 1, 0] * q[j - 1]
            for d in range(1, min(j, deg - 1) + 1):
                below = pre[j - 1, d] if d < j else 0.0
                pre[j, d] = below * q[j - 1] + pre[j - 1, d - 1] * p[j - 1]
        suf[0] = 1.0  # the undrawn items' product R, then times positions k-1, k-2, ...
        suf[1:deg] = 0.0
        for b in range(m - 1, k - 1, -1):
            _times(suf, deg, q[b], p[b])
        for j in range(k - 1, 1, -1):
            if j <= top and lo[j] <= n <= hi[j]:
                c = 0.0
                for i in range(j + 1):  # coefficient of z^j in pre[j] · suf
                    c += pre[j, i] * suf[j - i]
                out[j] += h * v[j] * t * q[j] * c
            _times(suf, deg, q[j], p[j])
    return out


@njit(cache=True, nogil=True)
def _drawn_first(w: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The drawn items' weights in drawn order, then the other positive weights; and
    rest[j] = the sum of v[j:] (summed from the end: no subtraction, so no cancellation)."""
    k = items.shape[0]
    taken = np.zeros(w.shape[0], np.bool_)
    for j in range(k):
        taken[items[j]] = True
    v = np.empty(w.shape[0])
    for j in range(k):
        v[j] = w[items[j]]
    m = k
    for b in range(w.shape[0]):
        if not taken[b] and w[b] > 0.0:
            v[m] = w[b]
            m += 1
    v = v[:m]
    rest = np.zeros(m + 1)
    for b in range(m - 1, -1, -1):
        rest[b] = rest[b + 1] + v[b]
    return v, rest


@njit(cache=True, nogil=True)
def _sum_without(v: np.ndarray, b: int) -> float:
    total = 0.0
    for c in range(v.shape[0]):
        if c != b:
            total += v[c]
    return total


@njit(cache=True, nogil=True)
def _ranges(v: np.ndarray, rest: np.ndarray, k: int, h: float, budget: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Lattice indices [lo[j], hi[j]] of the nodes position j + 1 (j >= 2) sums over.

    The propensity is at least L, the probability of the drawn prefix itself
    (prod of v[i] / rest[i] for i <= j); each end leaves out at most ε = BUDGET · L:
    - left: PB_j(t) <= (W t)^j / j! (at least j of the others arrived), so the integrand in
      s is at most (W t)^(j+1) / j!, and the nodes below t0 sum to at most
      h (W t0)^(j+1) / (j! (1 - e^(-(j+1) h))) = ε;
    - right: fewer than j + 1 of the others arrived by t only if one of the j + 1 heaviest
      of them did not: PB_j(t) <= (j + 1) e^(-u' t), u' the (j + 1)-th heaviest other weight,
      at least u = the (j + 2)-th heaviest of all; with x e^-x <= (2/e) e^(-x/2), the nodes
      above t1 = 2 (ln((j + 1) / ε) + 2) / (v_j + u) sum to less than ε / 10.
    """
    m = v.shape[0]
    heavy = np.sort(v)[::-1]
    W = rest[0]
    lo = np.zeros(k, np.int64)
    hi = np.zeros(k, np.int64)
    prefix = 1.0
    fact = 1.0
    for j in range(k):
        prefix *= v[j] / rest[j]
        if j < 2:
            fact *= max(j, 1)
            continue
        fact *= j
        eps = max(budget * prefix, 1e-300)
        share = eps * fact * -math.expm1(-(j + 1) * h) / h
        t0 = share ** (1.0 / (j + 1)) / W
        u = heavy[j + 1] if j + 1 < m else 0.0
        t1 = 2.0 * (math.log((j + 1) / eps) + 2.0) / (v[j] + u)
        lo[j] = math.ceil(math.log(t0) / h)
        hi[j] = math.floor(math.log(t1) / h) + 1
    return lo, hi


@njit(cache=True, nogil=True)
def _arrivals(v: np.ndarray, t: float, q: np.ndarray, p: np.ndarray) -> None:
    """q = e^(-v t) (not arrived by t) and p = 1 - q, each with one exponential and no
    cancellation: the smaller of the two is computed, the larger is 1 minus it."""
    for b in range(v.shape[0]):
        x = v[b] * t
        if x < 0.6931471805599453:  # ln 2: p < 1/2
            p[b] = -math.expm1(-x)
            q[b] = 1.0 - p[b]
        else:
            q[b] = math.exp(-x)
            p[b] = 1.0 - q[b]


@njit(cache=True, nogil=True)
def _times(poly: np.ndarray, deg: int, q: float, p: float) -> None:
    """poly <- poly · (q + p z), truncated to its first `deg` coefficients, in place."""
    for d in range(deg - 1, 0, -1):
        poly[d] = poly[d] * q + poly[d - 1] * p
    poly[0] *= q
