"""Users' `Plan`s: what ranking needs of each user at one time (aggregated history, the rows of
its items in the model, the CF weight, the key its vector is cached under), made for many users
in one pass over their histories (`models.history.confidences_many`).

>>> from models.foldin_config import FoldInConfig
>>> from models.history import Decay, UserHistory
>>> h = UserHistory(10)
>>> h.add(1, 1.0, 5.0)                 # item 1, weight 1, at t = 5
>>> (p,) = make_plans(["u1"], [5.0], [h], None, FoldInConfig(), Decay(), version=None)
>>> p.items.tolist(), p.rows.tolist(), p.w_cf          # no model served: CF weight 0
([1], [], 0.0)
>>> (p,) = make_plans(["u1"], [5.0], [h], np.array([-1, 0]), FoldInConfig(min_events=1),
...                   Decay(), version=3)
>>> p.rows.tolist(), p.w_cf > 0, p.key[0]           # item 1 is the model's row 0
([0], True, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import coldstart, kernels
from models.foldin_config import FoldInConfig
from models.history import Decay, UserHistory, confidences_many


@dataclass(slots=True)
class Plan:
    """What ranking needs of one user at one time: aggregated history, model rows, CF weight."""

    user_id: str
    now: float
    history: UserHistory
    items: np.ndarray
    weights: np.ndarray
    rows: np.ndarray
    """Model rows of the items that are in the model, with their `row_weights`."""
    row_weights: np.ndarray
    w_cf: float
    key: tuple[Any, ...]
    session: tuple[np.ndarray, np.ndarray] | None = None
    """Sparse session scores (`models.covisit`), None without."""


def make_plans(
    user_ids: Sequence[str], nows: Sequence[float], histories: Sequence[UserHistory],
    row_of: np.ndarray | None, config: FoldInConfig, decay: Decay, version: int | None,
) -> list[Plan]:
    """Each user's `Plan` at its `now`; `row_of` maps item index -> model row (-1: not in the
    model), None when no model is served (every CF weight is then 0)."""
    offsets, items, weights = confidences_many(histories, nows, decay)
    served = row_of is not None
    rows_of = row_of if row_of is not None else np.zeros(0, dtype=np.intp)
    timed = decay.mode == "time" or config.max_age_seconds is not None

    def plan(j: int, its: np.ndarray, ws: np.ndarray, rows: np.ndarray, rws: np.ndarray,
             n_cf: int) -> Plan:
        w_cf = coldstart.cf_weight(n_cf, config.shrink, config.min_events,
                                   config.full_events) if served else 0.0
        key = (version, histories[j].seq, nows[j] if timed else None)
        return Plan(user_ids[j], nows[j], histories[j], its, ws, rows, rws, w_cf, key)

    if len(histories) == 1:  # the per-event path: no segment bookkeeping
        rows, row_weights, n_cf = kernels.model_rows(items, weights, rows_of)
        return [plan(0, items, weights, rows, row_weights, n_cf)]
    rows = rows_of[items] if served else np.full(len(items), -1)
    user = np.repeat(np.arange(len(histories)), offsets[1:] - offsets[:-1])
    modelled = rows >= 0
    n_cfs = np.bincount(user, weights=modelled & (weights > 0), minlength=len(histories))
    row_offsets = np.zeros(len(histories) + 1, dtype=np.intp)
    np.cumsum(np.bincount(user[modelled], minlength=len(histories)), out=row_offsets[1:])
    rows, row_weights = rows[modelled], weights[modelled]
    return [plan(j, items[offsets[j]:offsets[j + 1]], weights[offsets[j]:offsets[j + 1]],
                 rows[row_offsets[j]:row_offsets[j + 1]],
                 row_weights[row_offsets[j]:row_offsets[j + 1]], int(n_cfs[j]))
            for j in range(len(histories))]
