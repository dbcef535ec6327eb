"""The state changelog: what a worker needs to carry on a partition, written in the same Kafka
transaction as the batch's outputs and input offsets, and read back when a partition is assigned.

Records go to the compacted changelog partition numbered like the events partition (a worker that
owns events partition p owns changelog partition p); values are JSON:

- key `<user_id>`: `{"v", "history": UserHistory state (numeric columns packed, `PACKED`),
  "ids": recent event ids}`, written by every batch that applies an event of the user;
- key `~p<p>/item/<item_id>`: `{"pop", "sh", "users", "vec", "version", "pend"}` (popularity
  and the rescales it was written after, new items' interactions and vector, buffered co-visit
  updates: `models.partition`), written by
  every batch that changes the item in partition p;
- key `~p<p>/covisit/<item_id>`: `{"n", "ids", "w", "g"}` (the item's co-visit count and
  neighbours, `models.covisit`), written by the batches whose co-visit refresh changed it: rows
  are the bulk of the state and change once per refresh, not with every event that touches the
  item; key `~p<p>/codelta/<item_id>`: `{"g", "n", "d", "s", "ids", "w"}`, the slots changed
  since the row's record `g` (`models.covisit_plain`), written instead of the whole row while
  they are at most half of it (a restore applies it to the row of the same `g`, ignores it
  otherwise; records without `g` are of generation 0);
- key `~p<p>/meta`: `{"v", "offset": next events offset, "events", "t_ref", "sh", "dirty",
  "trend", "w"}` ("trend": the adaptive trending's choice, `models.adaptive_trending`; "w":
  the newest event time learned, on which users expire), written by every batch that reads
  partition p.

A user id that starts with `~` is keyed with one more `~`, so every key `~p...` is a partition's.
Partition state is one record per item, not one per partition: a batch changes few of a
partition's items, so it writes (and compaction keeps) one small record per changed item, where a
per-partition record would rewrite every item the partition has ever seen, in every batch. A
renormalisation of the popularity changes every item's raw accumulator by an exact power of two,
so it writes none of them: "sh" counts the rescales an item's record (and the meta) came after,
and a restore scales each record by the ones since (`models.trending`).

The meta record carries the events offset its state covers. A restore reads the changelog
partition to its end (read_committed) and checks that offset against the group's committed offset
(fetched stable, so no transaction of the previous owner is pending): equal under exactly-once
(the commit markers of both may land a moment apart: it reads on until they agree), at least the
committed one under at-least-once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from confluent_kafka import Consumer, TopicPartition

from models.packing import pack, unpack
from models.partition import META_KEYS
from refold.core.config import Settings
from refold.core.errors import ConsumerError
from refold.core.kafka import make_consumer, watermarks

log = logging.getLogger(__name__)

VERSION = 1
RESTORE_TIMEOUT_S = 60.0
"""How long a restore waits for the changelog to reach the committed offsets (transactions of
a dead worker stay open until `transaction.timeout.ms`)."""
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ChangelogError(ConsumerError):
    """The changelog cannot give the state at the committed offsets."""


# -- keys and values


def user_key(user_id: str) -> bytes:
    """The changelog key of a user: the user id, with one more `~` if it starts with `~`."""
    return (("~" + user_id) if user_id.startswith("~") else user_id).encode()


def item_key(partition: int, item_id: str) -> bytes:
    return f"~p{partition}/item/{item_id}".encode()


def covisit_key(partition: int, item_id: str) -> bytes:
    return f"~p{partition}/covisit/{item_id}".encode()


def codelta_key(partition: int, item_id: str) -> bytes:
    return f"~p{partition}/codelta/{item_id}".encode()


def item_keys(partition: int, item_id: str) -> tuple[bytes, ...]:
    """Every key an item's partition state may have (what its deletion tombstones)."""
    return (item_key(partition, item_id), covisit_key(partition, item_id),
            codelta_key(partition, item_id))


def meta_key(partition: int) -> bytes:
    return f"~p{partition}/meta".encode()


def parse_key(key: bytes) -> tuple[str, str]:
    """`("user", user_id)`, `("item", item_id)`, `("covisit", item_id)`, `("codelta", item_id)`
    or `("meta", "")`.

    >>> parse_key(b"u1"), parse_key(b"~~p1"), parse_key(b"~p3/item/i9"), parse_key(b"~p3/meta")
    (('user', 'u1'), ('user', '~p1'), ('item', 'i9'), ('meta', ''))
    >>> parse_key(b"~p3/covisit/a/b")
    ('covisit', 'a/b')
    """
    text = key.decode()
    if text.startswith("~~"):
        return "user", text[1:]
    if text.startswith("~p"):
        _, _, rest = text.partition("/")
        kind, _, item = rest.partition("/")
        return (kind, item) if kind in ("item", "covisit", "codelta") else ("meta", "")
    return "user", text


