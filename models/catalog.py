"""Item ids ↔ dense indices, growing as items appear, with active flags and categories.

Indices are local to a process (assigned in order of first sight): anything checkpointed or sent
elsewhere carries item ids, never indices.

>>> cat = ItemIndex()
>>> cat.index("sku-9"), cat.index("sku-2"), cat.index("sku-9")
(0, 1, 0)
>>> cat.set_item("sku-2", active=False, categories=["shoes"])
1
>>> cat.active.tolist(), cat.items_in_category("shoes").tolist(), cat.get("nope")
([True, False], [1], -1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


class ItemIndex:
    """Dense, append-only index of item ids; active flags and categories per item."""

    def __init__(self, item_ids: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self.ids: list[str] = []
        self._active = np.ones(1024, dtype=bool)
        self._inactive: set[int] = set()
        self._categories: dict[int, tuple[str, ...]] = {}
        self._members: dict[str, dict[int, None]] = {}
        self._member_arrays: dict[str, np.ndarray] = {}
        self.version = 0
        """Bumped whenever active flags or categories change (lets callers cache derived data)."""
        self._names = np.full(1024, None, dtype=object)
        self._named = 0
        for item_id in item_ids:
            self.index(item_id)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    def index(self, item_id: str) -> int:
        """The index of `item_id`, adding it (active, no categories) if new."""
        i = self._index.get(item_id)
        if i is None:
            i = self._index[item_id] = len(self.ids)
            self.ids.append(item_id)
            if i >= len(self._active):
                self._active = np.concatenate([self._active, np.ones(i + 1, dtype=bool)])
        return i

    def names(self) -> np.ndarray:
        """The ids as an object array with None past the last one (index -1 names None), e.g.
        to name many indices at once: `catalog.names()[idx].tolist()`. Kept with room to
        spare: a growing catalog copies in only the ids that joined since the last call.

        >>> ItemIndex(["a", "b"]).names()[[1, 0, -1]].tolist()
        ['b', 'a', None]
        """
        names, named, n = self._names, self._named, len(self.ids)
        if len(names) <= n:
            grown = np.full(2 * n, None, dtype=object)
            grown[:named] = names[:named]
            names = self._names = grown
        if named < n:
            names[named:n] = self.ids[named:n]
            self._named = n
        return names

    def index_many(self, item_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter(map(self.index, item_ids), dtype=np.intp, count=len(item_ids))

    def get(self, item_id: str) -> int:
        """The index of `item_id`, or -1 if unknown."""
        return self._index.get(item_id, -1)

    @property
    def active(self) -> np.ndarray:
        """Active flag per index (a view)."""
        return self._active[: len(self.ids)]

    def all_active(self) -> bool:
        """Whether no item is inactive (then `active` need not be read)."""
        return not self._inactive

    def set_item(
        self, item_id: str, active: bool = True, categories: Iterable[str] | None = None
    ) -> int:
        """Apply a catalog message; `categories=None` keeps the known ones."""
        i = self.index(item_id)
        self._active[i] = active
        if active:
            self._inactive.discard(i)
        else:
            self._inactive.add(i)
        if categories is not None:
            for cat in self._categories.pop(i, ()):
                self._members[cat].pop(i, None)
                self._member_arrays.pop(cat, None)
            cats = tuple(dict.fromkeys(categories))
            if cats:
                self._categories[i] = cats
            for cat in cats:
                self._members.setdefault(cat, {})[i] = None
                self._member_arrays.pop(cat, None)
        self.version += 1
        return i

    def categories_of(self, i: int) -> tuple[str, ...]:
        return self._categories.get(i, ())

    def with_categories(self) -> list[int]:
        """Indices of the items that have at least one category."""
        return list(self._categories)

    def items_in_category(self, category: str) -> np.ndarray:
        """Indices of the items in `category`, sorted (cached until it changes)."""
        arr = self._member_arrays.get(category)
        if arr is None:
            arr = np.array(sorted(self._members.get(category, ())), dtype=np.intp)
            self._member_arrays[category] = arr
        return arr
