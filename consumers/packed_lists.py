"""Users' latest lists, packed: what `refold serve` holds per user, a few hundred bytes each.

`RecommendationsView` keeps every list as decoded message objects (about 2.7 KB a user at
K = 20, and 21 objects the garbage collector walks). Here a user is one dict entry: the user id
as bytes, and the list as one bytes value (no objects inside, nothing for the collector):

    header (24 bytes): source u8, n u8, n_basis u8, model version i32 (-1: none),
                       cause offset i64 (-1: none), generated_at f64
    n × item u32, n × score f32, n_basis × item u32, n_basis × event kind u8

Items are indices into the server's item table. At K = 20 with 5 basis items that is 229 bytes
of value; `refold bench serve` measures the whole process per million users.

Bounds: `max_users` lists (an update moves a user to the back; beyond the bound the user updated
least recently goes, and `evicted` counts it), and dismissals waiting for the user's next list,
at most `max_pending` users × `PENDING_PER_USER` items.

>>> lists = UserLists()
>>> lists.put(b"u1", PackedList("collaborative", [3, 1], [0.9, 0.5], model_version=7,
...                             cause_offset=41, generated_at=1.0))
>>> got = lists.get(b"u1")
>>> got.items, got.model_version, got.cause_offset
([3, 1], 7, 41)
>>> lists.dismiss(b"u1", 3, offset=40)    # already in the list's cause: nothing to hold
>>> lists.dismiss(b"u1", 1, offset=42)    # newer than the list: held until a list covers it
>>> lists.dismissed(b"u1")
{1}
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from models.weights import EVENT_TYPES

SOURCES: tuple[Literal["collaborative", "content", "popular"], ...] = (
    "collaborative", "content", "popular")
KINDS = EVENT_TYPES
_HEAD = struct.Struct("<BBBxiqd")
UNKNOWN = 255
"""The kind code of a basis item whose event type the list did not give."""
PENDING_PER_USER = 64
_body: dict[tuple[int, int], struct.Struct] = {}


def _body_of(n: int, nb: int) -> struct.Struct:
    s = _body.get((n, nb))
    if s is None:
        s = _body[(n, nb)] = struct.Struct(f"<{n}I{n}f{nb}I{nb}B")
    return s


@dataclass(slots=True)
class PackedList:
    """One user's list, unpacked: item indices and scores best first, and the basis: the user's
    latest positive items (indices, with their event kinds), newest first, for explanations."""

    source: Literal["collaborative", "content", "popular"]
    items: list[int]
    scores: list[float]
    model_version: int | None = None
    cause_offset: int | None = None
    """Offset of the event the list answers, on the user's events partition."""
    generated_at: float = 0.0
    basis: list[int] = field(default_factory=list)
    basis_kinds: list[str | None] = field(default_factory=list)
    """The event type of each basis item, None where the list did not say."""

    def pack(self) -> bytes:
        n, nb = len(self.items), len(self.basis)
        if n > 255 or nb > 255 or len(self.scores) != n or len(self.basis_kinds) != nb:
            raise ValueError("at most 255 items and basis items, one score and kind each")
        head = _HEAD.pack(SOURCES.index(self.source), n, nb,
                          -1 if self.model_version is None else self.model_version,
                          -1 if self.cause_offset is None else self.cause_offset,
                          self.generated_at)
        kinds = [UNKNOWN if k is None else KINDS.index(k) for k in self.basis_kinds]
        return head + _body_of(n, nb).pack(*self.items, *self.scores, *self.basis, *kinds)

    @classmethod
    def unpack(cls, data: bytes) -> PackedList:
        source, n, nb, version, offset, at = _HEAD.unpack_from(data)
        body = _body_of(n, nb).unpack_from(data, _HEAD.size)
        return cls(SOURCES[source], list(body[:n]), list(body[n : 2 * n]),
                   None if version < 0 else version, None if offset < 0 else offset, at,
                   list(body[2 * n : 2 * n + nb]),
                   [None if k == UNKNOWN else KINDS[k] for k in body[2 * n + nb :]])


@dataclass
class UserLists:
    """`user id (bytes) -> packed list`, bounded, with the dismissals not yet in a list."""

    max_users: int = 10_000_000
    max_pending: int = 100_000
    evicted: int = 0
    value_bytes: int = 0
    """Bytes of the keys and values held (`memory_bytes` adds the dictionary's table)."""
    _lists: dict[bytes, bytes] = field(default_factory=dict)
    _pending: dict[bytes, list[tuple[int, int]]] = field(default_factory=dict)
    """Per user, (item, events offset) of dismissals newer than the user's list."""

    def __len__(self) -> int:
        return len(self._lists)

    def get(self, user: bytes) -> PackedList | None:
        data = self._lists.get(user)
        return None if data is None else PackedList.unpack(data)

    def put(self, user: bytes, packed: PackedList) -> None:
        """Store the user's latest list; dismissals it covers are no longer held."""
        old = self._lists.pop(user, None)  # re-inserted at the back: dicts keep insertion order
        value = self._lists[user] = packed.pack()
        self.value_bytes += sys.getsizeof(value) - (
            sys.getsizeof(old) if old is not None else -sys.getsizeof(user))
        if len(self._lists) > self.max_users:
            self._drop(next(iter(self._lists)))
            self.evicted += 1
        held = self._pending.get(user)
        if held is not None and packed.cause_offset is not None:
            held[:] = [(i, o) for i, o in held if o > packed.cause_offset]
            if not held:
                del self._pending[user]

    def delete(self, user: bytes) -> None:
        """A tombstone: the user's list was deleted."""
        if user in self._lists:
            self._drop(user)

    def _drop(self, user: bytes) -> None:
        self.value_bytes -= sys.getsizeof(self._lists.pop(user)) + sys.getsizeof(user)

    def memory_bytes(self) -> int:
        """Bytes of the lists held: keys, values and the dictionary's table."""
        return self.value_bytes + sys.getsizeof(self._lists)

    def dismiss(self, user: bytes, item: int, offset: int) -> None:
        """The user dismissed `item` at `offset` of their events partition: hide it until a
        list that answers that event (or a later one) arrives."""
        data = self._lists.get(user)
        if data is not None:
            cause = _HEAD.unpack_from(data)[4]
            if cause >= offset:
                return
        held = self._pending.pop(user, None) or []
        held.append((item, offset))
        self._pending[user] = held[-PENDING_PER_USER:]
        if len(self._pending) > self.max_pending:
            del self._pending[next(iter(self._pending))]

    def dismissed(self, user: bytes) -> set[int]:
        """Items the user dismissed that their list may still hold."""
        held = self._pending.get(user)
        return {i for i, _ in held} if held else set()

    def pending_users(self) -> int:
        return len(self._pending)

    def users(self) -> Sequence[bytes]:
        return list(self._lists)
