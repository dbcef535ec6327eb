"""A reward model for doubly robust evaluation: P(outcome | candidate's score and rank, position).

Logistic regression on features that exist for every candidate of a logged list, shown or not:
one indicator per position (the position bias), the candidate's score put on [-1, 0] by the
list's spread (z = (s - s_1) / (s_1 - s_M), as the Plackett-Luce policy does), log(1 + rank) and
indicators of the first three ranks. Fitted by Newton's method on the shown slots (a dozen
coefficients: a few iterations of a 12 x 12 solve), with a small ridge.
It only has to be roughly right: the doubly robust estimator corrects its error with importance
weights, and is unbiased whatever it predicts when the propensities are exact.

>>> from models.exploration import Policy
>>> from models.ope import LoggedList
>>> s = np.linspace(1.0, 0.0, 6)
>>> logs = [LoggedList(s, Policy(), 3, np.arange(3), np.ones(3), np.array([1.0, 0.0, 0.0])),
...         LoggedList(s, Policy(), 3, np.arange(3), np.ones(3), np.array([1.0, 1.0, 0.0]))]
>>> Q = RewardModel(3).fit(logs).predict(s, 3)
>>> Q.shape, bool(Q[0, 0] > Q[0, 2])
((6, 3), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from models.errors import ModelError

RANK_INDICATORS = 3
RIDGE = 1e-3


def features(scores: np.ndarray, positions: int) -> np.ndarray:
    """(candidates, positions, features): the design of every candidate at every position."""
    s = np.asarray(scores, dtype=np.float64)
    m = len(s)
    spread = float(s[0] - s[-1]) if m else 0.0
    z = (s - s[0]) / spread if spread > 0 else np.zeros(m)
    rank = np.arange(m)
    item = [z, np.log1p(rank)] + [(rank == r).astype(float) for r in range(RANK_INDICATORS)]
    item_f = np.stack(item, axis=1)  # (m, 5)
    pos_f = np.eye(positions)  # (positions, positions)
    X = np.concatenate([np.broadcast_to(item_f[:, None, :], (m, positions, item_f.shape[1])),
                        np.broadcast_to(pos_f[None, :, :], (m, positions, positions))], axis=2)
    return X


class RewardModel:
    """Logistic P(outcome) of a candidate at a position; `fit` on logged lists, `predict`."""

    def __init__(self, positions: int) -> None:
        self.positions = positions
        self.coef: np.ndarray | None = None

    def fit(self, logs: Sequence[Any]) -> RewardModel:
        """Fit on the shown slots (positions < `positions`) of `models.ope.LoggedList`s."""
        rows, ys = [], []
        for log in logs:
            shown = min(len(log.ranks), self.positions)
            if shown == 0 or len(log.scores) == 0:
                continue
            X = features(log.scores, self.positions)
            rows.append(X[log.ranks[:shown], np.arange(shown)])
            ys.append(np.clip(log.rewards[:shown], 0.0, 1.0))
        if not rows:
            raise ModelError("no shown slots to fit a reward model on")
        X, y = np.concatenate(rows), np.concatenate(ys)
        self.coef = _newton(X, y, RIDGE * len(y))
        return self

    def predict(self, scores: np.ndarray, positions: int | None = None) -> np.ndarray:
        """(candidates, positions) predicted outcome probabilities."""
        if self.coef is None:
            raise ModelError("the reward model is not fitted")
        if positions is not None and positions != self.positions:
            raise ModelError(f"fitted for {self.positions} positions, asked for {positions}")
        return expit(features(scores, self.positions) @ self.coef)


def _newton(X: np.ndarray, y: np.ndarray, ridge: float, steps: int = 50) -> np.ndarray:
    """Ridge-penalised logistic regression by Newton's method (iteratively reweighted least
    squares), until the step is below 1e-10."""
    b = np.zeros(X.shape[1])
    eye = ridge * np.eye(X.shape[1])
    for _ in range(steps):
        p = expit(X @ b)
        grad = X.T @ (p - y) + ridge * b
        hess = (X * (p * (1 - p))[:, None]).T @ X + eye
        step = np.linalg.solve(hess, grad)
        b -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return b
