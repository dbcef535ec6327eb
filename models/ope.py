"""Off-policy evaluation of list policies: IPS, self-normalised IPS, doubly robust, intervals.

The quantity is a per-slot rate over the first n positions, e.g. CTR@3: outcomes (clicks, or
purchases) at positions 1..n over the slots shown there. Each logged list i carries, per shown
position j, the candidate shown (its rank a_ij among the logged candidate scores), the logging
policy's propensity π0(a_ij, j) and the outcome r_ij. A candidate policy πe applied to the same
candidate scores gives weights w_ij = πe(a_ij, j) / π0(a_ij, j), and

- IPS:   V = Σ_ij w_ij r_ij / N,                       N = slots shown at positions <= n;
- SNIPS: per position, Σ_i w_ij r_ij / Σ_i w_ij, averaged with the positions' shares of N;
- DR:    V = Σ_ij [Σ_a πe(a, j) q(a, j) + w_ij (r_ij - q(a_ij, j))] / N, with a reward model q
         (`models.reward_model`, cross-fitted so that no list is scored by a model it trained).

These are unbiased (SNIPS consistent) when an outcome depends on the item and its position only,
not on the rest of the list: the position-based click model, under which the marginal
propensities that lists log suffice (Li et al., "Offline evaluation of ranking policies with click
models", KDD 2018). Intervals are normal, from the per-list influence terms (the delta method for
the ratios), so lists, not slots, are the independent units. `ess` is Kish's effective sample
size (Σw)² / Σw² per position, averaged over the positions: the number of lists logged by the
candidate itself that would be as informative.

A candidate may also rank the logged candidates differently (`models.rescore`: another blend of
the logged score and the items' popularity, then its own exploration): its table is the
policy's on the re-ranked candidates, read at the logged ranks, and the estimators are the same.

Evaluation refuses (`SupportError`) a candidate that puts probability on a (candidate, position)
the logging policy could not produce, and (`MissingPropensities`) lists without propensities.

>>> w = np.array([[2.0, 0.5], [0.0, 1.0], [1.0, 1.5]])   # 3 lists, 2 positions
>>> r = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
>>> est = ips(w, r)
>>> round(est.estimate, 4)                                # (2 + 1 + 1.5) / 6
0.75
>>> round(snips(w, r).estimate, 4)                        # (2/3 + 2.5/3) / 2
0.75
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import norm

from models.errors import ModelError
from models.exploration import Policy, position_matrix
from models.rescore import Rescore
from models.reward_model import RewardModel

ESTIMATORS = ("ips", "snips", "dr")


class OPEError(ModelError):
    """Off-policy evaluation cannot answer for these logs and this candidate."""


class MissingPropensities(OPEError):
    """Logged lists lack the propensities or candidate scores the estimators need."""


class SupportError(OPEError):
    """The candidate shows (candidate, position) pairs the logging policy never could."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """One estimator's answer: the value, its (1 - alpha) interval, the effective sample size."""

    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    ess: float
    n: int
    """Lists used."""


@dataclass(frozen=True, slots=True)
class LoggedList:
    """One shown list: its candidates' scores (best first), the policy and list length that
    drew it, and per shown position the candidate's rank, logged propensity and outcome."""

    scores: np.ndarray
    policy: Policy
    k: int
    ranks: np.ndarray
    propensities: np.ndarray | None
    rewards: np.ndarray
    candidates: tuple[str, ...] | None = None
    """The candidates' ids, in the order of `scores` (None: not logged)."""
    popularity: np.ndarray | None = None
    """Each candidate's popularity when the list was shown (`models.rescore.Popularity`)."""


