"""The refitter's interaction store: bounded, time-decayed, confidence-weighted user × item entries.

Events are weighed with the consumer's `EventWeights` and appended to a buffer of packed arrays.
When the buffer is full it is compacted into one entry per (user, item): the entry's weight decayed
to its own latest event time, and that time. Decay is exponential in event time, so an entry of
weight w at time t weighs w · 2^(-(T - t) / half_life) at a later time T and merging is exact.

Bounds, applied at each compaction: entries whose latest event is older than `window_seconds` before
the newest event time go; then the users, items and entries with the oldest latest events are
evicted beyond `max_users`, `max_items` and `max_nnz`. An entry costs 32 bytes, a buffered event 24,
an id about `ID_BYTES` + its length; `memory_bytes()` adds them up and `memory_bound()` is what it
can reach (the buffer holds at most max(`buffer_size`, nnz / 2) events, which keeps compaction
amortised O(log nnz) per event).

>>> s = InteractionStore(StoreConfig(half_life_seconds=10.0, buffer_size=2))
>>> for user, item, kind, t in [("u1", "a", "purchase", 0.0), ("u1", "a", "purchase", 10.0),
...                             ("u2", "b", "click", 10.0)]:
...     _ = s.add(user, item, kind, t)
>>> d = s.training_data()
>>> d.user_ids, d.item_ids, d.matrix.toarray().astype(float).round(2).tolist()
(['u1', 'u2'], ['a', 'b'], [[1.5, 0.0], [0.0, 0.3]])
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import scipy.sparse as sp

from models.errors import ModelError
from models.snapshot import pack, unpack
from models.weights import EventWeights

MAGIC = b"RFLDSTO1"
ID_BYTES = 160
"""Estimated bytes per id held (str object, list slot, dict entry), on top of its characters."""
ENTRY_BYTES = 32
BUFFERED_BYTES = 24


@dataclass(frozen=True)
class StoreConfig:
    """Window, decay and bounds. 0 means "no limit" for `window_seconds` and `half_life_seconds`."""

    window_seconds: float = 0.0
    half_life_seconds: float = 0.0
    max_users: int = 1_000_000
    max_items: int = 1_000_000
    max_nnz: int = 20_000_000
    buffer_size: int = 100_000
    min_weight: float = 1e-4
    """Entries whose decayed weight is smaller in magnitude are left out of the training matrix."""

    @classmethod
    def days(cls, window_days: float, **kwargs: Any) -> StoreConfig:
        return cls(window_seconds=window_days * 86400.0, **kwargs)


@dataclass
class TrainingData:
    """Users × items float32 CSRs of decayed weights: `matrix` to train on, `full` with the
    held-out entries too, and `holdout` the held-out positives (1.0) for recall@K."""

    user_ids: list[str]
    item_ids: list[str]
    matrix: sp.csr_matrix
    holdout: sp.csr_matrix
    max_event_time: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    full: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        if self.full is None:
            self.full = self.matrix


class _Ids:
    """Ids ↔ dense indices."""

    def __init__(self, ids: list[str] | None = None) -> None:
        self.ids: list[str] = list(ids or [])
        self.index = {x: i for i, x in enumerate(self.ids)}
        self.chars = sum(map(len, self.ids))

    def get(self, x: str) -> int:
        i = self.index.get(x)
        if i is None:
            i = self.index[x] = len(self.ids)
            self.ids.append(x)
            self.chars += len(x)
        return i

    def keep(self, rows: np.ndarray) -> np.ndarray:
        """Keep only `rows` (sorted); returns old index → new index (-1 for dropped)."""
        remap = np.full(len(self.ids), -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows))
        self.__init__([self.ids[r] for r in rows.tolist()])  # type: ignore[misc]
        return remap


class InteractionStore:
    """Accumulates weighted interactions within bounds; see the module docstring."""

    def __init__(self, config: StoreConfig | None = None,
                 weights: EventWeights | None = None) -> None:
        self.config = config or StoreConfig()
        self.weights = weights or EventWeights()
        self.users, self.items = _Ids(), _Ids()
        self._u = np.zeros(0, np.int32)
        self._i = np.zeros(0, np.int32)
        self._w = np.zeros(0, np.float32)
        self._t = np.zeros(0, np.float64)
        self._t0 = np.zeros(0, np.float64)
        """Time of each entry's first event (a holdout must be new to the live model)."""
        self._buf = (array("i"), array("i"), array("f"), array("d"))
        self.max_event_time = 0.0
        self.events = 0
        self.evicted = 0
        """Entries dropped by the window or the bounds (counted at compaction)."""
        self.meta: dict[str, Any] = {}
        """Opaque metadata saved with the checkpoint (the refitter keeps its offsets here)."""

    # -- input
    def add(self, user_id: str, item_id: str, event_type: str, event_time: float,
            value: float | None = None, override: float | None = None) -> float:
        """Record one event; returns its weight (the consumer's, from `EventWeights`)."""
        w = self.weights.weight(event_type, value, override)
        self.add_weight(user_id, item_id, w, event_time)
        return w

    def add_weight(self, user_id: str, item_id: str, weight: float, event_time: float) -> None:
        """Record an already weighed interaction."""
        bu, bi, bw, bt = self._buf
        bu.append(self.users.get(user_id))
        bi.append(self.items.get(item_id))
        bw.append(weight)
        bt.append(event_time)
        self.events += 1
        self.max_event_time = max(self.max_event_time, float(event_time))
        if len(bu) >= max(self.config.buffer_size, len(self._u) // 2):
            self.compact()

    # -- bounds
    def compact(self) -> None:
        """Merge the buffer into the entries, then apply the window and the bounds."""
        bu, bi, bw, bt = self._buf
        u = np.concatenate([self._u, np.frombuffer(bu, np.int32)])
        i = np.concatenate([self._i, np.frombuffer(bi, np.int32)])
        w = np.concatenate([self._w, np.frombuffer(bw, np.float32)]).astype(np.float64)
        t = np.concatenate([self._t, np.frombuffer(bt, np.float64)])
        t0 = np.concatenate([self._t0, np.frombuffer(bt, np.float64)])
        self._buf = (array("i"), array("i"), array("f"), array("d"))
        key = (u.astype(np.int64) << 32) | i
        order = np.argsort(key)
        key, u, i, w, t, t0 = key[order], u[order], i[order], w[order], t[order], t0[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else key[:0]
        # One entry per (user, item): its latest time, the weights decayed to that time.
        t_last = np.maximum.reduceat(t, starts) if len(key) else t
        self._t0 = np.minimum.reduceat(t0, starts) if len(key) else t0
        group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(key)]))
        w = np.add.reduceat(w * self._decay(t_last[group] - t), starts) if len(key) else w
        self._u, self._i, self._w, self._t = u[starts], i[starts], w.astype(np.float32), t_last
        before = len(self._u)
        keep = np.abs(self._w) > 0
        if self.config.window_seconds > 0:
            keep &= self._t >= self.max_event_time - self.config.window_seconds
        self._filter(keep)
        self._filter(_newest_groups(self._u, self._t, self.config.max_users))
        self._filter(_newest_groups(self._i, self._t, self.config.max_items))
        if len(self._t) > self.config.max_nnz:
            newest = np.argpartition(self._t, len(self._t) - self.config.max_nnz)
            keep = np.zeros(len(self._t), bool)
            keep[newest[len(self._t) - self.config.max_nnz:]] = True
            self._filter(keep)
        self.evicted += before - len(self._u)
        self._drop_unused_ids()

    def _decay(self, age: np.ndarray) -> np.ndarray:
        h = self.config.half_life_seconds
        return np.exp2(-np.maximum(age, 0.0) / h) if h > 0 else np.ones_like(age)

    def _filter(self, keep: np.ndarray) -> None:
        if not keep.all():
            self._u, self._i, self._w, self._t, self._t0 = (
                a[keep] for a in (self._u, self._i, self._w, self._t, self._t0))

    def _drop_unused_ids(self) -> None:
        """Forget ids without entries once they are a tenth of the table."""
        for ids, col in ((self.users, "_u"), (self.items, "_i")):
            used = np.unique(getattr(self, col))
            if len(ids.ids) > 1.1 * len(used) + 1000:
                setattr(self, col, ids.keep(used)[getattr(self, col)].astype(np.int32))

    # -- output
    @property
    def nnz(self) -> int:
        return len(self._u) + len(self._buf[0])

    def memory_bytes(self) -> int:
        """What the store holds now: entries, buffer and ids (ids estimated, see `ID_BYTES`)."""
        ids = (len(self.users.ids) + len(self.items.ids)) * ID_BYTES
        return len(self._u) * ENTRY_BYTES + len(self._buf[0]) * BUFFERED_BYTES + ids + \
            self.users.chars + self.items.chars

    def memory_bound(self, max_id_chars: int = 64) -> int:
        """The most `memory_bytes()` can reach with ids of up to `max_id_chars` characters."""
        c = self.config
        buffered = max(c.buffer_size, c.max_nnz // 2)
        ids = (1.1 * (c.max_users + c.max_items) + 2000 + 2 * buffered) * (ID_BYTES + max_id_chars)
        return int(c.max_nnz * ENTRY_BYTES + buffered * BUFFERED_BYTES + ids)

    def stats(self) -> dict[str, int]:
        return {"users": len(self.users.ids), "items": len(self.items.ids), "nnz": self.nnz,
                "events": self.events, "evicted": self.evicted,
                "memory_bytes": self.memory_bytes()}

    def training_data(self, holdout_fraction: float = 0.0, reference_time: float | None = None,
                      holdout_after: float | None = None) -> TrainingData:
        """The CSR to train on (weights decayed to `reference_time`, default the newest event)
        and, with `holdout_fraction`, the most recent entries held out (positive ones kept as
        the holdout matrix, for recall@K). `holdout_after` holds out only entries whose first
        event is newer (pass the live model's watermark, so that it has not seen them either)."""
        self.compact()
        T = self.max_event_time if reference_time is None else reference_time
        w = self._w * self._decay(T - self._t).astype(np.float32)
        hold = np.zeros(len(w), bool)
        n_hold = int(len(w) * holdout_fraction)
        if n_hold:
            hold[np.argpartition(self._t, len(w) - n_hold)[len(w) - n_hold:]] = True
            if holdout_after is not None:
                hold &= self._t0 > holdout_after
                n_hold = int(hold.sum())
        used = np.abs(w) >= self.config.min_weight
        users, u = np.unique(self._u[used], return_inverse=True)
        items, i = np.unique(self._i[used], return_inverse=True)
        w, hold = w[used], hold[used]
        shape = (len(users), len(items))
        full = sp.csr_matrix((w, (u, i)), shape=shape, dtype=np.float32)
        matrix = full
        if n_hold:
            matrix = sp.csr_matrix((w[~hold], (u[~hold], i[~hold])), shape=shape,
                                   dtype=np.float32)
        test = hold & (w > 0)
        holdout = sp.csr_matrix((np.ones(int(test.sum()), np.float32), (u[test], i[test])),
                                shape=shape, dtype=np.float32)
        return TrainingData([self.users.ids[x] for x in users.tolist()],
                            [self.items.ids[x] for x in items.tolist()], matrix, holdout,
                            float(self.max_event_time), dict(self.meta), full)

    def positive_interactions(
        self, item_ids: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user index, item index into `item_ids`, latest event time) of every entry with a
        positive weight whose item is in `item_ids`: the order in which users came to like
        items, for co-visits (`models.similar`). Each (user, item) entry once.

        >>> s = InteractionStore()
        >>> for user, item, kind, t in [("u1", "a", "click", 1.0), ("u1", "b", "dismiss", 2.0),
        ...                             ("u1", "c", "view", 3.0)]:
        ...     _ = s.add(user, item, kind, t)
        >>> [x.tolist() for x in s.positive_interactions(["c", "a"])]
        [[0, 0], [1, 0], [1.0, 3.0]]
        """
        self.compact()
        row = {x: r for r, x in enumerate(item_ids)}
        col = np.array([row.get(x, -1) for x in self.items.ids], dtype=np.int64)
        items = col[self._i] if len(col) else np.zeros(0, np.int64)
        keep = (self._w > 0) & (items >= 0)
        return self._u[keep].astype(np.int64), items[keep], self._t[keep]

    # -- checkpoint
    def to_bytes(self) -> bytearray:
        """A checkpoint (no pickle): config, counters, `meta`, entries and ids."""
        self.compact()
        header = {"config": dataclasses.asdict(self.config), "meta": self.meta,
                  "max_event_time": self.max_event_time, "events": self.events,
                  "evicted": self.evicted}
        arrays = {"u": self._u, "i": self._i, "w": self._w, "t": self._t, "t0": self._t0,
                  "users": np.frombuffer(msgspec.json.encode(self.users.ids), np.uint8),
                  "items": np.frombuffer(msgspec.json.encode(self.items.ids), np.uint8)}
        return pack(MAGIC, header, arrays)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, config: StoreConfig | None = None,
                   weights: EventWeights | None = None) -> InteractionStore:
        """Restore a checkpoint; `config` (default: the checkpoint's) is applied at once."""
        header, a = unpack(MAGIC, data)
        try:
            store = cls(config or StoreConfig(**header["config"]), weights)
            store.users = _Ids(msgspec.json.decode(a["users"].tobytes(), type=list[str]))
            store.items = _Ids(msgspec.json.decode(a["items"].tobytes(), type=list[str]))
            store._u, store._i = a["u"].astype(np.int32), a["i"].astype(np.int32)
            store._w, store._t = a["w"].astype(np.float32), a["t"].astype(np.float64)
            store._t0 = a["t0"].astype(np.float64)
            store.max_event_time = float(header["max_event_time"])
            store.events, store.evicted = int(header["events"]), int(header["evicted"])
            store.meta = dict(header.get("meta", {}))
        except (KeyError, TypeError, msgspec.DecodeError) as exc:
            raise ModelError(f"store checkpoint does not decode: {exc}") from None
        store.compact()
        return store


def _newest_groups(group: np.ndarray, t: np.ndarray, cap: int) -> np.ndarray:
    """Mask keeping the entries of the `cap` groups (users or items) with the newest events."""
    if len(group) == 0:
        return np.ones(0, bool)
    last = np.full(int(group.max()) + 1, -np.inf)
    np.maximum.at(last, group, t)
    present = np.flatnonzero(last > -np.inf)
    if len(present) <= cap:
        return np.ones(len(group), bool)
    keep = present[np.argpartition(last[present], len(present) - cap)[len(present) - cap:]]
    mask = np.zeros(len(last), bool)
    mask[keep] = True
    return mask[group]
