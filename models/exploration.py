"""Exploration policies: which ranked candidates a list shows, where, and with what probability.

The ranking hands over its top-M candidates, best first, with their scores. A policy turns them
into a list of K and logs, per listed item, its *propensity*: the probability that the policy put
that item at that position, given the candidate scores. Off-policy evaluation (`models.ope`)
divides by these, so they are exact, and `position_matrix` gives the whole table (every candidate
at every position) for any policy, from the logged scores alone.

- `none`: the top K in order; propensity 1.
- `epsilon`: each slot, independently with probability ε, shows an item drawn uniformly (without
  replacement) from the candidates ranked K+1..M; the other slots take the top items in order, so
  an explored slot pushes the rest down. The candidate of rank r lands at position j >= r when
  exactly j - r of the first j - 1 slots explored and slot j did not: C(j-1, j-r) ε^(j-r) (1-ε)^r;
  a pool item is at an explored slot with probability 1 / |pool|. When the pool runs out, the
  remaining slots exploit (`_epsilon_slots` counts exactly that).
- `plackett_luce`: a Plackett-Luce ranking of the top M with weights exp(z / T), where
  z = (s - s_1) / (s_1 - s_M) puts the scores on [-1, 0] whatever their scale (dot products,
  blend scores, popularity), so the temperature T means the same for every source. Exact
  position propensities: `models.plackett_luce`.

The randomness comes from `rng_for(rec_id)`, and `rec_id` from the user, the causing event and
the model version (`make_rec_id`): a batch redone after a crash draws the same list.

>>> scores = np.array([3.0, 2.0, 1.5, 1.0, 0.5, 0.0])
>>> s = choose(Policy("none"), scores, 3, rng_for("r1"))
>>> s.ranks.tolist(), s.propensities.tolist()
([0, 1, 2], [1.0, 1.0, 1.0])
>>> eps = Policy("epsilon", epsilon=0.2)
>>> a, b = choose(eps, scores, 3, rng_for("r1")), choose(eps, scores, 3, rng_for("r1"))
>>> a.ranks.tolist() == b.ranks.tolist()      # same rec_id, same list
True
>>> P = position_matrix(eps, scores, 3)
>>> np.round(P[:, 0], 4).tolist()             # slot 1: top item, or one of the 3 in the pool
[0.8, 0.0, 0.0, 0.0667, 0.0667, 0.0667]
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from models import plackett_luce
from models.errors import ModelError

POLICIES = ("none", "epsilon", "plackett_luce")


class PolicyError(ModelError):
    """A policy's name or parameters are not usable."""


@dataclass(frozen=True)
class Policy:
    """An exploration policy and its parameters (`describe()` is what a list logs).

    `candidates` is M, how deep into the ranking the policy may reach (0: 2·K).
    """

    name: str = "none"
    epsilon: float = 0.1
    temperature: float = 0.1
    candidates: int = 0

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise PolicyError(f"unknown exploration policy {self.name!r} (one of {POLICIES})")
        if not 0.0 <= self.epsilon <= 1.0:
            raise PolicyError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if not self.temperature > 0:
            raise PolicyError(f"temperature must be positive, got {self.temperature}")
        if self.candidates < 0:
            raise PolicyError(f"candidates must be >= 0, got {self.candidates}")

    def depth(self, k: int) -> int:
        """How many ranked candidates the policy needs for a list of `k`."""
        if self.name == "none":
            return k
        return max(self.candidates or 2 * k, k)

    def describe(self) -> dict[str, Any]:
        """Name and the parameters that matter for it, for the `policy` field of a list."""
        out: dict[str, Any] = {"name": self.name}
        if self.name == "epsilon":
            out["epsilon"] = self.epsilon
        elif self.name == "plackett_luce":
            out["temperature"] = self.temperature
        if self.name != "none":
            out["candidates"] = self.candidates
        return out

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> Policy:
        """The inverse of `describe`."""
        keys = {"name", "epsilon", "temperature", "candidates"}
        return cls(**{k: v for k, v in d.items() if k in keys})


@dataclass(frozen=True, slots=True)
class Slate:
    """A drawn list: candidate ranks (0 = best) in position order, each one's propensity, and
    whether it was explored: placed above its rank (a pool item, or one a Plackett-Luce draw
    promoted); the items an explored one pushes down count as exploited."""

    ranks: np.ndarray
    propensities: np.ndarray
    explored: np.ndarray


def make_rec_id(user_id: str, event_id: str, model_version: int | None) -> str:
    """A list's id: the same user, causing event and model version give the same id.

    >>> make_rec_id("u1", "e9", 3)
    'b1a07d3f0d6a357275aee8846b5eb693'
    """
    raw = f"{user_id}\x1f{event_id}\x1f{model_version}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def rng_for(rec_id: str) -> np.random.Generator:
    """The random stream of one list, seeded from its id alone (`default_rng(seed)`'s stream,
    built without its argument checks: a list's draw is cheap enough for them to show)."""
    seed = int.from_bytes(hashlib.blake2b(rec_id.encode(), digest_size=8).digest(), "little")
    return np.random.Generator(np.random.PCG64(seed))


