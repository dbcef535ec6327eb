"""Cold start: how much to trust collaborative filtering, rank blending, vectors for new items.

**Blend weight.** A user with n positive model items gets w_cf = n / (n + shrink); below
`min_events` w_cf = 0 (pure popularity), from `full_events` on w_cf = 1 (pure CF, the fast path).

**Blend scale.** Lists are blended on truncated ranks (a weighted Borda count): an item ranked r
(0-based) among the top `depth` of a list earns weight·(depth − r)/depth, nothing below. CF scores
are unbounded dot products and decayed popularity is heavy-tailed with most items at zero, so
z-scores would be driven by popularity's tail and by how many items have no events; ranks are
scale-free and ignore both. Truncation makes the blend exact with two top-`depth` selections
(every unranked item scores 0), i.e. O(items) per user instead of a full sort.

>>> cf_weight(0), cf_weight(5), cf_weight(25)
(0.0, 0.5, 1.0)
>>> cf, pop = np.array([3.0, 2.0, 1.0]), np.array([0.0, 1.0, 9.0])
>>> idx, score = rank_blend([cf, pop], [0.75, 0.25], k=3, depth=2)
>>> idx.tolist(), score.tolist()   # item 1 is second in both lists
([0, 1, 2], [0.75, 0.5, 0.25])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from models import selection
from models.catalog import ItemIndex
from models.foldin import ItemFactors, fold_in_batch
from models.topk import Exclude, topk

SOURCES = ("collaborative", "content", "popular")
"""`Recs.source` values, in the order that wins a tie of list weights."""


def cf_weight(
    n: int, shrink: float = 5.0, min_events: int = 1, full_events: int | None = 20
) -> float:
    """Weight of collaborative filtering for a user with `n` positive model items."""
    if n < min_events or n <= 0:
        return 0.0
    if full_events is not None and n >= full_events:
        return 1.0
    return n / (n + shrink)


def list_weights(
    w_cf: float, has_content: bool, content_weight: float = 0.5
) -> tuple[tuple[float, float, float], str]:
    """Weights of the (collaborative, content, popular) lists and the dominant source: content
    takes `content_weight` of what CF leaves, when the user's items have categories.

    >>> list_weights(0.25, True)
    ((0.25, 0.375, 0.375), 'content')
    """
    w_content = (1.0 - w_cf) * content_weight if has_content else 0.0
    weights = (w_cf, w_content, 1.0 - w_cf - w_content)
    return weights, SOURCES[int(np.argmax(weights))]


def rank_blend(
    scores: Sequence[np.ndarray],
    weights: Sequence[float],
    k: int,
    depth: int,
    exclude: Exclude = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top `k` of the weighted truncated-rank blend of score arrays (ties by index).

    -inf scores and excluded items are never ranked; an item ranked by no list is not returned.
    """
    tops = [topk(s, depth, exclude)[0] if w > 0 else None
            for s, w in zip(scores, weights, strict=True)]
    return blend_ranks(tops, weights, k, depth)


