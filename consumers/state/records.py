"""A user's changelog record, decoded into what a worker keeps in memory, and what it implies for
the store's indexes.

The record (`consumers.changelog.user_value`) holds the user's `UserHistory` state and the ids of
the user's applied events; `id_times` (base64 of float64 event times, one per id; absent in
records of earlier versions, whose ids count as seen at the user's last event) lets event ids be
forgotten by a time horizon rather than by count. `index_of` reads only what the store's indexes
need (the last event time and the ids), for restores that do not decode histories.

>>> from models.history import UserHistory
>>> h = UserHistory(max_events=5)
>>> h.add(0, 1.0, t=50.0)
>>> entry = UserEntry(h, {"e1": 50.0}, partition=2)
>>> value = encode_user(entry, ["sku-1"])
>>> index_of(value)
(50.0, [('e1', 50.0)])
>>> back = decode_user(value, {"sku-1": 0}.__getitem__, partition=2)
>>> back.history.events()["item"].tolist(), back.ids, back.stored_bucket is None
([0], {'e1': 50.0}, True)
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from consumers.changelog import VERSION, unpack_history, user_value
from models.history import UserHistory
from models.packing import pack


@dataclass(slots=True)
class UserEntry:
    """One user in memory: history, applied event ids (id -> event time, oldest first) and the
    partition; what the store holds for its indexes; what the current batch added."""

    history: UserHistory
    ids: dict[str, float]
    partition: int
    stored_bucket: int | None = None
    """The user's bucket in the store's activity index (None: not indexed yet)."""
    added: list[str] = field(default_factory=list)
    """Ids applied since the store last took this entry (to index)."""
    dropped: list[str] = field(default_factory=list)
    """Ids forgotten since then (to remove from the index)."""
    oldest: float | None = None
    """At most the earliest time in `ids` (None: not known), so that `forget` scans the ids
    only when one of them may have expired."""
    stored_list: tuple[str, ...] = ()
    """The items of the user's last list as the store's index holds them."""
    newest: float | None = field(default=None, init=False)
    """The latest time in `ids` (kept as ids come and go: `last_time` is asked at every event,
    and a scan of up to `dedup_max_ids_per_user` ids each time was most of its cost)."""

    def __post_init__(self) -> None:
        self.newest = max(self.ids.values(), default=None)

    @property
    def last_time(self) -> float | None:
        """The user's latest event or impression (a user shown lists but never acting expires
        too)."""
        last, newest = self.history.last_time, self.newest
        if last is None or (newest is not None and newest > last):
            return newest
        return last

    def remember(self, event_id: str, t: float) -> None:
        had = self.oldest is not None or not self.ids
        old = self.ids.get(event_id)
        self.ids[event_id] = t
        self.added.append(event_id)
        if had:
            self.oldest = t if self.oldest is None else min(self.oldest, t)
        if self.newest is None or t > self.newest:
            self.newest = t
        elif old == self.newest and t < old:  # the newest id came again, earlier
            self.newest = max(self.ids.values())

    def forget(self, keep: Callable[[float], bool], cap: int) -> None:
        """Drop the ids whose time `keep` refuses (`keep` holds for every time after one it
        holds for), then the oldest beyond `cap` (0: no cap)."""
        newest_gone = False
        if self.oldest is None or not keep(self.oldest):  # else every id is kept
            for i in [i for i, t in self.ids.items() if not keep(t)]:
                newest_gone = newest_gone or self.ids[i] == self.newest
                del self.ids[i]
                self.dropped.append(i)
            self.oldest = min(self.ids.values(), default=None)
        while cap and len(self.ids) > cap:
            i = next(iter(self.ids))
            newest_gone = newest_gone or self.ids[i] == self.newest
            del self.ids[i]
            self.dropped.append(i)
        if newest_gone:
            self.newest = max(self.ids.values(), default=None)


def encode_user(entry: UserEntry, item_ids: Sequence[str]) -> bytes:
    """The changelog value of `entry` (`item_ids`: index -> id of the catalog)."""
    value = user_value(entry.history.to_state(item_ids), entry.ids)
    times = pack(np.fromiter(entry.ids.values(), np.float64, len(entry.ids)), "<f8")
    return value[:-1] + b',"id_times":"' + times.encode() + b'"}'


class _Feedback(msgspec.Struct):
    list_items: list[str] = []


class _History(msgspec.Struct):
    times: str | list[float]
    feedback: _Feedback | None = None


class _Indexed(msgspec.Struct):
    v: int
    history: _History
    ids: list[str] = []
    id_times: str | None = None


_index_decoder = msgspec.json.Decoder(_Indexed)
_decoder = msgspec.json.Decoder()


def _floats(packed: str | list[float]) -> tuple[float, ...]:
    """A packed float64 column (or a list of numbers, as earlier versions wrote) as floats."""
    if not isinstance(packed, str):
        return tuple(map(float, packed))
    raw = binascii.a2b_base64(packed)
    return struct.unpack(f"<{len(raw) // 8}d", raw)


def _id_times(ids: list[str], packed: str | None, last: float | None) -> tuple[float, ...]:
    if packed is None:  # a record of an earlier version: the ids count as seen last
        return (last if last is not None else 0.0,) * len(ids)
    times = _floats(packed)
    if len(times) != len(ids):
        raise ValueError(f"user record: {len(times)} id times for {len(ids)} ids")
    return times


def index_of(value: bytes) -> tuple[float | None, list[tuple[str, float]]]:
    """(last event or impression time, [(id, time)]) of a user record, without decoding the
    history."""
    last, ids, _ = indexed(value)
    return last, ids


def indexed(value: bytes) -> tuple[float | None, list[tuple[str, float]], list[str]]:
    """`index_of`, and the items of the user's last list."""
    rec = _index_decoder.decode(value)
    if rec.v != VERSION:
        raise ValueError(f"user record of unknown version {rec.v!r}")
    times = _floats(rec.history.times)
    last = times[-1] if times else None
    ids = list(zip(rec.ids, _id_times(rec.ids, rec.id_times, last), strict=True))
    latest = [t for t in (last, max((t for _, t in ids), default=None)) if t is not None]
    listed = rec.history.feedback.list_items if rec.history.feedback is not None else []
    return (max(latest) if latest else None), ids, listed  # as `UserEntry.last_time`