def choose(policy: Policy, scores: np.ndarray, k: int, rng: np.random.Generator) -> Slate:
    """Draw a list of min(k, candidates) from candidates ranked best first by `scores`."""
    s = _check(scores)
    k = min(int(k), len(s))
    if policy.name == "none" or k == 0:
        ranks = np.arange(k)
        return Slate(ranks, np.ones(k), np.zeros(k, dtype=bool))
    s = s[: policy.depth(k)]
    if policy.name == "epsilon":
        ranks = _epsilon_draw(policy.epsilon, len(s), k, rng)
        P = _epsilon_matrix(policy.epsilon, len(s), k)
        props = P[ranks, np.arange(len(ranks))]
    else:
        ranks, props = plackett_luce.draw(pl_weights(s, policy.temperature), k, rng)
    return Slate(ranks, props, ranks > np.arange(len(ranks)))


def position_matrix(
    policy: Policy, scores: np.ndarray, k: int, positions: int | None = None
) -> np.ndarray:
    """(len(scores), n) matrix: P(candidate a at position j + 1) in a list of k, for the first
    n = min(positions or k, k, candidates) positions (the rest of the list does not change them,
    so evaluating CTR@3 of lists of 20 needs three columns)."""
    s = _check(scores)
    k = min(int(k), len(s))
    n = k if positions is None else min(int(positions), k)
    P = np.zeros((len(s), n))
    if policy.name == "none":
        P[np.arange(n), np.arange(n)] = 1.0
        return P
    depth = min(policy.depth(k), len(s))
    if policy.name == "epsilon":
        P[:depth] = _epsilon_matrix(policy.epsilon, depth, k)[:, :n]
    else:
        P[:depth] = plackett_luce.marginals(pl_weights(s[:depth], policy.temperature), n)
    return P


def pl_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """exp(z / T) with z = (s - s_1) / (s_1 - s_M) in [-1, 0]; all equal when the scores are."""
    spread = float(scores[0] - scores[-1])
    if not spread > 0:
        return np.ones(len(scores))
    return np.exp((scores - scores[0]) / (spread * temperature))


def _check(scores: np.ndarray) -> np.ndarray:
    s = np.ascontiguousarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise PolicyError("candidate scores must be 1-D")
    fault = _fault(s)
    if fault == 1:
        raise PolicyError("candidate scores must be finite")
    if fault == 2:
        raise PolicyError("candidate scores must be sorted best first")
    return s


@njit(cache=True, nogil=True)
def _fault(s: np.ndarray) -> int:
    """1: a score is not finite, else 2: one is above the one before it, else 0."""
    for x in s:
        if not np.isfinite(x):
            return 1
    for i in range(1, s.shape[0]):
        if s[i] > s[i - 1]:
            return 2
    return 0


def _epsilon_slots(epsilon: float, pool: int, k: int) -> np.ndarray:
    """(k, k+1) table: [j, e] = P(the first j slots explored e times); slot j explores with
    probability ε while fewer than `pool` slots have."""
    T = np.zeros((k + 1, k + 1))
    T[0, 0] = 1.0
    for j in range(k):
        for e in range(j + 1):
            p_explore = epsilon if e < pool else 0.0
            T[j + 1, e + 1] += T[j, e] * p_explore
            T[j + 1, e] += T[j, e] * (1.0 - p_explore)
    return T


@functools.lru_cache(maxsize=256)
def _epsilon_matrix(epsilon: float, m: int, k: int) -> np.ndarray:
    """`position_matrix` of the epsilon policy over m candidates (the pool: ranks k..m-1); it
    does not depend on the scores, so it is cached (read-only)."""
    pool = m - k
    T = _epsilon_slots(epsilon, pool, k)
    P = np.zeros((m, k))
    for j in range(k):
        for e in range(j + 1):
            p_explore = epsilon if e < pool else 0.0
            r = j - e  # the exploit slot j takes the candidate of rank j - e
            P[r, j] += T[j, e] * (1.0 - p_explore)
            if p_explore:
                P[k:, j] += T[j, e] * p_explore / pool
    P.flags.writeable = False
    return P


def _epsilon_draw(epsilon: float, m: int, k: int, rng: np.random.Generator) -> np.ndarray:
    pool = m - k
    explore = rng.random(k) < epsilon
    # the pool is exhausted after `pool` explored slots: later slots exploit
    explore &= np.cumsum(explore) <= pool
    picks = rng.permutation(pool)[: int(explore.sum())] + k
    ranks = np.empty(k, dtype=np.int64)
    ranks[explore] = picks
    ranks[~explore] = np.arange(int((~explore).sum()))
    return ranks


def warm_up() -> None:
    """Compile (or load from numba's cache) the draw's kernels: every published list is drawn."""
    choose(Policy("plackett_luce"), np.array([1.0, 0.5, 0.2, 0.1]), 3, np.random.default_rng(0))
