"""Snapshot format, checksum, chunking and reassembly (no broker)."""

from __future__ import annotations

import numpy as np
import pytest

from models.snapshot import (
    CHUNK_BYTES,
    MAGIC,
    Assembler,
    Snapshot,
    SnapshotError,
    Watermark,
    checksum,
    encode_chunks,
    pack,
    parse_key,
)


def make(version: int = 1, n: int = 50, k: int = 8, seed: int = 0, xtx: bool = True) -> Snapshot:
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, k), dtype=np.float32)
    X = rng.standard_normal((3 * n, k))
    return Snapshot.build(
        version, 1.7e9 + version, [f"item-{i}-ü" for i in range(n)], Y,
        XtX=X.T @ X if xtx else None, watermark=Watermark({0: 10, 3: 7}, 1.7e9 - 5),
        params={"factors": k, "alpha": 2.0, "model": "als"},
        metrics={"train_loss": 0.25, "recall_at_k": 0.1})


def assemble(asm: Assembler, payload: bytes, version: int, chunk_bytes: int = CHUNK_BYTES):
    chunks, manifest = encode_chunks(payload, version, chunk_bytes)
    for c in chunks:
        assert asm.add(c.key, c.value, c.headers) is None
    return asm.add(manifest.key, manifest.value, list(manifest.headers.items()))


def assert_same(a: Snapshot, b: Snapshot) -> None:
    assert (a.version, a.created_at, a.item_ids) == (b.version, b.created_at, b.item_ids)
    assert a.Y.dtype == b.Y.dtype == np.float32
    assert a.Y.tobytes() == b.Y.tobytes()
    assert a.YtY.tobytes() == b.YtY.tobytes()
    assert (a.XtX is None and b.XtX is None) or a.XtX.tobytes() == b.XtX.tobytes()
    assert (a.watermark, a.params, a.metrics) == (b.watermark, b.params, b.metrics)


@pytest.mark.parametrize("xtx", [True, False])
def test_round_trip_is_bit_exact(xtx):
    snap = make(xtx=xtx)
    payload = snap.to_bytes()
    assert payload.startswith(MAGIC)
    back = Snapshot.from_bytes(payload)
    assert_same(snap, back)
    assert back.watermark.offsets == {0: 10, 3: 7}
    assert np.allclose(back.YtY, snap.Y.astype(np.float64).T @ snap.Y.astype(np.float64))


