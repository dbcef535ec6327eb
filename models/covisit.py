"""Session co-visitation: items that users touch close together, counted in-stream and blended
into the collaborative scores.

A user's next item is much more like their last few than like their whole history. The fold-in
sees that only through its recency decay, in the model's factor space; co-visitation counts it
directly, from the order of everyone's events.

**Counts.** When a user has a positive event on item i, each of the user's previous `window`
positive items j adds decay^g to C[i, j] and to C[j, i] (g = 0 for the latest j), and n_i counts
item i's positive events. The counts are symmetric: events that share a timestamp arrive in no
meaningful order.

**Scores.** A user's session score of item i is the cosine-normalised co-visitation with the
user's last `items` positive items j, weighted by recency (r_j = 0 for the latest):

    s_i = Σ_j 2^(−r_j / half_life) · C[j, i] / sqrt(n_j · n_i)

**Blend.** With weight β > 0 a user's CF scores f become f / max|f| + β · s / max s, each maximum
taken over the items the user may be shown: both signals then have a top score of 1 (dot
products scale with the user's vector, counts with traffic). β = 0, or a user without
co-visits, leaves f as it was.

**Memory.** An item keeps at most `max_neighbors` neighbours, in fixed numpy rows: a new
neighbour of a full row takes the slot of the weakest one and inherits its count (space-saving,
so a neighbour holding more than 1/max_neighbors of the row's weight is never lost). Below the
cap the counts are exact.

>>> cv = CoVisits(window=2, decay=0.5)
>>> for item, previous in [(0, []), (1, [0]), (2, [0, 1])]:
...     _ = cv.add(item, np.array(previous))
>>> cv.neighbours(2)                      # 1 came just before 2, 0 one step earlier
([0, 1], [0.5, 1.0])
>>> idx, val = cv.scores(np.array([2]), half_life=1.0)
>>> idx.tolist(), val.round(3).tolist()
([0, 1], [0.5, 1.0])
>>> blend(np.array([2.0, 1.0, 0.0]), idx, val, weight=1.0).tolist()
[1.5, 1.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

Undo = dict[int, tuple[np.ndarray, np.ndarray, int, float]]
"""Rows as they were before a batch: item -> (neighbours, counts, degree, n)."""


class CoVisits:
    """Co-visitation counts of one partition's users, per item a bounded row of neighbours."""

    __slots__ = ("_deg", "_journal", "_nbr", "_wt", "count", "decay", "max_neighbors", "window")

    def __init__(self, window: int = 10, decay: float = 0.8, max_neighbors: int = 256) -> None:
        if window < 1 or max_neighbors < 1 or not 0 < decay <= 1:
            raise ValueError("window and max_neighbors must be >= 1, decay in (0, 1]")
        self.window = window
        self.decay = decay
        self.max_neighbors = max_neighbors
        self._nbr = np.full((0, max_neighbors), -1, dtype=np.int32)
        self._wt = np.zeros((0, max_neighbors))
        self._deg = np.zeros(0, dtype=np.int32)
        self.count = np.zeros(0)
        """Positive events per item (n_i)."""
        self._journal: Undo | None = None

    def __len__(self) -> int:
        return len(self._deg)

    def add(self, item: int, previous: np.ndarray) -> list[int]:
        """Count a positive event on `item` after the user's `previous` positive items (oldest
        first); returns the items whose row changed."""
        gains: dict[int, float] = {}
        for g, j in enumerate(reversed(np.asarray(previous)[-self.window :].tolist())):
            if j != item:
                gains[j] = gains.get(j, 0.0) + self.decay**g
        changed = [item, *gains]
        self._grow(max(changed) + 1)
        self._remember(changed)
        self.count[item] += 1.0
        if gains:
            js, gain = list(gains), list(gains.values())
            self._bump(item, js, gain)
        return changed

    def neighbours(self, item: int) -> tuple[list[int], list[float]]:
        """The item's neighbours (ascending) and their counts."""
        if item >= len(self):
            return [], []
        d = self._deg[item]
        nbr, wt = self._nbr[item, :d], self._wt[item, :d]
        order = np.argsort(nbr)
        return nbr[order].tolist(), wt[order].tolist()

    def scores(self, items: np.ndarray, half_life: float) -> tuple[np.ndarray, np.ndarray]:
        """Session scores of a user whose last positive items are `items` (oldest first), as
        (item indices ascending, scores > 0): the items co-visited with none are left out."""
        cols, w = self.contributions(items, half_life)
        idx, at = np.unique(cols, return_inverse=True)
        val = np.bincount(at, weights=w, minlength=len(idx)) if len(idx) else w
        return idx[val > 0], val[val > 0]

    def contributions(
        self, items: np.ndarray, half_life: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """`scores` before summing per item: (item indices, terms), an item once per recent item
        it was co-visited with; `np.bincount(*contributions)` is the dense score vector (the
        per-event path: no sorting)."""
        items = np.asarray(items, dtype=np.intp)
        items = items[items < len(self)]
        q = np.exp2(-np.arange(len(items) - 1, -1, -1) / half_life)
        q /= np.sqrt(np.maximum(self.count[items], 1.0))
        nbr = self._nbr[items]
        ok = nbr >= 0
        cols = nbr[ok].astype(np.intp)
        w = (self._wt[items] * q[:, None])[ok] / np.sqrt(np.maximum(self.count[cols], 1.0))
        return cols, w

    # -- undo log of one batch

    def journal(self) -> Undo:
        """Start recording rows before they change; `revert` with the result undoes the batch."""
        self._journal = {}
        return self._journal

    def revert(self, undo: Undo) -> None:
        for i, (nbr, wt, deg, n) in undo.items():
            self._nbr[i], self._wt[i], self._deg[i], self.count[i] = nbr, wt, deg, n
        self._journal = None

    # -- plain data with item ids

    def entry(self, item: int, ids: Sequence[str]) -> dict[str, Any] | None:
        """The item's count and neighbours as plain data, in slot order (which decides ties
        when a full row replaces its weakest); None when it has neither."""
        if item >= len(self) or (self.count[item] == 0 and self._deg[item] == 0):
            return None
        d = self._deg[item]
        pairs = [[ids[j], w] for j, w in zip(self._nbr[item, :d].tolist(),
                                              self._wt[item, :d].tolist(), strict=True)]
        return {"n": float(self.count[item]), "nbrs": pairs}

    def load_entry(self, item: int, entry: dict[str, Any], index: Callable[[str], int]) -> None:
        """Install an `entry` (beyond `max_neighbors`, the strongest neighbours are kept)."""
        pairs = [(index(j), float(w)) for j, w in entry["nbrs"]]
        if len(pairs) > self.max_neighbors:
            strongest = sorted(range(len(pairs)), key=lambda s: -pairs[s][1])
            pairs = [pairs[s] for s in sorted(strongest[: self.max_neighbors])]
        self._grow(max([item, *(j for j, _ in pairs)]) + 1)
        self.count[item] = entry["n"]
        d = self._deg[item] = len(pairs)
        self._nbr[item] = -1
        self._wt[item] = 0.0
        if d:
            self._nbr[item, :d] = [j for j, _ in pairs]
            self._wt[item, :d] = [w for _, w in pairs]

    # -- internals

    def _remember(self, items: Iterable[int]) -> None:
        journal = self._journal
        if journal is None:
            return
        for i in items:
            if i not in journal:
                journal[i] = (self._nbr[i].copy(), self._wt[i].copy(), int(self._deg[i]),
                              float(self.count[i]))

    def _bump(self, item: int, js: list[int], gain: list[float]) -> None:
        """Add `gain` to the counts of the pairs (item, j) and (j, item), j in `js` (distinct,
        not `item`): the first m pairs are the item's row, the next m the rows of js."""
        m = len(js)
        rows = np.array([item] * m + js)
        cols = np.array(js + [item] * m)
        gains = np.array(gain + gain)
        match = self._nbr[rows] == cols[:, None]  # empty slots hold -1: never a match
        pos = match.argmax(axis=1)
        found = match[np.arange(2 * m), pos]
        self._wt[rows[found], pos[found]] += gains[found]
        if found.all():
            return
        new = np.flatnonzero(~found)
        r = rows[new]
        # A row's new neighbours take its free slots in pair order: only the item's row can get
        # more than one (its pairs come first).
        ranks = np.cumsum(new < m) - 1
        slot = self._deg[r] + np.where(new < m, ranks, 0)
        room = slot < self.max_neighbors
        at, slot = r[room], slot[room]
        self._nbr[at, slot] = cols[new[room]]
        self._wt[at, slot] = gains[new[room]]
        mine = new[room] < m
        self._deg[item] += np.count_nonzero(mine)
        self._deg[at[~mine]] += 1
        for p in new[~room].tolist():
            self._insert(int(rows[p]), int(cols[p]), float(gains[p]))

    def _insert(self, row: int, col: int, gain: float) -> None:
        d = self._deg[row]
        if d < self.max_neighbors:
            slot, self._deg[row] = d, d + 1
        else:  # space-saving: the weakest neighbour's slot, and its count
            slot = int(np.argmin(self._wt[row]))
        self._nbr[row, slot] = col
        self._wt[row, slot] += gain

    def _grow(self, n: int) -> None:
        old = len(self._deg)
        if n <= old:
            return
        extra = max(n, 2 * old, 64) - old
        m = self.max_neighbors
        self._nbr = np.concatenate([self._nbr, np.full((extra, m), -1, dtype=np.int32)])
        self._wt = np.concatenate([self._wt, np.zeros((extra, m))])
        self._deg = np.concatenate([self._deg, np.zeros(extra, dtype=np.int32)])
        self.count = np.concatenate([self.count, np.zeros(extra)])


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
    shown = np.isfinite(cf)
    if exclude is not None and len(exclude):
        shown[exclude] = False
    s_max = s.max(where=shown, initial=0.0)
    if s_max <= 0:
        return cf
    f_max = np.abs(cf).max(where=shown, initial=0.0)
    out = cf / f_max if f_max > 0 else cf.astype(np.float64)
    return out + (weight / s_max) * s


def recent_items(history: Any, n: int) -> np.ndarray:
    """The items of a `UserHistory`'s last `n` positive events, oldest first."""
    return history.positive_items(n)


def for_config(config: Any) -> CoVisits:
    """An empty state with a `FoldInConfig`'s session settings."""
    return CoVisits(config.session_window, config.session_decay, config.max_neighbors)


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
