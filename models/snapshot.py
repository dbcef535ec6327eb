"""Model snapshots: a versioned binary format, its checksum, chunking and verified reassembly.

A snapshot is the item side of one refit: ids, float32 factors Y, YᵀY (and XᵀX), the data it covers
(event offsets per partition, the newest event time), hyper-parameters and training metrics, and
what the hybrid ranking needs: each item's interaction count, the learned mixer
(`params["mixer"]`, `models.mixer`) and the content model's idf (`models.content`).

Binary layout (no pickle; every number little-endian):

    b"RFLDSNP1" | u32 header length | header (JSON, space-padded to 8 bytes) | arrays

The header names each array's dtype, shape, offset and length in the array section (8-byte
aligned): `ids` (the item ids as a UTF-8 JSON list), `Y` (<f4, n × k), `YtY` (<f8, k × k), `XtX`
(<f8, k × k, optional), and the optional `EXTRAS`: `counts` (<f4, n), `idf_features` (<i8),
`idf_values` (<f8), `idf_meta` (<i8, 2). The checksum is the sha256 of the whole payload.

On the topic a payload travels as chunks of at most `CHUNK_BYTES`, keyed `<version>/<index>`, then a
manifest keyed `<version>/manifest`. A version exists for readers only once its manifest arrived,
every chunk it lists is present and the reassembled bytes hash to the manifest's checksum.

>>> snap = Snapshot.build(3, 1.7e9, ["a", "b"], np.eye(2, dtype=np.float32), params={"factors": 2})
>>> payload = snap.to_bytes()
>>> chunks, manifest = encode_chunks(payload, 3, chunk_bytes=64)
>>> asm = Assembler()
>>> [asm.add(c.key, c.value, c.headers) for c in chunks] == [None] * len(chunks)
True
>>> got = asm.add(manifest.key, manifest.value, manifest.headers)
>>> got.version, got.item_ids, bool((got.Y == snap.Y).all()), len(chunks) == -(-len(payload) // 64)
(3, ('a', 'b'), True, True)
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from models.errors import ModelError

MAGIC = b"RFLDSNP1"
FORMAT = 1
CHUNK_BYTES = 900_000
"""Chunk size: with headers well below the broker's default 1 MB message limit."""
Buffer = bytes | bytearray | memoryview
_DTYPES = {"ids": "|u1", "Y": "<f4", "YtY": "<f8", "XtX": "<f8", "counts": "<f4",
           "idf_features": "<i8", "idf_values": "<f8", "idf_meta": "<i8"}
EXTRAS = ("counts", "idf_features", "idf_values", "idf_meta")
"""Optional arrays: each item's interactions in the training data (`counts`, the mixer's item
context) and the content model's idf (`models.content.Idf.to_arrays`). Readers that do not know
them skip them."""


class SnapshotError(ModelError):
    """A payload or chunk set that cannot be used: `reason` says why, `version` which (or 0)."""

    def __init__(self, reason: str, version: int = 0) -> None:
        self.reason = reason
        self.version = version
        super().__init__(f"snapshot v{version}: {reason}" if version else reason)


