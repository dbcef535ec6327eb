"""The blend of a user's collaborative scores with their session co-visitation scores
(`models.covisit`, whose module docstring defines it; also importable from there).

>>> blend(np.array([2.0, 1.0, 0.0]), np.array([0, 1]), np.array([0.5, 1.0]), weight=1.0).tolist()
[1.5, 1.5, 0.0]
"""

from __future__ import annotations

import numpy as np


def blend(
    cf: np.ndarray, cols: np.ndarray, terms: np.ndarray, weight: float,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """f / max|f| + weight · s / max s (see the module docstring), with the session scores s
    given as `CoVisits.contributions` or `scores` (`cols`, `terms`); the maxima skip `exclude`
    (indices or a mask). Returns `cf` itself when there is nothing to blend."""
    if weight == 0 or not len(cols):
        return cf
    s = np.bincount(cols, weights=terms, minlength=len(cf))
    hidden = ~np.isfinite(cf)
    if exclude is not None and len(exclude):
        hidden[exclude] = True
    s[hidden] = 0.0  # hidden items are never shown: their score does not matter
    s_max = s.max()
    if s_max <= 0:
        return cf
    shown = np.where(hidden, 0.0, cf)
    f_max = max(shown.max(), -shown.min())
    s *= weight / s_max
    s += cf / f_max if f_max > 0 else cf
    return s
