"""The model version a recommender serves: item factors laid out by catalog index.

`ServedModel` holds the current `coldstart.ServedFactors` (None before any model: popularity
serves) and what is derived from it and the catalog: the vectors of catalog items outside the
model from their content (the similarity-weighted mean of the `CONTENT_NEIGHBOURS` model items
most similar by text and tags, `models.content_index`) or else their categories, the items
never recommended (inactive, or without a vector), and a partition's new items' vectors stacked
for scoring (its *overlay*).

A new version is swapped in two steps: `prepare` (the costly layout by catalog index and, for a
catalog of at least `AnnConfig.min_items`, the approximate index over its vectors,
`models.ann.MipsIndex`; it only reads the catalog, so it may run on another thread while the
recommender serves) and `swap` (cheap: places the items the catalog learnt meanwhile, then
exchanges references, so a reader sees the old version or the new one). Items that get a vector
between versions (their categories') join the index at once (`sync`).

>>> from models.catalog import ItemIndex
>>> from models.foldin import ItemFactors
>>> catalog = ItemIndex()
>>> served = ServedModel(catalog, alpha=2.0, regularization=5.0)
>>> served.version is None
True
>>> ready = served.prepare(ItemFactors(["a", "b"], np.eye(2, dtype=np.float32), version=4))
>>> served.swap(ready).factors.version, served.in_model(catalog.get("a"))
(4, True)
>>> catalog.set_item("b", False, None)  # b leaves the catalog: never recommended
1
>>> served.never_recommended().tolist()
[1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models import coldstart
from models.ann import AnnConfig, MipsIndex
from models.catalog import ItemIndex
from models.content_index import ContentIndex
from models.foldin import ItemFactors
from models.partition import stacked

_NO_INTERACTIONS = coldstart.ItemInteractions(0)
CONTENT_NEIGHBOURS = 20


@dataclass(frozen=True, slots=True)
class PreparedFactors:
    """A model version laid out for `ServedModel.swap` (`ServedModel.prepare`)."""

    served: coldstart.ServedFactors
    missing: np.ndarray
    """Model rows of the items the catalog did not know yet: the swap indexes them."""
    index: MipsIndex | None = None
    """The approximate index over the version's vectors (large catalogs only)."""

    @property
    def version(self) -> int:
        return self.served.factors.version