@dataclass(frozen=True)
class Watermark:
    """What data a snapshot covers: next offset per events partition and the newest event time."""

    offsets: dict[int, int] = field(default_factory=dict)
    max_event_time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"offsets": {str(p): o for p, o in self.offsets.items()},
                "max_event_time": self.max_event_time}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Watermark:
        offsets = {int(p): int(o) for p, o in d.get("offsets", {}).items()}
        return cls(offsets, float(d.get("max_event_time", 0.0)))


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One model version. Build with `Snapshot.build` (computes YᵀY) or `Snapshot.from_bytes`."""

    version: int
    created_at: float
    item_ids: tuple[str, ...]
    Y: np.ndarray
    YtY: np.ndarray
    XtX: np.ndarray | None = None
    watermark: Watermark = field(default_factory=Watermark)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Optional arrays by name (`EXTRAS`)."""

    @classmethod
    def build(cls, version: int, created_at: float, item_ids: Sequence[str], Y: np.ndarray, *,
              XtX: np.ndarray | None = None, watermark: Watermark | None = None,
              params: Mapping[str, Any] | None = None,
              metrics: Mapping[str, float] | None = None,
              extras: Mapping[str, np.ndarray] | None = None) -> Snapshot:
        """A snapshot of float32 `Y`; YᵀY is computed in float64, as the fold-in uses it."""
        Y = np.ascontiguousarray(Y, dtype=np.float32)
        Y64 = Y.astype(np.float64)
        extra = {name: np.ascontiguousarray(a, dtype=np.dtype(_DTYPES[name]))
                 for name, a in (extras or {}).items()}
        snap = cls(int(version), float(created_at), tuple(item_ids), Y, Y64.T @ Y64,
                   None if XtX is None else np.asarray(XtX, dtype=np.float64),
                   watermark or Watermark(), dict(params or {}), dict(metrics or {}), extra)
        snap.check()
        return snap

    @property
    def factors(self) -> int:
        return int(self.Y.shape[1])

    def check(self, factors: int | None = None) -> None:
        """Raise `SnapshotError` on wrong shapes, duplicate ids or non-finite numbers."""
        n, k = len(self.item_ids), factors or self.Y.shape[-1]
        if self.Y.ndim != 2 or self.Y.shape != (n, k):
            raise SnapshotError(f"Y has shape {self.Y.shape}, expected {(n, k)}", self.version)
        for name in ("YtY", "XtX"):
            m = getattr(self, name)
            if m is not None and m.shape != (k, k):
                raise SnapshotError(f"{name} has shape {m.shape}, expected {(k, k)}", self.version)
            if m is not None and not np.isfinite(m).all():
                raise SnapshotError(f"{name} contains NaN or infinity", self.version)
        if not np.isfinite(self.Y).all():
            raise SnapshotError("item factors contain NaN or infinity", self.version)
        if len(set(self.item_ids)) != n:
            raise SnapshotError("item ids are not unique", self.version)
        unknown = set(self.extras) - set(EXTRAS)
        if unknown:
            raise SnapshotError(f"unknown arrays {sorted(unknown)}", self.version)
        counts = self.extras.get("counts")
        if counts is not None and (counts.shape != (n,) or not np.isfinite(counts).all()):
            raise SnapshotError(f"counts has shape {counts.shape} for {n} items, or is not "
                                "finite", self.version)

    def item_factors(self) -> Any:
        """The fold-in's `ItemFactors` for this version, built once (an id index and YᵀY: a
        second for 1M items, so a follower builds it off the worker's thread)."""
        from models.foldin import ItemFactors

        if "_factors" not in self.__dict__:
            self.__dict__["_factors"] = ItemFactors(
                self.item_ids, self.Y, self.version, XtX=self.XtX,
                counts=self.extras.get("counts"), mixer=self.mixer(), idf=self.idf())
        return self.__dict__["_factors"]

    def mixer(self) -> Any:
        """The `models.mixer.Mixer` fitted with this version (`params["mixer"]`), or None."""
        from models.mixer import Mixer

        d = self.params.get("mixer")
        return None if d is None else Mixer.from_json(d)

    def idf(self) -> Any:
        """The content model's `models.content.Idf`, or None when this version has none."""
        from models.content import Idf

        return Idf.from_arrays(self.extras) if "idf_meta" in self.extras else None

    def to_bytes(self) -> bytearray:
        """The binary payload (see the module docstring)."""
        header = {"format": FORMAT, "version": self.version, "created_at": self.created_at,
                  "items": len(self.item_ids), "factors": self.factors,
                  "watermark": self.watermark.to_json(), "params": self.params,
                  "metrics": self.metrics}
        ids = np.frombuffer(msgspec.json.encode(list(self.item_ids)), dtype=np.uint8)
        arrays = {"ids": ids, "Y": self.Y, "YtY": self.YtY}
        if self.XtX is not None:
            arrays["XtX"] = self.XtX
        arrays.update(self.extras)
        return pack(MAGIC, header, arrays)

    @classmethod
    def from_bytes(cls, data: Buffer) -> Snapshot:
        """Decode and check a payload; the arrays are read-only views of `data` (no copy)."""
        header, arrays = unpack(MAGIC, data)
        version = int(header.get("version", 0))
        if header.get("format") != FORMAT:
            raise SnapshotError(f"unknown format {header.get('format')!r}", version)
        for name in ("ids", "Y", "YtY"):
            if name not in arrays:
                raise SnapshotError(f"array {name!r} is missing", version)
        try:
            ids = tuple(msgspec.json.decode(arrays["ids"].tobytes(), type=list[str]))
        except msgspec.DecodeError as exc:
            raise SnapshotError(f"item ids do not decode: {exc}", version) from None
        try:
            snap = cls(version, float(header["created_at"]), ids, arrays["Y"], arrays["YtY"],
                       arrays.get("XtX"), Watermark.from_json(header.get("watermark", {})),
                       dict(header.get("params", {})), dict(header.get("metrics", {})),
                       {name: arrays[name] for name in EXTRAS if name in arrays})
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"header does not describe a snapshot: {exc!r}", version) from None
        snap.check(int(header.get("factors", 0)) or None)
        return snap


