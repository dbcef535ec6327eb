"""Numeric columns as text for JSON records: base64 of their little-endian bytes. Exact, and far
cheaper to write and read than JSON numbers (decoding numbers was most of a restore's time, and
writing them most of a worker's changelog time).

>>> unpack(pack(np.array([0.8, 1.64]), "<f8"), "<f8").tolist(), unpack([0.5], "<f8").tolist()
([0.8, 1.64], [0.5])
"""

from __future__ import annotations

import base64
from binascii import b2a_base64
from collections.abc import Sequence

import numpy as np


def pack(values: np.ndarray | Sequence[float], dtype: str) -> str:
    """`values` as base64 of their bytes in `dtype` (give the byte order: `"<f8"`)."""
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


def pack_slices(values: np.ndarray, dtype: str, starts: Sequence[int],
                ends: Sequence[int]) -> list[str]:
    """`pack(values[s:e], dtype)` for each (s, e) of `starts`, `ends`: one conversion to bytes,
    then each slice of them (the same text as `pack`, without a numpy call per slice).

    >>> v = np.array([0.5, 1.0, 2.0])
    >>> pack_slices(v, "<f8", [0, 1], [1, 3]) == [pack(v[:1], "<f8"), pack(v[1:], "<f8")]
    True
    """
    raw = np.ascontiguousarray(values, dtype=dtype)
    size = raw.dtype.itemsize
    data = raw.tobytes()
    return [b2a_base64(data[s * size:e * size], newline=False).decode("ascii")
            for s, e in zip(starts, ends, strict=True)]


def pack_rows(values: np.ndarray, dtype: str) -> list[str]:
    """`pack(row, dtype)` of each row of a 2-d array (one conversion to bytes).

    >>> m = np.array([[0.5, 1.0], [2.0, 4.0]])
    >>> pack_rows(m, "<f8") == [pack(m[0], "<f8"), pack(m[1], "<f8")]
    True
    """
    n, width = values.shape
    starts = [r * width for r in range(n)]
    return pack_slices(values.reshape(-1), dtype, starts, [s + width for s in starts])


def unpack(packed: str | Sequence[float], dtype: str) -> np.ndarray:
    """`pack`'s values (read-only); a list of numbers, as records of earlier versions hold,
    passes."""
    if isinstance(packed, str):
        return np.frombuffer(base64.b64decode(packed), dtype=dtype)
    return np.asarray(packed, dtype=dtype)
