"""What `refold serve` answers from: users' lists, the catalog, similar items and trending, with
the read-time filters. No Kafka here (`consumers.serve_view` feeds it), and no clock it is not
handed.

A user's answer is their latest published list with, at read time:

- items the catalog marks inactive left out (a list published before the item was deactivated
  still holds it until the user's next event);
- items the user dismissed after the list was made left out (`UserLists.dismiss`: the events
  topic is read for dismissals, which are held until a list that answers them arrives);
- the caller's `exclude` and `category` applied;
- then, when fewer than `k` remain, popular items (the same filters) appended.

A user without a list (new, anonymous, or one this replica does not hold because it was evicted)
gets trending: time-decayed popularity (`models.trending`) of the positive events read.

A replica can hold a subset of the recommendations partitions; a user belongs to partition
crc32(user id) mod partitions, the partitioner of librdkafka (the workers' producer), and a
request for a user of another partition raises `NotHere` instead of answering with trending.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from consumers.packed_lists import PackedList, UserLists
from consumers.serve_messages import (
    Neighbour,
    PopularAnswer,
    Reason,
    ServedItem,
    SimilarAnswer,
    UserRecommendations,
)
from models.topk import topk
from models.trending import Trending
from models.weights import EventWeights
from refold.core.errors import ConsumerError

POPULAR_DEPTH = 200
"""Popular items kept per category between refreshes (fills and `popular` answers take from it)."""
VERBS = {"view": "viewed", "click": "clicked", "add_to_cart": "added", "purchase": "bought",
         "bookmark": "saved", "rating": "rated"}


class NotHere(ConsumerError, LookupError):
    """The user's partition is not held by this replica."""

    def __init__(self, user: str, partition: int) -> None:
        self.partition = partition
        super().__init__(f"user {user!r} is on recommendations partition {partition}, "
                         "which this replica does not hold")


@dataclass
class Catalog:
    """Item ids interned to indices, with what the filters and explanations need."""

    ids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    active: bytearray = field(default_factory=bytearray)
    categories: list[tuple[str, ...]] = field(default_factory=list)
    titles: list[str | None] = field(default_factory=list)
    members: dict[str, set[int]] = field(default_factory=dict)
    """Items per category."""
    version: int = 0
    """Bumped on every change that can change a popular list."""

    def of(self, item_id: str) -> int:
        """The item's index, interning it (active, no categories) when new."""
        i = self.index.get(item_id)
        if i is None:
            i = self.index[item_id] = len(self.ids)
            self.ids.append(item_id)
            self.active.append(1)
            self.categories.append(())
            self.titles.append(None)
        return i

    def set(self, item_id: str, active: bool, categories: Sequence[str],
            title: str | None = None) -> None:
        i = self.of(item_id)
        self.active[i] = int(active)
        for c in self.categories[i]:
            self.members[c].discard(i)
        for c in categories:
            self.members.setdefault(c, set()).add(i)
        self.categories[i] = tuple(categories)
        self.titles[i] = title
        self.version += 1

    def name(self, i: int) -> str:
        return self.titles[i] or self.ids[i]