_F8 = struct.Struct("<d")


def index_entries(value: bytes) -> tuple[float | None, list[str], bytes, list[str]]:
    """`indexed` as a restore on a new disk indexes it: (last time, ids, the ids' times as
    little-endian float64 bytes, 8 per id, the items of the last list), the times' bytes taken
    as stored, never decoded into floats one by one.

    >>> from models.history import UserHistory
    >>> h = UserHistory(max_events=5)
    >>> h.add(0, 1.0, t=50.0)
    >>> last, ids, raw, listed = index_entries(encode_user(UserEntry(h, {"e1": 40.0}, 0),
    ...                                                    ["sku-1"]))
    >>> last, ids, _F8.unpack(raw), listed
    (50.0, ['e1'], (40.0,), [])
    """
    rec = _index_decoder.decode(value)
    if rec.v != VERSION:
        raise ValueError(f"user record of unknown version {rec.v!r}")
    times = rec.history.times
    if isinstance(times, str):
        raw = binascii.a2b_base64(times)
        last = _F8.unpack_from(raw, len(raw) - 8)[0] if raw else None
    else:
        last = float(times[-1]) if times else None
    if rec.id_times is None:  # a record of an earlier version: the ids count as seen last
        packed = _F8.pack(last if last is not None else 0.0) * len(rec.ids)
    else:
        packed = binascii.a2b_base64(rec.id_times)
        if len(packed) != 8 * len(rec.ids):
            raise ValueError(f"user record: {len(packed) // 8} id times for {len(rec.ids)} ids")
    if packed:
        newest = max(struct.unpack(f"<{len(packed) // 8}d", packed))
        last = newest if last is None or newest > last else last
    listed = rec.history.feedback.list_items if rec.history.feedback is not None else []
    return last, rec.ids, packed, listed


def decode_user(value: bytes, index: Callable[[str], int], partition: int) -> UserEntry:
    """The `UserEntry` of a record (`index`: item id -> catalog index)."""
    rec = _decoder.decode(value)
    if rec.get("v") != VERSION:
        raise ValueError(f"user record of unknown version {rec.get('v')!r}")
    history = UserHistory.from_state(unpack_history(rec["history"]), index)
    ids = rec["ids"]
    times = _id_times(ids, rec.get("id_times"), history.last_time)
    return UserEntry(history, dict(zip(ids, times, strict=True)), partition,
                     stored_list=listed_of(history))


def listed_of(history: UserHistory) -> tuple[str, ...]:
    """The items of the user's last published list."""
    return () if history.feedback is None else history.feedback.list_items