def _interval(estimate: float, influence: np.ndarray, alpha: float) -> tuple[float, float]:
    n = len(influence)
    se = float(np.std(influence, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
    z = float(norm.ppf(1 - alpha / 2))
    return estimate - z * se, estimate + z * se


def _ess(w: np.ndarray, mask: np.ndarray) -> float:
    """Kish's (Σw)² / Σw² per position over the lists that showed it, averaged."""
    out = []
    for j in range(w.shape[1]):
        wj = w[mask[:, j], j]
        sq = float(np.sum(wj**2))
        out.append(float(np.sum(wj)) ** 2 / sq if sq > 0 else 0.0)
    return float(np.mean(out)) if out else 0.0


def _mask(w: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return np.isfinite(w) if mask is None else np.asarray(mask, dtype=bool)


def ips(w: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None,
        alpha: float = 0.05) -> Estimate:
    """Inverse propensity scoring over (lists, positions) arrays; `mask` marks shown slots."""
    m = _mask(w, mask)
    wr = np.where(m, w * r, 0.0)
    slots = m.sum(axis=1)
    per_slot = slots.mean()
    v = float(wr.sum() / slots.sum())
    # a ratio to the slots shown, which do not depend on the policy: delta method
    infl = (wr.sum(axis=1) - v * slots) / per_slot
    return Estimate("ips", v, *_interval(v, infl, alpha), _ess(w, m), len(w))


def snips(w: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None,
          alpha: float = 0.05) -> Estimate:
    """Self-normalised IPS, per position, averaged with each position's share of the slots."""
    m = _mask(w, mask)
    wm = np.where(m, w, 0.0)
    wr = np.where(m, w * r, 0.0)
    share = m.sum(axis=0) / m.sum()
    mean_w = wm.mean(axis=0)
    theta = np.divide(wr.sum(axis=0), wm.sum(axis=0), out=np.zeros(w.shape[1]),
                      where=wm.sum(axis=0) > 0)
    v = float(share @ theta)
    safe = np.where(mean_w > 0, mean_w, 1.0)
    infl = ((wr - wm * theta) / safe) @ share
    return Estimate("snips", v, *_interval(v, infl, alpha), _ess(w, m), len(w))


def dr(w: np.ndarray, r: np.ndarray, q_logged: np.ndarray, q_target: np.ndarray,
       mask: np.ndarray | None = None, alpha: float = 0.05) -> Estimate:
    """Doubly robust: the reward model's value under the candidate, corrected by IPS on its
    residuals. `q_logged[i, j]` is q(a_ij, j); `q_target[i, j]` is Σ_a πe(a, j) q(a, j)."""
    m = _mask(w, mask)
    term = np.where(m, q_target + w * (r - q_logged), 0.0)
    slots = m.sum(axis=1)
    v = float(term.sum() / slots.sum())
    infl = (term.sum(axis=1) - v * slots) / slots.mean()
    return Estimate("dr", v, *_interval(v, infl, alpha), _ess(w, m), len(w))


def on_policy(r: np.ndarray, mask: np.ndarray | None = None, alpha: float = 0.05) -> Estimate:
    """The logging policy's own rate (every weight 1), with the same interval."""
    return replace(ips(np.ones_like(r, dtype=float), r, mask, alpha), estimator="on_policy")


def evaluate(
    logs: Sequence[LoggedList],
    target: Policy,
    positions: int = 3,
    estimators: Sequence[str] = ESTIMATORS,
    alpha: float = 0.05,
    folds: int = 2,
    rescore: Rescore | None = None,
) -> list[Estimate]:
    """Estimate the candidate `target`'s rate over the first `positions` from `logs`; with
    `rescore`, `target` draws from the logged candidates ranked by it (`models.rescore`)."""
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise OPEError(f"unknown estimator(s) {unknown} (one of {ESTIMATORS})")
    if not logs:
        raise OPEError("no logged lists to evaluate")
    arrays = _weights(logs, target, positions, rescore)
    w, r, mask = arrays.w, arrays.r, arrays.mask
    out = []
    for name in estimators:
        if name == "ips":
            out.append(ips(w, r, mask, alpha))
        elif name == "snips":
            out.append(snips(w, r, mask, alpha))
        else:
            q_logged, q_target = _cross_fitted(logs, arrays, positions, folds)
            out.append(dr(w, r, q_logged, q_target, mask, alpha))
    return out


@dataclass(frozen=True, slots=True)
class _Arrays:
    w: np.ndarray
    r: np.ndarray
    mask: np.ndarray
    target: list[np.ndarray]
    """Per list, the candidate's (candidates, positions) matrix."""


def _weights(logs: Sequence[LoggedList], target: Policy, positions: int,
             rescore: Rescore | None = None) -> _Arrays:
    """Weights, outcomes and shown-slot mask as (lists, positions) arrays; checks propensities
    and support list by list."""
    n = len(logs)
    w = np.zeros((n, positions))
    r = np.zeros((n, positions))
    mask = np.zeros((n, positions), dtype=bool)
    missing, unsupported, matrices = 0, [], []
    memo: dict[tuple, np.ndarray] = {}  # lists with the same candidates share their tables

    def table(policy: Policy, log: LoggedList) -> np.ndarray:
        key = (policy, log.k, log.scores.tobytes())
        if key not in memo:
            memo[key] = position_matrix(policy, log.scores, log.k, positions)
        return memo[key]

    for i, log in enumerate(logs):
        if log.propensities is None or len(log.scores) == 0 or (
                rescore is not None and log.popularity is None):
            missing += 1
            matrices.append(np.zeros((0, positions)))
            continue
        shown = min(len(log.ranks), positions)
        p0 = table(log.policy, log)
        pe = table(target, log) if rescore is None else rescore.table(
            target, log.scores, log.popularity, log.k, positions)
        cols = min(pe.shape[1], p0.shape[1])
        if np.any((pe[:, :cols] > 0) & (p0[:, :cols] == 0)) or _deeper(target, log):
            unsupported.append(i)
        matrices.append(pe)
        a, j = log.ranks[:shown], np.arange(shown)
        w[i, :shown] = pe[a, j] / log.propensities[:shown]
        r[i, :shown] = log.rewards[:shown]
        mask[i, :shown] = True
    if missing:
        what = "propensities or candidate scores" if rescore is None else \
            "propensities, candidate scores or candidate ids"
        raise MissingPropensities(
            f"{missing} of {n} logged lists have no {what}: they were not drawn by a policy "
            "that logs them (impressions built without their recommendation, or lists from "
            "before exploration, or their candidates, were logged)")
    if unsupported:
        raise SupportError(
            f"the candidate {target.describe()} puts probability on candidates or positions "
            f"that the logging policy never shows, in {len(unsupported)} of {n} lists (first: "
            f"list {unsupported[0]}, logged by {logs[unsupported[0]].policy.describe()}); no "
            "unbiased estimate exists: log with more exploration, or evaluate candidates "
            "inside its support")
    return _Arrays(w, r, mask, matrices)


def _deeper(target: Policy, log: LoggedList) -> bool:
    """Whether `target` would draw from candidates beyond those logged: it reaches deeper than
    the logging policy did, and the log holds all the logging policy asked for (a shorter log
    means the catalog ran out, for the candidate too)."""
    return target.depth(log.k) > len(log.scores) >= log.policy.depth(log.k)


def _cross_fitted(logs: Sequence[LoggedList], arrays: _Arrays, positions: int,
                  folds: int) -> tuple[np.ndarray, np.ndarray]:
    """q(a_ij, j) and Σ_a πe(a, j) q(a, j) per list, each list scored by a reward model fitted
    on the other folds (list i is in fold i mod `folds`)."""
    n = len(logs)
    q_logged = np.zeros((n, positions))
    q_target = np.zeros((n, positions))
    fold = np.arange(n) % folds
    for f in range(folds):
        train = [logs[i] for i in np.flatnonzero(fold != f)]
        model = RewardModel(positions).fit(train if train else list(logs))
        memo: dict[bytes, np.ndarray] = {}
        for i in np.flatnonzero(fold == f):
            log = logs[i]
            key = log.scores.tobytes()
            if key not in memo:
                memo[key] = model.predict(log.scores, positions)  # (candidates, positions)
            Q = memo[key]
            pe = arrays.target[i]
            cols = pe.shape[1]
            q_target[i, :cols] = np.einsum("aj,aj->j", pe, Q[:, :cols])
            shown = min(len(log.ranks), positions)
            q_logged[i, :shown] = Q[log.ranks[:shown], np.arange(shown)]
    return q_logged, q_target