class ServeState:
    """Lists, catalog, similar items and trending of one serve process (see the module doc)."""

    def __init__(self, partitions: int = 1, held: Iterable[int] | None = None,
                 max_users: int = 10_000_000, weights: EventWeights | None = None,
                 trending_half_life: float = 7 * 86400.0, popular_refresh: float = 1.0) -> None:
        self.partitions = partitions
        self.held = None if held is None else frozenset(held)
        self.lists = UserLists(max_users=max_users)
        self.catalog = Catalog()
        self.similar_lists: dict[int, tuple[int, bytes]] = {}
        """Item index -> (model version, packed neighbours: n × u32 then n × f32)."""
        self.weights = weights or EventWeights()
        self.trending = Trending(trending_half_life)
        self.popular_refresh = popular_refresh
        self.newest_event = 0.0
        self._popular: dict[str | None, tuple[float, int, list[int]]] = {}

    # -- what the topics say

    def owns(self, user: bytes) -> int | None:
        """None if this replica holds the user's partition, else the partition."""
        if self.held is None:
            return None
        p = zlib.crc32(user) % self.partitions
        return None if p in self.held else p

    def put_list(self, user_id: str, items: Sequence[str], scores: Sequence[float],
                 source: str, model_version: int | None, generated_at: float,
                 cause_offset: int | None = None,
                 basis: Sequence[tuple[str, str | None]] = ()) -> None:
        """A user's latest list; `basis` is (item, event kind) of the user's latest positive
        events, newest first."""
        of = self.catalog.of
        self.lists.put(user_id.encode(), PackedList(
            source, [of(i) for i in items], list(scores), model_version,  # type: ignore[arg-type]
            cause_offset, generated_at, [of(i) for i, _ in basis], [k for _, k in basis]))

    def delete_list(self, user_id: str) -> None:
        self.lists.delete(user_id.encode())

    def set_item(self, item_id: str, active: bool, categories: Sequence[str] = (),
                 title: str | None = None) -> None:
        self.catalog.set(item_id, active, categories, title)

    def set_similar(self, item_id: str, neighbours: Sequence[tuple[str, float]],
                    model_version: int) -> None:
        of, n = self.catalog.of, len(neighbours)
        packed = np.array([of(j) for j, _ in neighbours], "<u4").tobytes() + \
            np.array([s for _, s in neighbours], "<f4").tobytes()
        self.similar_lists[of(item_id)] = (model_version, packed if n else b"")

    def delete_similar(self, item_id: str) -> None:
        i = self.catalog.index.get(item_id)
        if i is not None:
            self.similar_lists.pop(i, None)

    def event(self, user_id: str, item_id: str, event_type: str, event_time: float,
              offset: int, value: float | None = None, weight: float | None = None) -> None:
        """One event read from the events topic: trending, and dismissals."""
        i = self.catalog.of(item_id)
        if event_type == "dismiss":
            user = user_id.encode()
            if self.owns(user) is None:
                self.lists.dismiss(user, i, offset)
            return
        w = self.weights.weight(event_type, value, weight)
        if w > 0:  # negative signals never add to popularity
            self.trending.update(i, w, event_time)
            self.newest_event = max(self.newest_event, event_time)

    # -- answers

    def recommend(self, user_id: str, k: int, now: float, category: str | None = None,
                  exclude: Iterable[str] = (), explain: bool = False) -> UserRecommendations:
        user = user_id.encode()
        if (p := self.owns(user)) is not None:
            raise NotHere(user_id, p)
        packed = self.lists.get(user)
        hidden = self.lists.dismissed(user)
        index = self.catalog.index
        hidden.update(i for x in exclude if (i := index.get(x)) is not None)
        out: list[ServedItem] = []
        if packed is not None:
            out = self._listed(packed, k, hidden, category)
        if len(out) < k:
            taken = {index[x.item_id] for x in out}
            for i, s in self._popular_list(category, now):
                if i not in taken and i not in hidden:
                    out.append(ServedItem(item_id=self.catalog.ids[i], score=s, source="popular"))
                    if len(out) == k:
                        break
        if explain:
            self._explain(out, packed, category)
        if packed is None:
            return UserRecommendations(user_id=user_id, source="popular", model_version=None,
                                       generated_at=None, items=out)
        return UserRecommendations(user_id=user_id, source=packed.source,
                                   model_version=packed.model_version,
                                   generated_at=packed.generated_at, items=out)

    def similar(self, item_id: str, k: int) -> SimilarAnswer | None:
        """The item's active neighbours, None for an item never seen."""
        i = self.catalog.index.get(item_id)
        if i is None:
            return None
        version, nbrs = self._neighbours(i)
        active = self.catalog.active
        items = [Neighbour(self.catalog.ids[j], s) for j, s in nbrs if active[j]][:k]
        return SimilarAnswer(item_id=item_id, model_version=version, items=items)

    def popular(self, k: int, now: float, category: str | None = None) -> PopularAnswer:
        items = [Neighbour(self.catalog.ids[i], s) for i, s in self._popular_list(category, now)]
        return PopularAnswer(category=category, items=items[:k])

    # -- helpers

    def _listed(self, packed: PackedList, k: int, hidden: set[int],
                category: str | None) -> list[ServedItem]:
        """The first `k` items of the user's list that may be shown (the per-request hot path:
        one pass, locals only)."""
        active, ids, cats, source = (self.catalog.active, self.catalog.ids,
                                     self.catalog.categories, packed.source)
        out = []
        for i, s in zip(packed.items, packed.scores, strict=True):
            if active[i] and i not in hidden and (category is None or category in cats[i]):
                out.append(ServedItem(item_id=ids[i], score=s, source=source))
                if len(out) == k:
                    break
        return out

    def _neighbours(self, i: int) -> tuple[int | None, list[tuple[int, float]]]:
        version, packed = self.similar_lists.get(i, (None, b""))
        n = len(packed) // 8
        idx = np.frombuffer(packed, "<u4", n).tolist()
        val = np.frombuffer(packed, "<f4", n, offset=4 * n).tolist()
        return version, list(zip(idx, val, strict=True))

    def _popular_list(self, category: str | None, now: float) -> list[tuple[int, float]]:
        """Active items of `category` by decayed popularity, with their scores, as of the last
        refresh (every `popular_refresh` seconds, and when the catalog changed)."""
        if category is not None and category not in self.catalog.members:
            return []  # and no cache entry: categories in requests are not bounded
        at, version, items = self._popular.get(category, (-math.inf, -1, []))
        if now - at >= self.popular_refresh or version != self.catalog.version:
            items = self._rank_popular(category)
            self._popular[category] = (now, self.catalog.version, items)
        return items

    def _rank_popular(self, category: str | None) -> list[tuple[int, float]]:
        # decayed to the newest event read (event time: a replayed log's times may be years
        # before the wall clock, which would decay every score to zero)
        scores = self.trending.scores(self.newest_event)
        n = len(scores)
        hide = np.frombuffer(bytes(self.catalog.active[:n]), np.uint8) == 0
        if category is not None:
            members = np.fromiter(self.catalog.members.get(category, ()), np.intp)
            inside = np.zeros(n, dtype=bool)
            inside[members[members < n]] = True
            hide |= ~inside
        hide |= scores <= 0
        idx, _ = topk(scores, POPULAR_DEPTH, np.flatnonzero(hide))
        return [(i, float(scores[i])) for i in idx.tolist() if not hide[i]]

    def _explain(self, out: list[ServedItem], packed: PackedList | None,
                 category: str | None) -> None:
        """Set each item's reason: the basis item most similar to it, else popularity."""
        related: dict[int, tuple[float, int]] = {}  # item -> (similarity, basis position)
        basis = packed.basis if packed is not None else []
        for pos, j in enumerate(basis):
            for i, s in self._neighbours(j)[1]:
                if s > related.get(i, (-math.inf, 0))[0]:
                    related[i] = (s, pos)
        index = self.catalog.index
        for item in out:
            i = index[item.item_id]
            if item.source == "popular" or packed is None:
                item.reason = self._popular_reason(i, category)
                continue
            best = related.get(i)
            for j, s in self._neighbours(i)[1]:  # the item's own neighbours: the other way
                if j in basis and (best is None or s > best[0]):
                    best = (s, basis.index(j))
            if best is not None:
                j = basis[best[1]]
                verb = VERBS.get(packed.basis_kinds[best[1]], "liked")
                item.reason = Reason(kind="similar", item_id=self.catalog.ids[j],
                                     text=f"because you {verb} {self.catalog.name(j)}")
            else:
                item.reason = Reason(kind="profile", text="close to your recent activity")

    def _popular_reason(self, i: int, category: str | None) -> Reason:
        cats = self.catalog.categories[i]
        cat = category or (cats[0] if cats else None)
        if cat is None:
            return Reason(kind="popular", text="popular now")
        return Reason(kind="popular", category=cat, text=f"popular in {cat}")