def checksum(data: Buffer) -> str:
    """sha256 of a payload, hex."""
    return hashlib.sha256(data).hexdigest()


def pack(magic: bytes, header: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> bytearray:
    """`magic | u32 len | JSON header | 8-byte aligned little-endian arrays` (shared with the
    interaction store's checkpoint)."""
    layout, offset = [], 0
    for name, a in arrays.items():
        a = np.asarray(a)
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder not in "|<" else a.dtype
        layout.append({"name": name, "dtype": dtype.str, "shape": list(a.shape),
                       "offset": offset, "nbytes": a.nbytes})
        offset += -(-a.nbytes // 8) * 8
    head = msgspec.json.encode({**header, "arrays": layout})
    head += b" " * (-(len(magic) + 4 + len(head)) % 8)
    out = bytearray(len(magic) + 4 + len(head) + offset)
    out[: len(magic)] = magic
    struct.pack_into("<I", out, len(magic), len(head))
    start = len(magic) + 4 + len(head)
    out[len(magic) + 4: start] = head
    view = np.frombuffer(out, dtype=np.uint8)
    for spec, a in zip(layout, arrays.values(), strict=True):
        raw = np.ascontiguousarray(a, dtype=np.dtype(spec["dtype"])).reshape(-1).view(np.uint8)
        view[start + spec["offset"]: start + spec["offset"] + spec["nbytes"]] = raw
    return out


def unpack(magic: bytes, data: Buffer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of `pack`; raises `SnapshotError` on a wrong magic, a bad header or truncation."""
    buf = memoryview(data)
    if bytes(buf[: len(magic)]) != magic:
        raise SnapshotError(f"not a {magic.decode(errors='replace')} payload (bad magic)")
    if len(buf) < len(magic) + 4:
        raise SnapshotError("truncated header")
    (hlen,) = struct.unpack_from("<I", buf, len(magic))
    start = len(magic) + 4 + hlen
    try:
        header = msgspec.json.decode(buf[len(magic) + 4: start])
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"header does not decode: {exc}") from None
    arrays: dict[str, np.ndarray] = {}
    for spec in header.pop("arrays", []):
        end = start + spec["offset"] + spec["nbytes"]
        if end > len(buf):
            raise SnapshotError(f"truncated: array {spec['name']!r} ends at byte {end} of "
                                f"{len(buf)}", int(header.get("version", 0)))
        dtype = np.dtype(spec["dtype"])
        if spec["name"] in _DTYPES and dtype.str != _DTYPES[spec["name"]]:
            raise SnapshotError(f"array {spec['name']!r} has dtype {dtype.str}")
        shape = [int(n) for n in spec["shape"]]
        if min(shape, default=0) < 0 or math.prod(shape) * dtype.itemsize != spec["nbytes"]:
            raise SnapshotError(f"array {spec['name']!r}: shape {shape} of {dtype.str} does "
                                f"not fill its {spec['nbytes']} bytes",
                                int(header.get("version", 0)))
        flat = np.frombuffer(buf[start + spec["offset"]: end], dtype=dtype)
        arrays[spec["name"]] = flat.reshape(shape)
    return header, arrays


@dataclass(frozen=True)
class Chunk:
    """One message of a published snapshot: key, value and headers (str → bytes)."""

    key: str
    value: bytes
    headers: dict[str, bytes]


def encode_chunks(payload: bytes | bytearray, version: int, chunk_bytes: int = CHUNK_BYTES,
                  manifest_extra: Mapping[str, Any] | None = None) -> tuple[list[Chunk], Chunk]:
    """Split a payload into chunks keyed `<version>/<index>` and build the manifest message.

    Each chunk's headers: version, index, count, total_bytes, sha256 (of the whole payload) and
    crc32 (of the chunk, so a reader can name the damaged one).
    """
    digest, total = checksum(payload), len(payload)
    count = max(1, -(-total // chunk_bytes))
    common = {"version": str(version).encode(), "count": str(count).encode(),
              "total_bytes": str(total).encode(), "sha256": digest.encode()}
    chunks, view = [], memoryview(payload)
    for i in range(count):
        part = bytes(view[i * chunk_bytes: (i + 1) * chunk_bytes])
        headers = {**common, "index": str(i).encode(),
                   "crc32": str(zlib.crc32(part)).encode()}
        chunks.append(Chunk(f"{version}/{i}", part, headers))
    body = {"version": version, "count": count, "total_bytes": total, "sha256": digest}
    manifest = Chunk(f"{version}/manifest", msgspec.json.encode(body),
                     {**common, "kind": b"manifest"})
    return chunks, manifest


def extend_manifest(manifest: Chunk, extra: Mapping[str, Any]) -> Chunk:
    """The manifest with more fields (e.g. the chunks' first offset, known once delivered)."""
    body = {**msgspec.json.decode(manifest.value), **extra}
    return Chunk(manifest.key, msgspec.json.encode(body), manifest.headers)


def parse_key(key: bytes | str | None) -> tuple[int, int | None]:
    """`(version, index)` of a chunk key, index None for a manifest; SnapshotError otherwise."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
    version, _, part = text.partition("/")
    try:
        return int(version), None if part == "manifest" else int(part)
    except ValueError:
        raise SnapshotError(f"not a snapshot key: {text!r}") from None


def _headers(headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    return {k: (v or b"").decode(errors="replace") for k, v in items}


class Assembler:
    """Collects chunks; returns a verified `Snapshot` when a complete version's manifest arrives.

    Chunks are grouped by (version, sha256), so a version re-published after a crash never mixes
    with the dead attempt's chunks. Versions at or below `live_version` are ignored and at most
    `max_pending` partial versions are held (the oldest dropped first), so memory stays bounded.
    A manifest that cannot be honoured raises `SnapshotError` naming the reason.
    """

    def __init__(self, live_version: int = 0, max_pending: int = 2) -> None:
        self.live_version = live_version
        self.max_pending = max_pending
        self._parts: dict[tuple[int, str], dict[int, bytes | None]] = {}

    @property
    def pending_bytes(self) -> int:
        return sum(len(p or b"") for parts in self._parts.values() for p in parts.values())

    @property
    def pending_versions(self) -> list[int]:
        """Versions with chunks held, waiting for the rest (sorted)."""
        return sorted(v for v, _ in self._parts)

    def add(self, key: bytes | str | None, value: bytes | None,
            headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None) -> Snapshot | None:
        """Take one message of the snapshots topic; a complete, verified version is returned."""
        version, index = parse_key(key)
        if version <= self.live_version:
            return None
        h = _headers(headers)
        if index is not None:
            # A chunk whose crc fails is kept as a hole, so the manifest names it.
            ok = value is not None and h.get("crc32") == str(zlib.crc32(value))
            self._parts.setdefault((version, h.get("sha256", "")), {})[index] = (
                value if ok else None)
            for stale in sorted(self._parts)[: max(0, len(self._parts) - self.max_pending)]:
                del self._parts[stale]
            return None
        try:
            m = msgspec.json.decode(value or b"")
            digest, count, total = str(m["sha256"]), int(m["count"]), int(m["total_bytes"])
        except (msgspec.DecodeError, KeyError, TypeError, ValueError):
            raise SnapshotError("manifest does not decode", version) from None
        parts = self._parts.pop((version, digest), {})
        damaged = [i for i, p in parts.items() if p is None]
        if damaged:
            raise SnapshotError(f"chunk {damaged[0]} of {count} is corrupted (crc32)", version)
        missing = [i for i in range(count) if i not in parts]
        if missing:
            raise SnapshotError(f"{len(missing)} of {count} chunks missing (first: {missing[0]})",
                                version)
        payload = b"".join(parts[i] for i in range(count))  # type: ignore[misc]
        if len(payload) != total:
            raise SnapshotError(f"{len(payload)} bytes, manifest says {total}", version)
        if checksum(payload) != digest:
            raise SnapshotError("sha256 checksum mismatch", version)
        snap = Snapshot.from_bytes(payload)
        if snap.version != version:
            raise SnapshotError(f"payload says version {snap.version}", version)
        self.live_version = version
        self._parts = {k: v for k, v in self._parts.items() if k[0] > version}
        return snap
