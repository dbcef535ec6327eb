"""A dataset in memory: `InteractionLog` (numpy columns in event-time order) and `Catalog`.

The loaders (`producers.datasets`: CSV logs; `producers.movielens`) return them;
`producers.replay` publishes them, the evaluation and the benchmarks read them.

>>> log = InteractionLog(["u1", "u2", "u1"], ["i1", "i1", "i2"], ["click", "rating", "view"],
...                      [float("nan"), 4.0, float("nan")], [20.0, 10.0, 20.0], name="demo")
>>> log.user_ids.tolist(), log.times.tolist()        # stable time order: ties keep input order
(['u2', 'u1', 'u1'], [10.0, 20.0, 20.0])
>>> [(e.event_id, e.event_type, e.value) for e in log.iter_events("demo")]
[('demo-0', 'rating', 4.0), ('demo-1', 'click', None), ('demo-2', 'view', None)]
>>> next(log[1:].iter_events("demo")).event_id      # a slice keeps its rows' ids
'demo-1'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from refold.core.errors import ProducerError
from refold.core.schemas import EVENT_TYPES, Event, Item


class DatasetError(ProducerError, ValueError):
    """A dataset is missing, malformed, or lacks a requested column; the message says where."""


def _str_col(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind == "O":  # None (no session) becomes ""
        a = np.array(["" if s is None else str(s) for s in a.tolist()], dtype=str)
    return a if a.dtype.kind == "U" else a.astype(str)


@dataclass(frozen=True, eq=False, repr=False)
class InteractionLog:
    """Interactions as equal-length numpy columns, always in event-time order (stable sort).

    `values` is NaN where an event has no value; `session_ids` is "" where there is no session.
    `first_row` is the row number of the first row in the log this one was sliced from, so the
    event ids of `log[a:b]` are those of the same rows in `log`.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    event_types: np.ndarray
    values: np.ndarray
    times: np.ndarray
    session_ids: np.ndarray | None = None
    name: str = ""
    first_row: int = 0

    def __post_init__(self) -> None:
        n = len(self.times)
        cols = {
            "user_ids": _str_col(self.user_ids), "item_ids": _str_col(self.item_ids),
            "event_types": _str_col(self.event_types),
            "values": np.asarray(self.values, dtype=np.float64),
            "times": np.asarray(self.times, dtype=np.float64),
            "session_ids": _str_col(np.full(n, "") if self.session_ids is None
                                    else self.session_ids),
        }
        if any(c.ndim != 1 or len(c) != n for c in cols.values()):
            lengths = {k: c.shape for k, c in cols.items()}
            raise DatasetError(f"columns must be 1-d and of equal length, got {lengths}")
        check_rows(cols)
        if n > 1 and not np.all(cols["times"][1:] >= cols["times"][:-1]):
            order = np.argsort(cols["times"], kind="stable")
            cols = {k: c[order] for k, c in cols.items()}
        for k, c in cols.items():
            object.__setattr__(self, k, c)

    def __len__(self) -> int:
        return len(self.times)

    def __repr__(self) -> str:
        span = f", {self.times[0]:.0f}..{self.times[-1]:.0f}" if len(self) else ""
        return f"InteractionLog({self.name!r}, {len(self):,} events{span})"

    def __getitem__(self, key: slice | Sequence[int] | np.ndarray) -> InteractionLog:
        """`log[a:b]` (keeps event ids) or `log[rows]` / `log[mask]` (same as `take`)."""
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(len(self))
            return self._rows(slice(start, max(start, stop)), self.first_row + start)
        if isinstance(key, int | np.integer):
            raise TypeError("index with a slice or an array of rows; use iter_events for events")
        return self.take(key)

    def take(self, rows: Sequence[int] | np.ndarray) -> InteractionLog:
        """A log of the given rows (indices or a boolean mask), re-sorted by time; ids restart."""
        return self._rows(np.asarray(rows), 0)

    def _rows(self, rows: slice | np.ndarray, first_row: int) -> InteractionLog:
        return replace(
            self, user_ids=self.user_ids[rows], item_ids=self.item_ids[rows],
            event_types=self.event_types[rows], values=self.values[rows], times=self.times[rows],
            session_ids=self.session_ids[rows], first_row=first_row,
        )

    def chunks(self, size: int = 65_536) -> Iterator[InteractionLog]:
        """Consecutive slices of at most `size` rows."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def iter_events(self, prefix: str) -> Iterator[Event]:
        """The rows as `Event`s with ids `f"{prefix}-{row}"`, converted one chunk at a time."""
        for chunk in self.chunks():
            columns = (
                range(chunk.first_row, chunk.first_row + len(chunk)), chunk.user_ids.tolist(),
                chunk.item_ids.tolist(), chunk.event_types.tolist(), chunk.times.tolist(),
                chunk.values.tolist(), chunk.session_ids.tolist(),
            )
            for row, user, item, kind, t, value, session in zip(*columns, strict=True):
                yield Event(
                    event_id=f"{prefix}-{row}", user_id=user, item_id=item, event_type=kind,
                    event_time=t, session_id=session or None,
                    value=None if value != value else value,  # NaN: no value
                )


def check_rows(cols: dict[str, np.ndarray], where: str = "", lines: Any = None) -> None:
    """Reject rows that would not make valid events, naming the first bad row (or its line)."""
    kinds, values = cols["event_types"], cols["values"]
    checks = (
        ("user_ids", cols["user_ids"] == "", "empty user id"),
        ("item_ids", cols["item_ids"] == "", "empty item id"),
        ("event_types", ~np.isin(cols["event_types"], EVENT_TYPES), "unknown event type"),
        ("times", ~(np.isfinite(cols["times"]) & (cols["times"] >= 0)), "time not finite and >= 0"),
        ("values", np.isinf(values), "infinite value"),
        ("values", (kinds == "rating") & np.isnan(values), "rating without value"),
    )
    for name, bad, what in checks:
        if bad.any():
            k = int(np.argmax(bad))
            at = f"row {k}" if lines is None else f"{where}, line {lines[k]}"
            raise DatasetError(f"{at}: {what} ({name}={cols[name][k].item()!r})")


class Catalog(list[Item]):
    """A dataset's catalog: a list of `refold.core.schemas.Item`."""

    def by_id(self) -> dict[str, Item]:
        return {item.item_id: item for item in self}

    def categories(self) -> list[str]:
        return sorted({c for item in self for c in item.categories})
