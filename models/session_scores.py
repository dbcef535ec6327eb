"""A user's session scores from the co-visitation counts (`models.covisit` defines them and
re-exports these functions; `models.session_blend` blends them into the CF scores)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.covisit import CoVisits


def recent_items(history: Any, n: int) -> np.ndarray:
    """The items of a `UserHistory`'s last `n` positive events, oldest first."""
    return history.positive_items(n)


def session_of(
    covisits: CoVisits, history: Any, config: Any
) -> tuple[np.ndarray, np.ndarray] | None:
    """A user's session scores under a `FoldInConfig`, as `CoVisits.contributions` (None: the
    blend is off, or the user's recent items have no co-visits)."""
    if config.session_weight == 0:
        return None
    cols, terms = covisits.contributions(recent_items(history, config.session_items),
                                         config.session_half_life)
    return (cols, terms) if len(cols) else None
