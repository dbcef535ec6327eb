"""One events partition's state on local disk: the latest value of each changelog key, and the
changelog offset it covers (the checkpoint), with two indexes: users by activity, event ids.

A store mirrors its changelog partition: the same keys and values, up to `checkpoint.offset`
(the next changelog offset it has not applied). A restarted worker on the same disk reads only
the changelog's tail from there; a new disk starts from the beginning. Keys in one RocksDB
database per partition (`consumers.state.kv`):

    c<changelog key>                         -> changelog value (the mirror)
    a<bucket: 8 bytes, big-endian><user key> -> b""   users by the bucket of their last event
    d<event id>                              -> <event time: f8><user key>   applied event ids
    l<item id length: 2 bytes><item id><user key> -> b""  users by the items of their last list
    m/checkpoint                             -> JSON {topic, topic_id, partition, offset, ...}

**The checkpoint is a key of the store**, written in the same atomic write batch as the data it
covers, so a crash at any point leaves a checkpoint that claims exactly what the store holds. (A
checkpoint file beside the store, as Kafka Streams keeps, has to follow a flush of the store; under
exactly-once Kafka Streams deletes it while running and wipes the store after a crash.)

Against the changelog itself, `stale_reason` says when a store cannot be trusted and must be
wiped and rebuilt: the topic was re-created (another topic id), its end lies before the
checkpoint (the data is gone), its start lies after it (records were deleted), or the checkpoint is
older than `max_age`: compaction drops a tombstone after the topic's `delete.retention.ms`, and a
store that missed it would bring the deleted key back.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     with PartitionStore.open(d, "changelog", 0) as st:
...         b = StoreBatch()
...         b.put(b"u1", b'{"v":1}')
...         b.activity(b"u1", None, 7)
...         b.event_ids(b"u1", [("e1", 100.0)], [])
...         b.listed(b"u1", [], ["i1", "i2"])
...         st.commit(b, Checkpoint("changelog", "id-1", 0, offset=42))
...     with PartitionStore.open(d, "changelog", 0) as st:
...         st.checkpoint.offset, st.get(b"u1"), st.event("e1"), st.inactive(below=8)
...         st.listing("i2"), st.listing("i3")
(42, b'{"v":1}', (100.0, b'u1'), [(7, b'u1')])
([b'u1'], [])
"""

from __future__ import annotations

import functools
import logging
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec

from consumers.state.kv import KeyValueStore, Resources
from refold.core.errors import ConsumerError

log = logging.getLogger(__name__)

MIRROR, ACTIVITY, EVENT_IDS, LISTED = b"c", b"a", b"d", b"l"
CHECKPOINT_KEY = b"m/checkpoint"
_BUCKET = struct.Struct(">Q")
_BIAS = 1 << 63
"""Buckets are signed; biased, their big-endian bytes sort like the numbers."""
_TIME = struct.Struct("<d")
_LENGTH = struct.Struct(">H")
LOCK_WAIT_S = 30.0
"""How long opening waits for another process (a worker being replaced) to let the store go."""


@dataclass(frozen=True)
class Checkpoint:
    """What a store covers: changelog `topic` (with its id) partition, up to `offset` (next)."""

    topic: str
    topic_id: str | None
    partition: int
    offset: int
    written_at: float = field(default_factory=time.time)

    def encode(self) -> bytes:
        return msgspec.json.encode(asdict(self))

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        return cls(**msgspec.json.decode(data))


class StoreBatch:
    """Changes to apply to a store in one atomic write (`PartitionStore.commit`)."""

    __slots__ = ("changes",)

    def __init__(self) -> None:
        self.changes: list[tuple[bytes, bytes | None]] = []

    def __len__(self) -> int:
        return len(self.changes)

    def put(self, key: bytes, value: bytes | None) -> None:
        """A changelog record (None: a tombstone, the key is deleted)."""
        self.changes.append((MIRROR + key, value))

    def delete(self, key: bytes) -> None:
        self.changes.append((MIRROR + key, None))

    def activity(self, user_key: bytes, old: int | None, new: int | None) -> None:
        """Move a user in the activity index from bucket `old` to `new` (None: absent)."""
        if old == new:
            return
        if old is not None:
            self.changes.append((_activity_key(old, user_key), None))
        if new is not None:
            self.changes.append((_activity_key(new, user_key), b""))

    def event_ids(self, user_key: bytes, added: Iterable[tuple[str, float]],
                  removed: Iterable[str]) -> None:
        """Index event ids applied for the user (with their event times), and forget others."""
        changes, pack = self.changes, _TIME.pack
        changes.extend((EVENT_IDS + i.encode(), None) for i in removed)
        changes.extend((EVENT_IDS + i.encode(), pack(t) + user_key) for i, t in added)

    def listed(self, user_key: bytes, old: Sequence[str], new: Sequence[str]) -> None:
        """Move the user in the items-of-last-lists index from the items `old` to `new`."""
        if old == new:
            return
        changes, was, now = self.changes, set(old), set(new)
        changes.extend([(_listed_prefix(i) + user_key, None) for i in was - now])
        changes.extend([(_listed_prefix(i) + user_key, b"") for i in now - was])

    def packed_event_ids(self, user_key: bytes, ids: list[str], times: bytes) -> None:
        """`event_ids` of a user new to the store, with the ids' times as little-endian float64
        bytes (8 per id, as a user record keeps them): the index values are sliced from them."""
        append, k = self.changes.append, 0
        for i in ids:  # a plain loop: the fastest form of it here
            append((EVENT_IDS + i.encode(), times[k:k + 8] + user_key))
            k += 8


