"""A snapshot whose arrays do not have the shapes they claim is refused like a bad checksum."""

from __future__ import annotations

import struct

import msgspec
import numpy as np
import pytest

from models.snapshot import MAGIC, Assembler, Snapshot, SnapshotError, encode_chunks


def tampered(payload: bytearray, name: str, shape: list[int]) -> bytes:
    """`payload` with the header claiming `shape` for array `name` (bytes untouched)."""
    hlen = struct.unpack_from("<I", payload, len(MAGIC))[0]
    start = len(MAGIC) + 4
    head = msgspec.json.decode(bytes(payload[start:start + hlen]))
    head["arrays"] = [dict(a, shape=shape) if a["name"] == name else a for a in head["arrays"]]
    new = msgspec.json.encode(head)
    assert len(new) <= hlen
    return bytes(payload[:start]) + new + b" " * (hlen - len(new)) + bytes(payload[start + hlen:])


@pytest.mark.parametrize(("name", "shape"), [
    ("Y", [2, 4]), ("Y", [3, 5]), ("Y", [4, 3]), ("Y", [12]), ("YtY", [2, 8]), ("YtY", [16, 1]),
])
def test_wrong_shapes_are_a_snapshot_error(name, shape) -> None:
    snap = Snapshot.build(3, 1.7e9, ["a", "b", "c"], np.ones((3, 4), np.float32))
    bad = tampered(snap.to_bytes(), name, shape)
    with pytest.raises(SnapshotError):
        Snapshot.from_bytes(bad)
    chunks, manifest = encode_chunks(bad, 3, chunk_bytes=64)  # its checksum is right
    asm = Assembler(2)
    for c in chunks:
        assert asm.add(c.key, c.value, c.headers) is None
    with pytest.raises(SnapshotError):
        asm.add(manifest.key, manifest.value, manifest.headers)