PACKED = {"weights": "<f4", "times": "<f8", "seqs": "<i8", "sessions": "<i4"}
"""History columns written as base64 of their little-endian bytes: decoding a JSON number is
what a restore spent most of its time on (and bytes round-trip exactly)."""


def user_value(history: Mapping[str, Any], ids: Iterable[str]) -> bytes:
    """A user's record: `UserHistory.to_state` (numeric columns packed) and recent event ids."""
    packed = {**history, **{k: pack(history[k], t) for k, t in PACKED.items()}}
    return _encode({"v": VERSION, "history": packed, "ids": list(ids)})


def unpack_history(packed: Mapping[str, Any]) -> dict[str, Any]:
    """The `UserHistory.from_state` input of a user record's history (columns as arrays).

    >>> h = {"items": ["a", "b"], "weights": [1.0, 0.5], "times": [1.0, 2.0], "seqs": [0, 1],
    ...      "sessions": [-1, -1]}
    >>> unpack_history(msgspec.json.decode(user_value(h, []))["history"])["weights"].tolist()
    [1.0, 0.5]
    """
    return {**packed, **{k: unpack(packed[k], t) for k, t in PACKED.items()}}


def partition_records(
    partition: int, plain: Mapping[str, Any], offset: int, watermark: float | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """The records of a partition's changed items and co-visit rows
    (`PartitionState.to_plain`), then its meta (with the partition's `watermark`, the newest
    event time learned, when there is one: users expire on it)."""
    for item_id, entry in plain["items"].items():
        yield item_key(partition, item_id), _encode(entry)
    for item_id, row in plain.get("rows", {}).items():
        yield covisit_key(partition, item_id), _encode(row)
    for item_id, delta in plain.get("deltas", {}).items():
        yield codelta_key(partition, item_id), _encode(delta)
    meta = {"v": VERSION, "offset": offset, **{k: plain[k] for k in META_KEYS if k in plain}}
    if watermark is not None:
        meta["w"] = watermark
    yield meta_key(partition), _encode(meta)


# -- restoring


@dataclass
class RestoredPartition:
    """One changelog partition read to its end: the latest value of every key, decoded."""

    partition: int
    users: dict[str, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)
    """`user -> (history state, recent event ids)`."""
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`item -> co-visit row`."""
    deltas: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`item -> co-visit row delta`."""
    meta: dict[str, Any] | None = None
    records: int = 0
    bytes: int = 0

    def put(self, key: bytes, kind: str, name: str, data: dict[str, Any]) -> None:
        """Keep a decoded partition record (`parse_key`'s kind and name) of this partition."""
        if kind == "item":
            self.items[name] = data
        elif kind == "covisit":
            self.rows[name] = data
        elif kind == "codelta":
            self.deltas[name] = data
        elif data.get("v") != VERSION:
            raise ChangelogError(f"changelog record {key!r}: unknown version {data.get('v')!r}")
        else:
            self.meta = data

    @property
    def offset(self) -> int | None:
        """The events offset the state covers (None: nothing was ever committed here)."""
        return None if self.meta is None else self.meta["offset"]

    def plain(self) -> dict[str, Any] | None:
        """The partition state as `models.partition.PartitionState.load_plain` takes it."""
        if self.meta is None:
            return None
        return {**{k: self.meta[k] for k in META_KEYS if k in self.meta},
                "items": self.items, "rows": self.rows, "deltas": self.deltas}


@dataclass
class RestoreReport:
    partitions: list[int]
    users: int
    items: int
    records: int
    bytes: int
    seconds: float

    def __str__(self) -> str:
        return (f"restored partition(s) {self.partitions}: {self.users:,} users, {self.items:,} "
                f"items from {self.records:,} records ({self.bytes / 1e6:.1f} MB) "
                f"in {self.seconds:.2f} s")


class ChangelogReader:
    """Reads changelog partitions to the committed position; one client, kept between restores.

    Its consumer carries the worker's group id only to fetch the group's committed offsets
    (it never joins the group, never commits).
    """

    def __init__(self, settings: Settings, *, exact: bool = True,
                 timeout: float = RESTORE_TIMEOUT_S) -> None:
        self.settings = settings
        self.topic = settings.topic("changelog")
        self.events_topic = settings.topic("events")
        self.exact = exact
        self.timeout = timeout
        self._consumer: Consumer | None = None

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = make_consumer(self.settings, self.settings.consumer_group, {
                "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 8 << 20,
                "fetch.wait.max.ms": 50}, purpose="worker-restore")
        return self._consumer

    def committed(self, partitions: list[int]) -> dict[int, int | None]:
        """The group's committed events offset per partition, once no transaction is pending."""
        tps = [TopicPartition(self.events_topic, p) for p in partitions]
        got = self.consumer.committed(tps, timeout=self.timeout)
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in got}

    def restore(self, partitions: list[int]) -> tuple[dict[int, RestoredPartition], RestoreReport]:
        """Every key's latest committed value in `partitions`, checked against the offsets."""
        t0 = time.perf_counter()
        targets = self.committed(partitions)
        raw: dict[int, dict[bytes, bytes]] = {p: {} for p in partitions}
        out = {p: RestoredPartition(p) for p in partitions}
        consumer, deadline = self.consumer, time.monotonic() + self.timeout
        # Offsets are asked before the first fetch: behind a parked fetch they would wait for
        # it. Reading starts at the low watermarks (OFFSET_BEGINNING waits for a query timer).
        marks = watermarks(consumer, self.topic)  # read_committed: high = last stable offset
        if missing := [p for p in partitions if p not in marks]:
            raise ChangelogError(f"{self.topic} has {len(marks)} partitions, none numbered "
                                 f"{missing}: it needs as many as {self.events_topic}")
        consumer.assign([TopicPartition(self.topic, p, marks[p][0]) for p in partitions])
        try:
            while True:
                self._read_to_end(raw, out, {p: marks[p][1] for p in partitions}, deadline)
                behind = self.behind(raw, targets)
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise ChangelogError(
                        f"{self.topic}: state of partition(s) {behind} does not reach the "
                        f"committed offsets {targets} after {self.timeout:.0f} s")
                time.sleep(0.05)  # a commit marker not written yet: read on
                marks = watermarks(consumer, self.topic)
        finally:
            consumer.unassign()
        for p in partitions:
            _decode_partition(raw.pop(p), out[p])
        report = RestoreReport(
            partitions, sum(len(r.users) for r in out.values()),
            sum(len(r.items) for r in out.values()), sum(r.records for r in out.values()),
            sum(r.bytes for r in out.values()), time.perf_counter() - t0)
        return out, report

    def _read_to_end(self, raw: dict[int, dict[bytes, bytes]], out: dict[int, RestoredPartition],
                     ends: dict[int, int], deadline: float) -> None:
        consumer = self.consumer
        while True:
            positions = consumer.position([TopicPartition(self.topic, p) for p in raw])
            left = sum(ends[tp.partition] - max(tp.offset, 0) for tp in positions
                       if tp.offset < ends[tp.partition])
            if not left:
                return
            if time.monotonic() > deadline:
                raise ChangelogError(f"{self.topic}: not read to its end {ends} in time")
            # At most what is left (markers take offsets too): no waiting for a full batch.
            for msg in consumer.consume(min(left, 10_000), 0.05):
                if msg.error() is not None:
                    if msg.error().fatal():
                        raise ChangelogError(f"{self.topic}: {msg.error()}")
                    log.warning("%s: %s", self.topic, msg.error())
                    continue
                p, value = msg.partition(), msg.value()
                out[p].records += 1
                out[p].bytes += len(value or b"")
                if value is None:
                    raw[p].pop(msg.key(), None)
                else:
                    raw[p][msg.key()] = value

    def behind(self, raw: dict[int, dict[bytes, bytes]],
                targets: dict[int, int | None]) -> list[int]:
        """The partitions whose state does not (yet) stand at the committed offset."""
        behind = []
        for p, target in targets.items():
            value = raw[p].get(meta_key(p))
            offset = None if value is None else _decode(value)["offset"]
            if target is None and offset is not None and self.exact:
                raise ChangelogError(
                    f"{self.topic}[{p}] holds state up to events offset {offset} but the group "
                    f"{self.settings.consumer_group!r} has no committed offset there (expired or "
                    "reset?): reset the group to that offset, or delete the changelog to start "
                    "over")
            if target is not None and (offset is None or offset < target):
                behind.append(p)
            elif offset is not None and (target is None or offset > target):
                if self.exact:
                    raise ChangelogError(
                        f"{self.topic}[{p}] holds state up to events offset {offset}, beyond "
                        f"the committed {target}: the group's offsets were moved back")
                log.info("%s[%d]: state at offset %d, committed %s: the events in between "
                         "are read again and skipped as duplicates", self.topic, p, offset,
                         target)
        return behind

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _decode_partition(raw: dict[bytes, bytes], out: RestoredPartition) -> None:
    for key, value in raw.items():
        kind, name = parse_key(key)
        data = _decode(value)
        if kind in ("user", "meta") and data.get("v") != VERSION:
            raise ChangelogError(f"changelog record {key!r}: unknown version {data.get('v')!r}")
        if kind == "user":
            out.users[name] = (unpack_history(data["history"]), data["ids"])
        else:
            out.put(key, kind, name, data)