def _activity_key(bucket: int, user_key: bytes) -> bytes:
    return ACTIVITY + _BUCKET.pack(bucket + _BIAS) + user_key


@functools.lru_cache(maxsize=1 << 16)
def _listed_prefix(item_id: str) -> bytes:
    """The index keys of the users listing `item_id` start with this (kept per item: a list
    that changes writes ~K of them)."""
    item = item_id.encode()
    return LISTED + _LENGTH.pack(len(item)) + item


class PartitionStore:
    """The local store of one changelog partition (see the module docstring)."""

    def __init__(self, path: Path, topic: str, partition: int,
                 resources: Resources | None = None, lock_wait: float = LOCK_WAIT_S) -> None:
        self.path = path
        self.topic = topic
        self.partition = partition
        self._resources = resources
        self.kv = _open(path, resources, lock_wait)
        raw = self.kv.get(CHECKPOINT_KEY)
        self.checkpoint: Checkpoint | None = None if raw is None else Checkpoint.decode(raw)

    @classmethod
    def open(cls, root: str | Path, topic: str, partition: int,
             resources: Resources | None = None, lock_wait: float = LOCK_WAIT_S
             ) -> PartitionStore:
        """The store of `topic[partition]` under `root` (created empty if there is none)."""
        return cls(Path(root) / topic / str(partition), topic, partition, resources, lock_wait)

    # -- reading
    def get(self, key: bytes) -> bytes | None:
        """The value of a changelog key (None: absent)."""
        return self.kv.get(MIRROR + key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return self.kv.get_many([MIRROR + k for k in keys])

    def records(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The changelog keys starting with `prefix`, in order, with their values."""
        n = len(MIRROR)
        for key, value in self.kv.scan(MIRROR + prefix, MIRROR + _after_prefix(prefix)):
            yield key[n:], value

    def event(self, event_id: str) -> tuple[float, bytes] | None:
        """(event time, user key) of an applied event id, if the index has it."""
        raw = self.kv.get(EVENT_IDS + event_id.encode())
        return None if raw is None else (_TIME.unpack_from(raw)[0], raw[_TIME.size:])

    def event_time(self, event_id: str) -> float | None:
        """The event time of an applied event id, if the index has it (`event`, read on every
        new event: one call into the store)."""
        raw = self.kv.db.get(EVENT_IDS + event_id.encode())
        return None if raw is None else _TIME.unpack_from(raw)[0]

    def inactive(self, below: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """(bucket, user key) of the users whose last event is in a bucket below `below`,
        oldest first, at most `limit`."""
        out: list[tuple[int, bytes]] = []
        start, stop = _activity_key(-_BIAS, b""), _activity_key(below, b"")
        for key, _ in self.kv.scan(start, stop):
            out.append((_BUCKET.unpack_from(key, 1)[0] - _BIAS, key[1 + _BUCKET.size:]))
            if limit is not None and len(out) >= limit:
                break
        return out

    def listing(self, item_id: str) -> list[bytes]:
        """The user keys whose last published list holds `item_id`."""
        return [user for _, user in self.listings([item_id])]

    def listings(self, item_ids: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(item, user key) of the users whose last published list holds each of `item_ids`."""
        items = {_listed_prefix(i): i for i in item_ids}
        for prefix, key, _ in self.kv.scan_prefixes(items):
            yield items[prefix], key[len(prefix):]

    def stale_reason(self, topic_id: str | None, low: int, high: int,
                     max_age: float | None = None, now: float | None = None) -> str | None:
        """Why this store cannot continue from the changelog as it is now (None: it can)."""
        cp = self.checkpoint
        if cp is None:
            return None
        if cp.topic != self.topic or cp.partition != self.partition:
            return f"it holds {cp.topic}[{cp.partition}]"
        if topic_id is not None and cp.topic_id is not None and cp.topic_id != topic_id:
            return f"the topic was re-created (id {cp.topic_id} -> {topic_id})"
        if cp.offset > high:
            return f"its checkpoint {cp.offset} lies beyond the changelog's end {high}"
        if cp.offset < low:
            return f"the changelog starts at {low}, after its checkpoint {cp.offset}"
        age = (time.time() if now is None else now) - cp.written_at
        if max_age is not None and age > max_age:
            return (f"its checkpoint is {age:.0f} s old: tombstones older than {max_age:.0f} s "
                    "may have been compacted away")
        return None

    # -- writing
    def commit(self, batch: StoreBatch, checkpoint: Checkpoint) -> None:
        """Apply `batch` and move the checkpoint to `checkpoint`, atomically."""
        self.kv.write([*batch.changes, (CHECKPOINT_KEY, checkpoint.encode())])
        self.checkpoint = checkpoint

    def wipe(self, reason: str) -> None:
        """Delete everything (the store is rebuilt from the changelog)."""
        log.warning("store %s wiped: %s", self.path, reason)
        self.kv.close()
        KeyValueStore.destroy(self.path)
        self.kv = _open(self.path, self._resources, 0.0)
        self.checkpoint = None

    def close(self) -> None:
        self.kv.close()

    def __enter__(self) -> PartitionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _after_prefix(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\xff" * (len(prefix) + 1)
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _open(path: Path, resources: Resources | None, lock_wait: float) -> KeyValueStore:
    """Open, waiting up to `lock_wait` s while another process still holds the store."""
    deadline = time.monotonic() + lock_wait
    while True:
        try:
            return KeyValueStore(path, resources)
        except Exception as exc:  # rocksdict raises a bare Exception with RocksDB's status
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise StoreError(f"cannot open the store {path}: {exc}") from exc
            time.sleep(0.1)


class StoreError(ConsumerError):
    """A local store cannot be opened or used."""
