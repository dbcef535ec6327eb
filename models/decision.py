"""A user's ranked candidates made into the list they get, with everything the list logs.

`decide` takes the ranking's top-M candidates (best first, M = `Policy.depth(K)`), demotes those
the user was shown too often without acting on them (`models.exposure`), lets the exploration
policy draw K of them (`models.exploration`, seeded from the list's `rec_id`), and returns a
`Decision`: the items in position order with their scores, propensities, candidate ranks and
whether each was explored, the candidate scores the policy saw (the context off-policy
evaluation re-applies other policies to), and the policy's description.

>>> from models.exploration import Policy
>>> d = decide(["a", "b", "c", "d"], np.array([4.0, 3.0, 2.0, 1.0]), 2, Policy(), "r1")
>>> d.items, d.propensities, d.ranks
(['a', 'b'], [1.0, 1.0], [0, 1])
>>> d = decide(["a", "b", "c", "d"], np.array([4.0, 3.0, 2.0, 1.0]), 2, Policy(), "r1",
...            exposure=np.array([3, 0, 0, 0]), demotion=Demotion(min_count=3, strength=1.0))
>>> d.items, d.candidate_scores, d.demoted          # "a" was shown 3 times unanswered
(['b', 'c'], [3.0, 2.0], 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from models.errors import ModelError
from models.exploration import Policy, choose, rng_for
from models.exposure import demote


@dataclass(frozen=True)
class Demotion:
    """Exposure feedback's settings: demote after `min_count` unanswered impressions, by
    `strength` (in units of the candidates' score range) per impression beyond; 0: off."""

    min_count: int = 3
    strength: float = 0.5

    def __post_init__(self) -> None:
        if self.min_count < 1 or self.strength < 0:
            raise ModelError("exposure demotion needs min_count >= 1 and strength >= 0")

    @property
    def on(self) -> bool:
        return self.strength > 0


@dataclass(frozen=True, slots=True)
class Decision:
    """A list as published: items in position order (position j + 1), and its log."""

    rec_id: str
    items: list[str]
    scores: list[float]
    propensities: list[float]
    ranks: list[int]
    """Each item's rank among the candidates after demotion (0 = best)."""
    explored: list[bool]
    candidate_scores: list[float]
    """What the policy drew from, best first: the context of off-policy evaluation."""
    candidates: list[str]
    """Their ids, in the same order (what another ranking re-scores offline)."""
    policy: dict[str, Any]
    demoted: int
    """Candidates demoted by exposure feedback."""
    reasons: list[str | None] | None = None
    """Why an item was reserved a slot by the ranking (`models.continuation`), item by item;
    None: no item was."""


def decide(
    candidates: Sequence[str],
    scores: np.ndarray,
    k: int,
    policy: Policy,
    rec_id: str,
    exposure: np.ndarray | None = None,
    demotion: Demotion | None = None,
) -> Decision:
    """The list of `k` drawn from `candidates` (ranked best first by `scores`)."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(candidates):
        raise ModelError(f"{len(candidates)} candidates but {len(s)} scores")
    order, demoted = np.arange(len(s)), 0
    if exposure is not None and demotion is not None and demotion.on and len(s):
        demoted = int(np.count_nonzero(np.asarray(exposure) >= demotion.min_count))
        order, s = demote(s, exposure, demotion.min_count, demotion.strength)
    if policy.name != "none":  # log the depth it drew from, not "0: the default"
        policy = replace(policy, candidates=policy.depth(k))
    slate = choose(policy, s, k, rng_for(rec_id))
    picked = order[slate.ranks]
    return Decision(
        rec_id=rec_id,
        items=[candidates[i] for i in picked.tolist()],
        scores=s[slate.ranks].tolist(),
        propensities=slate.propensities.tolist(),
        ranks=slate.ranks.tolist(),
        explored=slate.explored.tolist(),
        candidate_scores=s[: policy.depth(k)].tolist(),
        candidates=[candidates[i] for i in order[: policy.depth(k)].tolist()],
        policy=policy.describe(),
        demoted=demoted,
    )
