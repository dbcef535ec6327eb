"""What one partition's events build besides its users' histories, kept per partition.

Popularity, who touched each item outside the model, and those items' vectors (folded in from
their users) depend on the order of the events that built them. Events are partitioned by user,
so within a partition that order is fixed, while across partitions it depends on how batches
interleave them. Keeping this state per partition makes it a deterministic function of the
partition's own event sequence: a worker that restores it, or another worker that takes the
partition over, continues exactly where the last commit left it. Users are hash-partitioned, so
each partition's popularity is an unbiased sample of the global one.

`to_plain` / `load_plain` (restoring, in `OnlineRecommender`) speak item ids, never the
process-local indices; `save` / `revert` are the undo log of one micro-batch.

>>> part = PartitionState(half_life_seconds=10.0, max_item_users=2)
>>> part.trending.update(0, 1.0, t=0.0)
>>> part.cold.add(1, "u1", 2.0)
>>> part.changed.update({0, 1})
>>> plain = part.to_plain(["a", "b"], version=None)
>>> plain["items"]["a"], plain["items"]["b"]["users"]
({'pop': 1.0}, [['u1', 2.0]])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.adaptive_trending import AdaptiveTrending, AdaptiveUndo
from models.coldstart import ItemInteractions, item_vector_from_users
from models.covisit import CoVisits, Undo, for_config
from models.partition_popularity import (
    load_popularity,
    pop_columns,
    pop_values,
    popular,
    shifts_of,
    t_refs,
)
from models.trending import Trending, TrendingUndo

META_KEYS = ("events", "t_ref", "sh", "dirty", "trend")
"""The keys of `PartitionState.to_plain` that describe the partition, not an item (`trend`: the
adaptive trending's choice, only with one)."""


@dataclass(frozen=True, slots=True)
class PartitionUndo:
    """A partition's state before a batch touched it (see `PartitionState.save`)."""

    trending: TrendingUndo | AdaptiveUndo
    """The popularity's own journal: what the batch changed, not a copy of every item's."""
    cold: dict[int, list[tuple[str, float]] | None]
    vectors: dict[int, np.ndarray]
    events: int
    dirty: frozenset[int]
    changed: frozenset[int]
    rows_changed: frozenset[int]
    covisits: Undo


class PartitionState:
    """Popularity, interactions with items outside the model and those items' vectors, and
    co-visitation counts (`models.covisit`)."""

    __slots__ = ("changed", "cold", "covisits", "events", "rows_changed", "trending", "vectors")

    def __init__(
        self, half_life_seconds: float | Sequence[float], max_item_users: int,
        covisits: CoVisits | None = None,
    ) -> None:
        """`half_life_seconds`: of the trending counts; several: the ladder of an
        `AdaptiveTrending`, which serves the one whose lists the partition's events hit."""
        self.trending: Trending | AdaptiveTrending = (
            AdaptiveTrending(half_life_seconds) if isinstance(half_life_seconds, Sequence)
            else Trending(half_life_seconds))
        self.covisits = covisits if covisits is not None else CoVisits()
        self.cold = ItemInteractions(max_item_users)
        self.vectors: dict[int, np.ndarray] = {}
        """Vectors of items outside the model, from their users in this partition. Replaced,
        never changed in place: holding a reference is holding a snapshot."""
        self.events = 0
        """Events learned: refreshes of `vectors` happen at fixed counts, not at batch ends."""
        self.changed: set[int] = set()
        """Items whose plain state changed since the caller last took it (`take_changed`)."""
        self.rows_changed: set[int] = set()
        """Items whose co-visit row changed since then: a refresh, or a row restored from a
        record of an earlier version (which kept it in the item's record)."""

    def add_popularity(self, item: int, weight: float, t: float, newcomer: bool = False) -> None:
        """`Trending.update`, noting the changed item (a rescale changes no record: each item's
        record says the shift it was written at, `Trending.load`). `newcomer`: the event's user
        had few events before it (adaptive trending's choice)."""
        if isinstance(self.trending, AdaptiveTrending):
            self.trending.update(item, weight, t, newcomer)
        else:
            self.trending.update(item, weight, t)
        self.changed.add(item)

    def withdraw_popularity(self, item: int, weight: float, t: float) -> None:
        """Take back `weight` that `add_popularity` added at time `t` (`models.guard`)."""
        if isinstance(self.trending, AdaptiveTrending):
            self.trending.withdraw(item, weight, t)
        else:
            self.trending.update(item, -weight, t)
        self.changed.add(item)

    def share_popularity(self, item: int, shared: float, t: float,
                         back: Sequence[tuple[int, float, float]],
                         newcomer: bool = False) -> None:
        """An event's share of popularity (what the guard lets it add, `models.guard`), and
        what a newly flagged user's earlier events added (`back`: item, weight, time), taken
        back."""
        for j, w, tj in back:
            self.withdraw_popularity(j, w, tj)
        if shared > 0:
            self.add_popularity(item, shared, t, newcomer)

    def add_covisit(self, item: int, previous: np.ndarray,
                    active: np.ndarray | None = None) -> None:
        """`CoVisits.add`, noting the changed items; items not `active` (inactive or deleted
        from the catalog: their state was forgotten) take no part."""
        if active is not None:
            if not active[item]:
                return
            previous = previous[active[previous]]
        self.changed.update(self.covisits.add(item, previous))

    def refresh_covisits(self) -> None:
        """`CoVisits.refresh`, noting the changed items and rows."""
        rows = self.covisits.refresh()
        self.changed.update(rows)  # their buffered updates went into the rows
        self.rows_changed.update(rows)

    def set_vectors(self, updates: dict[int, np.ndarray | None]) -> None:
        """Copy-on-write update of `vectors` (None removes an item's vector)."""
        vectors = dict(self.vectors)
        for i, v in updates.items():
            if v is None:
                vectors.pop(i, None)
            else:
                vectors[i] = v
        self.vectors = vectors
        self.changed.update(updates)

    def refresh(
        self, items: Iterable[int], user_vectors: Mapping[str, np.ndarray | None],
        XtX: np.ndarray | None, alpha: float, regularization: float,
    ) -> None:
        """Fold in the vectors of `items` (outside the model) from the vectors of this
        partition's users who touched them; an item that no user with a vector touched has none
        here (its category vector, if any, serves)."""
        updates: dict[int, np.ndarray | None] = {}
        for i in items:
            touched = [(user_vectors[u], w) for u, w in self.cold.users_of(i).items()
                       if user_vectors.get(u) is not None]
            updates[i] = None if not touched else item_vector_from_users(
                np.stack([x for x, _ in touched]), np.array([w for _, w in touched]),  # type: ignore
                XtX, alpha, regularization)
        self.set_vectors(updates)

    def holds(self, item: int) -> bool:
        """Whether the partition has any state of `item`."""
        counted = any(item < len(c) and c[item] != 0 for c in pop_columns(self.trending))
        return counted or bool(self.cold.users_of(item)) or item in self.vectors or \
            item in set(self.covisits.items())

    def forget(self, item: int) -> None:
        """Drop everything of an item that left the catalog (the caller tombstones its
        records): popularity, interactions, vector, co-visit row and buffered updates."""
        self.trending.forget(item)
        self.cold.forget([item])
        self.cold.dirty.discard(item)
        if item in self.vectors:
            self.set_vectors({item: None})
        self.covisits.forget(item)
        self.changed.discard(item)
        self.rows_changed.discard(item)

    def take_changed(self) -> tuple[list[int], list[int]]:
        """The items and the co-visit rows changed since the last call (sorted), forgetting
        them."""
        items, rows = sorted(self.changed), sorted(self.rows_changed)
        self.changed, self.rows_changed = set(), set()
        return items, rows

    # -- undo log of one batch

    def save(self, items: Iterable[int]) -> PartitionUndo:
        """What `revert` needs to undo a batch whose events touch `items` (indices)."""
        cold = {i: list(self.cold.users_of(i).items()) or None for i in set(items)}
        return PartitionUndo(self.trending.journal(), cold, self.vectors, self.events,
                             frozenset(self.cold.dirty), frozenset(self.changed),
                             frozenset(self.rows_changed), self.covisits.journal())

    def revert(self, undo: PartitionUndo) -> None:
        """Put back the state `save` saw."""
        self.trending.revert(undo.trending)  # type: ignore[arg-type]
        for i, users in undo.cold.items():
            self.cold.forget([i])
            for u, w in users or ():
                self.cold.add(i, u, w)  # 0.0 + w == w: the saved sums come back exactly
        self.vectors = undo.vectors
        self.events = undo.events
        self.cold.dirty = set(undo.dirty)
        self.changed = set(undo.changed)
        self.rows_changed = set(undo.rows_changed)
        self.covisits.revert(undo.covisits)

    # -- plain data with item ids

    def to_plain(
        self, ids: Sequence[str], version: int | None, items: Iterable[int] | None = None,
        rows: Iterable[int] | None = None,
    ) -> dict[str, Any]:
        """Plain data (JSON friendly) of the partition: its counters; each of `items` (all items
        with state when None): raw popularity accumulator, buffered co-visit updates, users and
        weights if outside the model, and its vector with the model `version` it was folded in
        for; and the co-visit row of each of `rows` (all, in full, when `items` is None; else
        in full or as a delta, `CoVisits.records`)."""
        pop, shifts, whole = pop_columns(self.trending), shifts_of(self.trending), items is None
        if items is None:
            items = set(popular(self.trending).tolist()) | set(self.cold.items())
            items |= set(self.covisits.items())
            rows = self.covisits.rows()
        out: dict[str, dict[str, Any]] = {}
        items = sorted(items)
        pending_records = self.covisits.pending_records(items, ids)
        for i, popularity, pending in zip(items, pop_values(pop, items), pending_records,
                                          strict=True):
            entry: dict[str, Any] = {"pop": popularity}
            if shifts is not None:
                entry["sh"] = shifts
            if pending:
                entry["pend"] = pending
            users = self.cold.users_of(i)
            if users:
                v = self.vectors.get(i)
                entry.update(users=[[u, w] for u, w in users.items()], version=version,
                             vec=None if v is None else v.tolist())
            out[ids[i]] = entry
        co, deltas = self.covisits.records(sorted(rows or ()), ids, full=whole)
        plain = {"events": self.events, "t_ref": self.trending.t_ref, "deltas": deltas,
                 "dirty": [ids[i] for i in sorted(self.cold.dirty)], "items": out, "rows": co}
        if shifts is not None:
            plain["sh"] = shifts
        if isinstance(self.trending, AdaptiveTrending):
            selector = self.trending.selector_state()
            selector["tops"] = [[ids[i] for i in top] for top in selector["tops"]]
            plain.update(t_ref=t_refs(self.trending), trend=selector)
        return plain

    def load_plain(
        self,
        plain: Mapping[str, Any],
        index: Callable[[str], int],
        version: int | None,
        in_model: Callable[[int], bool],
    ) -> set[int]:
        """Install `to_plain` data into this (fresh) state. Items now in the model lose their
        interactions (as a model swap does); returns the items whose vectors were folded in for
        another model version, for the caller to fold in again."""
        for item_id, row in plain.get("rows", {}).items():
            self.covisits.load_row(index(item_id), row, index)
        self.covisits.load_deltas(plain.get("deltas", {}), index)
        entries = plain["items"]
        idx = [index(item_id) for item_id in entries]
        load_popularity(self.trending, plain, np.array(idx, dtype=np.intp),
                         list(entries.values()), index)
        stale, vectors = set(), {}
        for i, e in zip(idx, entries.values(), strict=True):
            self.covisits.load_pending(i, e.get("pend", ()), index)
            if "co" in e:  # an earlier version's record: the row inside, written again soon
                self.covisits.load_row(i, e["co"], index, own_record=False)
                self.covisits.load_pending(i, e["co"].get("pend", ()), index)
                self.rows_changed.add(i)
            if "users" not in e or in_model(i):
                continue
            for u, w in e["users"]:
                self.cold.add(i, u, w)
            if e["version"] != version:
                stale.add(i)
            elif e["vec"] is not None:
                vectors[i] = np.asarray(e["vec"], dtype=np.float32)
        self.vectors = vectors
        self.events = plain["events"]
        self.cold.dirty = {i for i in map(index, plain["dirty"]) if not in_model(i)}
        return stale


class Partitions:
    """The `PartitionState` of each events partition, made on first use with the sizes of a
    `FoldInConfig` (`trending_adaptive` and the half-lives, `max_item_users`, the co-visit
    settings)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._states: dict[int, PartitionState] = {}

    def fresh(self) -> PartitionState:
        """An empty state with this configuration (not registered: `put` it)."""
        cfg = self.config
        half_lives = tuple(cfg.trending_half_lives) if cfg.trending_adaptive \
            else cfg.trending_half_life_seconds
        return PartitionState(half_lives, cfg.max_item_users, for_config(cfg))

    def get(self, partition: int) -> PartitionState:
        """The partition's state, made empty on first use."""
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = self.fresh()
        return state

    def put(self, partition: int, state: PartitionState) -> None:
        self._states[partition] = state

    def drop(self, partition: int) -> None:
        """Forget a partition's state (it moved to another worker)."""
        self._states.pop(partition, None)

    def states(self) -> Iterable[PartitionState]:
        return self._states.values()

    def forget(self, item: int, partitions: Iterable[int]) -> list[int]:
        """Forget an item (it left the catalog) in `partitions`; returns those that held it."""
        held = [p for p in partitions if self.get(p).holds(item)]
        for p in held:
            self.get(p).forget(item)
        return held


def stacked(vectors: Mapping[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The items (indices) of `PartitionState.vectors` and their vectors stacked in rows."""
    if not vectors:
        return np.zeros(0, np.intp), np.zeros((0, 0), np.float32)
    return np.fromiter(vectors, np.intp, len(vectors)), np.stack(list(vectors.values()))