def blend_ranks(
    tops: Sequence[np.ndarray | None], weights: Sequence[float], k: int, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """`rank_blend` of lists already ranked: `tops[j]`, the best `depth` items of list j best
    first (None where its weight is 0), e.g. selected from a list's candidates only.

    >>> blend_ranks([np.array([0, 1]), np.array([2, 1])], [0.75, 0.25], k=3, depth=2)[0].tolist()
    [0, 1, 2]
    """
    lists, gains, ends = [], [], []
    for idx, w in zip(tops, weights, strict=True):
        if w > 0 and idx is not None:
            lists.append(idx)
            gains.append(float(w))
            ends.append(len(idx) + (ends[-1] if ends else 0))
    if not ends or not ends[-1]:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    items = np.concatenate(lists).astype(np.int64, copy=False)
    return selection.blend_ranks(items, np.array(ends, np.int64), np.array(gains), k, depth)


def item_vector_from_users(
    X: np.ndarray, weights: np.ndarray, XtX: np.ndarray | None, alpha: float, regularization: float
) -> np.ndarray | None:
    """A new item's vector from the vectors `X` (m, k) of the users who touched it and their
    summed weights: the user fold-in with roles swapped (exactly implicit's `recalculate_item`
    when `XtX` is the training users' Gramian; without it, unobserved users are ignored)."""
    Xi, ok = fold_in_batch(X, XtX, [np.arange(len(X))], [weights], alpha, regularization)
    return Xi[0] if ok[0] else None


def item_vector_from_categories(
    categories: Sequence[str], catalog: ItemIndex, Y: np.ndarray, in_model: np.ndarray
) -> np.ndarray | None:
    """Mean factor vector of the model items sharing any of `categories` (None if there are none).

    `Y` holds a row per catalog index and `in_model` flags rows that come from the fitted model.
    """
    if not categories:
        return None
    members = np.unique(np.concatenate([catalog.items_in_category(c) for c in categories]))
    members = members[members < len(in_model)]
    members = members[in_model[members]]
    return Y[members].mean(axis=0) if len(members) else None


class ItemInteractions:
    """Who touched each item outside the model, with summed weights; the newest `max_users` users
    per item are kept. `dirty` holds the items whose vector needs recomputing."""

    def __init__(self, max_users: int = 1000) -> None:
        self.max_users = max_users
        self._users: dict[int, dict[str, float]] = {}
        self.dirty: set[int] = set()

    def add(self, item: int, user_id: str, weight: float) -> None:
        users = self._users.setdefault(item, {})
        users[user_id] = users.pop(user_id, 0.0) + weight
        if len(users) > self.max_users:
            del users[next(iter(users))]
        self.dirty.add(item)

    def users_of(self, item: int) -> Mapping[str, float]:
        return self._users.get(item, {})

    def items(self) -> list[int]:
        return list(self._users)

    def forget(self, items: Iterable[int]) -> None:
        for i in items:
            self._users.pop(i, None)


class ServedFactors:
    """One model version laid out by catalog index, plus vectors for the items outside it.

    `Y` has a row per catalog index (zeros where `has_vec` is False); `row_of` maps a catalog index
    to its row in the model's own `factors.Y`, or -1 for items outside the model.
    """

    __slots__ = ("Y", "changes", "factors", "has_vec", "row_of")

    def __init__(self, factors: ItemFactors, idx: np.ndarray, n: int,
                 rows: np.ndarray | None = None) -> None:
        """Model rows `rows` (default: all, in order) go to catalog indices `idx`."""
        rows = np.arange(len(idx)) if rows is None else rows
        self.factors = factors
        self.Y = np.zeros((max(n, 16), factors.factors), dtype=np.float32)
        self.Y[idx] = factors.Y[rows] if len(rows) < len(factors.Y) else factors.Y
        self.row_of = np.full(len(self.Y), -1, dtype=np.intp)
        self.row_of[idx] = rows
        self.has_vec = self.row_of >= 0
        self.changes = 0
        """Bumped whenever `has_vec` changes (callers cache what they derive from it)."""

    def place(self, idx: np.ndarray, rows: np.ndarray) -> None:
        """Put model rows `rows` at catalog indices `idx` (items indexed after the layout)."""
        if len(idx):
            self.grow(int(idx.max()) + 1)
            self.Y[idx] = self.factors.Y[rows]
            self.row_of[idx] = rows
            self.has_vec[idx] = True
            self.changes += 1

    def grow(self, n: int) -> None:
        """Make room for catalog indices 0..n-1 (doubling, so amortised O(1) per new item)."""
        old = len(self.row_of)
        if n > old:
            extra = max(n, 2 * old) - old
            self.Y = np.concatenate([self.Y, np.zeros((extra, self.Y.shape[1]), np.float32)])
            self.row_of = np.concatenate([self.row_of, np.full(extra, -1, np.intp)])
            self.has_vec = np.concatenate([self.has_vec, np.zeros(extra, bool)])

    def in_model(self, i: int) -> bool:
        return i < len(self.row_of) and self.row_of[i] >= 0

    def refresh(
        self,
        items: Iterable[int],
        interactions: ItemInteractions,
        user_vectors: Mapping[str, np.ndarray | None],
        catalog: ItemIndex,
        alpha: float,
        regularization: float,
    ) -> None:
        """Give each item outside the model a vector: from its users if any has a vector, else
        from its categories, else none (it then cannot be recommended by CF)."""
        for i in items:
            if self.in_model(i):
                continue
            touched = [(user_vectors[u], w) for u, w in interactions.users_of(i).items()
                       if user_vectors.get(u) is not None]
            v = None
            if touched:
                X, w = np.stack([t[0] for t in touched]), np.array([t[1] for t in touched])
                v = item_vector_from_users(X, w, self.factors.XtX, alpha, regularization)
            if v is None:
                v = item_vector_from_categories(
                    catalog.categories_of(i), catalog, self.Y, self.row_of >= 0)
            self.Y[i] = 0.0 if v is None else v
            self.has_vec[i] = v is not None
            self.changes += 1