class ServedModel:
    """The current model version (`current`; None: no model yet) over `catalog`."""

    def __init__(self, catalog: ItemIndex, alpha: float, regularization: float,
                 ann: AnnConfig | None = None, content: ContentIndex | None = None) -> None:
        self.catalog = catalog
        self.alpha = alpha
        self.regularization = regularization
        self.ann = ann
        self.content = content
        self.described: set[int] = set()
        """Items with text or tags of their own (not only categories): their vector outside
        the model comes from their content."""
        self.current: coldstart.ServedFactors | None = None
        self.index: MipsIndex | None = None
        """The current version's approximate index, None: rankings scan every item."""
        self._dirty: set[int] = set()
        """Items outside the model whose category vector needs recomputing."""
        self._never: tuple[Any, ...] = (None, np.zeros(0, np.intp), np.zeros(0, bool))
        self._overlaid: tuple[Any, ...] = (None,)
        """`overlay`'s last result and what it was computed from."""
        self._counts: tuple[Any, np.ndarray] = (None, np.zeros(0))

    @property
    def version(self) -> int | None:
        return self.current.factors.version if self.current else None

    def in_model(self, item: int) -> bool:
        """Whether catalog item `item` has a row in the current model."""
        return self.current is not None and bool(self.current.in_model(item))

    def prepare(self, factors: ItemFactors, index: MipsIndex | None = None) -> PreparedFactors:
        """The costly part of `swap` (the layout by catalog index, the approximate index unless
        one over `factors.Y` is given); safe on another thread while the recommender serves: it
        only reads the catalog, which is append-only."""
        ids = factors.item_ids
        idx = np.fromiter(map(self.catalog.get, ids), dtype=np.intp, count=len(ids))
        known = idx >= 0
        n = max(len(self.catalog), int(idx.max(initial=-1)) + 1)
        served = coldstart.ServedFactors(factors, idx[known], n, np.flatnonzero(known))
        if index is not None:
            index.labels[:] = idx
        elif self.ann is not None and self.ann.enabled_for(max(n, len(ids))):
            index = MipsIndex(factors.Y, self.ann, labels=idx)  # unknown items: -1 until swap
        return PreparedFactors(served, np.flatnonzero(~known), index)

    def swap(self, factors: ItemFactors | PreparedFactors) -> coldstart.ServedFactors:
        """Serve a new version (prepared or not); returns it. The caller re-folds what depends
        on it (users' vectors lazily, partitions' new items)."""
        prepared = factors if isinstance(factors, PreparedFactors) else self.prepare(factors)
        m, missing, catalog = prepared.served, prepared.missing, self.catalog
        placed = catalog.index_many([m.factors.item_ids[r] for r in missing.tolist()])
        m.place(placed, missing)
        m.grow(len(catalog))
        if prepared.index is not None:
            prepared.index.labels[missing] = placed
        categorized = np.fromiter({*catalog.with_categories(), *self.described}, dtype=np.intp)
        self._dirty = set(categorized[m.row_of[categorized] < 0].tolist())
        self.current, self.index = m, prepared.index  # readers see old or new
        self._never = (None, *self._never[1:])
        return m

    def item_changed(self, item: int, categorized: bool, described: bool | None = None) -> None:
        """A catalog message for `item`: with categories (or, `described`, text or tags) and
        outside the model, its vector is recomputed at the next `sync`."""
        if described is not None:
            (self.described.add if described else self.described.discard)(item)
        if (categorized or item in self.described) and not self.in_model(item):
            self._dirty.add(item)

    def sync(self) -> None:
        """Size the arrays to the catalog; give changed items outside the model the vector of
        their categories (partitions give their own vectors to the items their users touched)."""
        m = self.current
        if m is None:
            return
        m.grow(len(self.catalog))
        if self._dirty:
            dirty, self._dirty = sorted(self._dirty), set()
            rest = [i for i in dirty if not self._content_vector(m, i)]
            m.refresh(rest, _NO_INTERACTIONS, {}, self.catalog, self.alpha, self.regularization)
            if self.index is not None:  # searchable at once, in the graph a few at a time
                self.index.add([i for i in dirty if m.has_vec[i]])
        if self.index is not None:
            self.index.drain(m.Y)

    def _content_vector(self, m: coldstart.ServedFactors, i: int) -> bool:
        """Give item `i` (outside the model) the similarity-weighted mean vector of its nearest
        model items by content; False when it has no content of its own or no such neighbour."""
        if self.content is None or i not in self.described or m.in_model(i):
            return False
        n = len(self.catalog)
        idx, sim = self.content.similar(i, CONTENT_NEIGHBOURS, n, m.row_of[:n] >= 0)
        if not len(idx):
            return False
        m.Y[i] = (sim[:, None] * m.Y[idx]).sum(axis=0) / sim.sum()
        m.has_vec[i] = True
        m.changes += 1
        return True

    def counts(self) -> np.ndarray:
        """Each catalog item's interactions in the current version's training data (0 for items
        outside it, or without a model or counts); cached per version and catalog size."""
        m, n = self.current, len(self.catalog)
        key = (None if m is None else m.factors.version, n)
        if self._counts[0] != key:
            out = np.zeros(n)
            if m is not None and m.factors.counts is not None:
                rows = m.row_of[:n]
                out[rows >= 0] = m.factors.counts[rows[rows >= 0]]
            self._counts = (key, out)
        return self._counts[1]

    def never_recommended(self) -> np.ndarray:
        """Inactive items and items without a vector (cached until either changes)."""
        return self._never_cached()[1]

    def never_mask(self) -> np.ndarray:
        """`never_recommended` as a mask over catalog indices."""
        return self._never_cached()[2]

    def _never_cached(self) -> tuple[Any, np.ndarray, np.ndarray]:
        m, n = self.current, len(self.catalog)
        assert m is not None
        key = (m.changes, self.catalog.version, n)
        if self._never[0] != key:
            mask = ~(self.catalog.active & m.has_vec[:n])
            self._never = (key, np.flatnonzero(mask), mask)
        return self._never  # type: ignore[return-value]

    def overlay(self, vectors: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The items with a vector in `vectors` (a partition's new items'), those vectors
        stacked, and the items never recommended with them. Cached on the dict's identity:
        partitions replace their `vectors` dict, never change it in place."""
        never = self.never_recommended()
        last = self._overlaid
        if last[0] is vectors and last[1] is never:
            return last[2:]
        new, V = stacked(vectors)
        shown = never
        if len(new):  # new items with a vector in the partition can be recommended
            shown = np.setdiff1d(never, new[self.catalog.active[new]], assume_unique=True)
        self._overlaid = (vectors, never, new, V, shown)
        return new, V, shown
