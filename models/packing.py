"""Numeric columns as text for JSON records: base64 of their little-endian bytes. Exact, and far
cheaper to write and read than JSON numbers (decoding numbers was most of a restore's time, and
writing them most of a worker's changelog time).

>>> unpack(pack(np.array([0.8, 1.64]), "<f8"), "<f8").tolist(), unpack([0.5], "<f8").tolist()
([0.8, 1.64], [0.5])
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np


def pack(values: np.ndarray | Sequence[float], dtype: str) -> str:
    """`values` as base64 of their bytes in `dtype` (give the byte order: `"<f8"`)."""
    return base64.b64encode(np.asarray(values, dtype=dtype).tobytes()).decode()


def unpack(packed: str | Sequence[float], dtype: str) -> np.ndarray:
    """`pack`'s values (read-only); a list of numbers, as records of earlier versions hold,
    passes."""
    if isinstance(packed, str):
        return np.frombuffer(base64.b64decode(packed), dtype=dtype)
    return np.asarray(packed, dtype=dtype)
