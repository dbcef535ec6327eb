"""Event ids seen within a time horizon, across every partition: the refitter's de-duplication.

The refitter reads every events partition, so it can drop a re-sent event whichever user and
partition it came with. The ids live in a local store (`consumers.state.kv`), not in memory:
how many ids a horizon holds depends on the traffic, not on a setting.

    d<event id>                   -> <event time f8><partition u32><offset u64>
    t<bucket: 8 bytes><event id>  -> b""   (the ids by the time bucket of their event, to prune)
    m/topic                       -> the events topic's id the offsets belong to

An id is a duplicate when it was seen at *another* message (partition, offset) and its first
time is within the horizon of this event's time (`models.expiry.Horizon`: the event's own time,
not the newest one read, as the refitter reads partitions at their own paces). The same message
read again (after a restart from an older checkpoint) is not a duplicate, so the store of ids
never has to agree with the refitter's checkpoint: it may be ahead of it. `prune` forgets the ids
a full horizon older than that (the partitions read behind still find theirs).

>>> import tempfile
>>> from models.expiry import Horizon
>>> with tempfile.TemporaryDirectory() as d, SeenIds(d, Horizon(100.0), "topic-1") as seen:
...     [seen.duplicate("e1", 50.0, 0, 7), seen.duplicate("e1", 51.0, 2, 3),
...      seen.duplicate("e1", 50.0, 0, 7)]
[False, True, False]
"""

from __future__ import annotations

import struct
from pathlib import Path

from consumers.state.kv import KeyValueStore, Resources
from models.expiry import Horizon

_SEEN = struct.Struct("<dIQ")
_BUCKET = struct.Struct(">Q")
_BIAS = 1 << 63
_TOPIC_KEY = b"m/topic"


class SeenIds:
    """Ids seen within `horizon` (see the module docstring); writes are batched until
    `flush`, which `duplicate` does every `batch` ids and the caller before a checkpoint."""

    def __init__(self, path: str | Path, horizon: Horizon, topic_id: str | None,
                 resources: Resources | None = None, batch: int = 5000) -> None:
        self.path = Path(path)
        self.horizon = horizon
        self.batch = batch
        self.kv = KeyValueStore(self.path, resources)
        stored = self.kv.get(_TOPIC_KEY)
        if topic_id is not None and stored is not None and stored != topic_id.encode():
            self.kv.close()  # offsets of another incarnation of the topic: start over
            KeyValueStore.destroy(self.path)
            self.kv = KeyValueStore(self.path, resources)
        if topic_id is not None:
            self.kv.write([(_TOPIC_KEY, topic_id.encode())])
        self._pending: dict[bytes, bytes] = {}
        self.watermark = float("-inf")
        self.duplicates = 0

    def duplicate(self, event_id: str, t: float, partition: int, offset: int) -> bool:
        """Whether the event was seen at another message within the horizon; if not, it is
        remembered as seen at this one."""
        self.watermark = max(self.watermark, t)
        key = b"d" + event_id.encode()
        raw = self._pending.get(key) or self.kv.get(key)
        if raw is not None:
            t0, p0, o0 = _SEEN.unpack(raw)
            if (p0, o0) == (partition, offset):
                return False
            if not self.horizon.expired(t0, t):
                self.duplicates += 1
                return True
        self._pending[key] = _SEEN.pack(t, partition, offset)
        if len(self._pending) >= self.batch:
            self.flush()
        return False

    def flush(self) -> None:
        """Write the pending ids (with their time-index entries)."""
        if not self._pending:
            return
        changes: list[tuple[bytes, bytes | None]] = []
        for key, raw in self._pending.items():
            t = _SEEN.unpack(raw)[0]
            changes.append((key, raw))
            changes.append((b"t" + _BUCKET.pack(self.horizon.bucket(t) + _BIAS) + key[1:], b""))
        self.kv.write(changes)
        self._pending.clear()

    def prune(self) -> int:
        """Forget the ids whose bucket expired at the current watermark; returns how many."""
        if not self.horizon.forgets or self.watermark == float("-inf"):
            return 0
        self.flush()
        behind = self.watermark - self.horizon.seconds  # room for partitions read behind
        stop = b"t" + _BUCKET.pack(self.horizon.first_live_bucket(behind) + _BIAS)
        gone: list[tuple[bytes, bytes | None]] = []
        for key, _ in self.kv.scan(b"t", stop):
            gone.append((key, None))
            dkey = b"d" + key[1 + _BUCKET.size:]
            raw = self.kv.get(dkey)
            # the id may have been seen again later (kept under a newer bucket): keep it then
            if raw is not None and self.horizon.expired(_SEEN.unpack(raw)[0], behind):
                gone.append((dkey, None))
        self.kv.write(gone)
        return sum(1 for k, _ in gone if k[:1] == b"d")

    def close(self) -> None:
        self.flush()
        self.kv.close()

    def __enter__(self) -> SeenIds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
