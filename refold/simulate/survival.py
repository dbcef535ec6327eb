"""Time to first conversion over every new customer, not only those who bought: Kaplan-Meier.

A new customer who has not bought when the run ends is *censored*: all we know is that their
first purchase, if any, comes later than the time they were followed. The median over buyers
alone compares different customers (a policy that converts more of them, the slower ones
included, gets a longer median) and, with pages two minutes apart and acts at fixed seconds of
a page, lands on the same few values for every policy. The Kaplan-Meier estimate of S(t), the
share of new customers not yet converted t seconds after their first page, uses every customer:

- `km_median`: the first t with S(t) <= 1/2 (None when fewer than half are seen converting);
- `restricted_mean`: the restricted mean time to first conversion, the area under S up to a
  horizon τ (a customer who never converts counts τ): shorter when customers convert sooner
  *or* more of them convert, and an average, so not stuck on the pages' grid;
- `converted_by`: 1 - S(τ), the share converted within τ.

>>> times = np.array([10.0, 20.0, 30.0, 40.0]); bought = np.array([True, False, True, False])
>>> s = KaplanMeier(times, bought)
>>> s.survival(np.array([5.0, 10.0, 25.0, 30.0])).tolist()
[1.0, 0.75, 0.75, 0.375]
>>> s.km_median(), s.restricted_mean(40.0), round(s.converted_by(40.0), 3)
(30.0, 28.75, 0.625)
"""

from __future__ import annotations

import numpy as np


class KaplanMeier:
    """S(t) from follow-up `times` (seconds to first conversion, or to the end of the run for
    those who did not convert) and `converted` (whether each time is a conversion)."""

    def __init__(self, times: np.ndarray, converted: np.ndarray) -> None:
        t = np.asarray(times, dtype=np.float64)
        d = np.asarray(converted, dtype=bool)
        self.n = len(t)
        self.at = np.unique(t[d])  # conversion times
        # at risk just before each: followed at least that long (a conversion at a censoring's
        # time comes first, by the usual convention)
        at_risk = self.n - np.searchsorted(np.sort(t), self.at, side="left")
        events = np.bincount(np.searchsorted(self.at, t[d]), minlength=len(self.at))
        self.s = np.cumprod(1.0 - events / np.maximum(at_risk, 1))

    def survival(self, t: np.ndarray) -> np.ndarray:
        """S at each of `t` (right-continuous steps)."""
        k = np.searchsorted(self.at, np.asarray(t, dtype=np.float64), side="right")
        return np.concatenate([[1.0], self.s])[k]

    def km_median(self) -> float | None:
        below = np.flatnonzero(self.s <= 0.5)
        return float(self.at[below[0]]) if len(below) else None

    def restricted_mean(self, horizon: float) -> float:
        """The area under S from 0 to `horizon`."""
        cut = self.at[self.at < horizon]
        edges = np.concatenate([[0.0], cut, [horizon]])
        heights = np.concatenate([[1.0], self.s[: len(cut)]])
        return float(np.sum(np.diff(edges) * heights))

    def converted_by(self, horizon: float) -> float:
        return float(1.0 - self.survival(np.array([horizon]))[0])


def restricted_mean_interval(times: np.ndarray, converted: np.ndarray, horizon: float,
                             rounds: int = 200, seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of the restricted mean (customers resampled)."""
    rng = np.random.default_rng(seed)
    n = len(times)
    if n == 0:
        return float("nan"), float("nan")
    draws = [KaplanMeier(times[k], converted[k]).restricted_mean(horizon)
             for k in (rng.integers(0, n, n) for _ in range(rounds))]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def paired_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                      horizon: float, rounds: int = 400,
                      seed: int = 0) -> tuple[float, float, float]:
    """Restricted mean of `a` minus that of `b`, with a 95% bootstrap interval, for two
    policies' follow-ups (times, converted) of the *same* customers in the same order: the
    customers are resampled together, so what they share (arrival, browsing luck) cancels.

    >>> t = np.array([10.0, 20.0, 40.0, 40.0]); done = np.array([True, True, False, False])
    >>> paired_difference((t / 2, done), (t, done), 40.0)[0]
    -3.75
    """
    ta, da = (np.asarray(x) for x in a)
    tb, db = (np.asarray(x) for x in b)
    if len(ta) != len(tb):
        raise ValueError("paired follow-ups need the same customers")
    diff = (KaplanMeier(ta, da).restricted_mean(horizon)
            - KaplanMeier(tb, db).restricted_mean(horizon))
    rng = np.random.default_rng(seed)
    n = len(ta)
    if n == 0:
        return diff, float("nan"), float("nan")
    draws = []
    for _ in range(rounds):
        k = rng.integers(0, n, n)
        draws.append(KaplanMeier(ta[k], da[k]).restricted_mean(horizon)
                     - KaplanMeier(tb[k], db[k]).restricted_mean(horizon))
    low, high = np.percentile(draws, [2.5, 97.5])
    return diff, float(low), float(high)