@pytest.mark.slow
def test_200k_by_64_goes_through_chunks_under_the_message_limit():
    snap = make(n=200_000, k=64, xtx=False)
    payload = snap.to_bytes()
    assert len(payload) > 50_000_000
    chunks, manifest = encode_chunks(payload, 1)
    assert len(chunks) == -(-len(payload) // CHUNK_BYTES) > 1
    assert all(len(c.value) + sum(map(len, c.headers.values())) < 1_000_000 for c in chunks)
    assert [c.key for c in chunks[:2]] == ["1/0", "1/1"] and manifest.key == "1/manifest"
    assert chunks[0].headers["sha256"].decode() == checksum(payload)
    got = Assembler().add  # reassemble in a scrambled order: the index header decides
    for c in chunks[::-1]:
        assert got(c.key, c.value, c.headers) is None
    assert_same(snap, got(manifest.key, manifest.value, manifest.headers))


def test_corrupted_chunk_is_refused_and_next_version_still_assembles():
    asm = Assembler()
    assert assemble(asm, make(1).to_bytes(), 1, 512).version == 1
    chunks, manifest = encode_chunks(make(2).to_bytes(), 2, 512)
    bad = bytearray(chunks[2].value)
    bad[10] ^= 0xFF
    for i, c in enumerate(chunks):
        asm.add(c.key, bytes(bad) if i == 2 else c.value, c.headers)
    with pytest.raises(SnapshotError, match="chunk 2 .* corrupted"):
        asm.add(manifest.key, manifest.value, manifest.headers)
    assert asm.live_version == 1
    assert assemble(asm, make(3).to_bytes(), 3, 512).version == 3


def test_checksum_mismatch_with_matching_crc_is_refused():
    chunks, manifest = encode_chunks(make(2).to_bytes(), 2, 512)
    other, _ = encode_chunks(make(2, seed=9).to_bytes(), 2, 512)
    asm = Assembler()
    j = len(chunks) - 2  # a chunk of factors, which differ between the two payloads
    assert other[j].value != chunks[j].value
    forged = dict(other[j].headers, sha256=chunks[j].headers["sha256"])
    for i, c in enumerate(chunks):
        asm.add(c.key, other[j].value if i == j else c.value, forged if i == j else c.headers)
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        asm.add(manifest.key, manifest.value, manifest.headers)


def test_missing_chunk_or_missing_manifest_never_yields_a_version():
    asm = Assembler()
    chunks, manifest = encode_chunks(make(4).to_bytes(), 4, 512)
    for c in chunks[:-1]:
        assert asm.add(c.key, c.value, c.headers) is None
    with pytest.raises(SnapshotError, match="1 of .* chunks missing"):
        asm.add(manifest.key, manifest.value, manifest.headers)
    chunks, _ = encode_chunks(make(5).to_bytes(), 5, 512)  # no manifest: a killed publisher
    for c in chunks:
        assert asm.add(c.key, c.value, c.headers) is None
    assert asm.live_version == 0
    assert assemble(asm, make(6).to_bytes(), 6, 512).version == 6
    assert asm.pending_bytes == 0


def test_republished_version_does_not_mix_with_the_dead_attempt():
    asm = Assembler()
    dead, _ = encode_chunks(make(7, seed=1).to_bytes(), 7, 512)
    for c in dead[: len(dead) // 2]:
        asm.add(c.key, c.value, c.headers)
    snap = make(7, seed=2)
    assert_same(snap, assemble(asm, snap.to_bytes(), 7, 512))


def test_old_versions_are_ignored_and_pending_memory_is_bounded():
    asm = Assembler(live_version=5, max_pending=2)
    chunks, manifest = encode_chunks(make(3).to_bytes(), 3, 512)
    for c in chunks:
        asm.add(c.key, c.value, c.headers)
    assert asm.add(manifest.key, manifest.value, manifest.headers) is None
    for v in (6, 7, 8):
        for c in encode_chunks(make(v).to_bytes(), v, 512)[0]:
            asm.add(c.key, c.value, c.headers)
    assert asm.pending_versions == [7, 8]


@pytest.mark.parametrize("cut", [4, 20, -1])
def test_truncated_or_foreign_payload_is_refused(cut):
    payload = bytes(make().to_bytes())
    with pytest.raises(SnapshotError):
        Snapshot.from_bytes(payload[:cut])
    with pytest.raises(SnapshotError, match="bad magic"):
        Snapshot.from_bytes(b"\x80\x04pickle" + payload[12:])


def test_nan_factors_or_wrong_shapes_in_a_payload_are_refused():
    snap = make()
    header = {"format": 1, "version": 1, "created_at": 0.0, "items": 50, "factors": 8}
    ids = np.frombuffer(b'["a"]', np.uint8)
    Y = snap.Y.copy()
    Y[3, 1] = np.nan
    with pytest.raises(SnapshotError, match="shape"):
        Snapshot.from_bytes(pack(MAGIC, header, {"ids": ids, "Y": Y, "YtY": snap.YtY}))
    with pytest.raises(SnapshotError, match="NaN"):
        Snapshot.build(1, 0.0, snap.item_ids, Y)
    with pytest.raises(SnapshotError, match="dtype"):
        Snapshot.from_bytes(pack(MAGIC, header, {"ids": ids, "Y": snap.Y.astype(np.float64),
                                                 "YtY": snap.YtY}))


def test_keys_and_item_factors():
    assert parse_key(b"12/3") == (12, 3) and parse_key("12/manifest") == (12, None)
    with pytest.raises(SnapshotError):
        parse_key(b"junk")
    snap = make()
    f = snap.item_factors()
    assert f.version == 1 and f.item_ids == snap.item_ids and np.allclose(f.YtY, snap.YtY)
