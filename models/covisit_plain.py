"""Co-visitation state as plain data with item ids: the records a partition's changelog holds.

A row (an item's count and neighbours, `models.covisit`) is written in full, `{"n", "ids", "w",
"g"}`, or as a *delta* against the last full record, `{"g", "n", "d", "s", "ids", "w"}`: the
count, the degree, and the slots changed since that record with their neighbours and counts
(absolute values, not increments). A refresh changes a few of a row's slots, so most rewrites of
a busy row shrink to those; once the changed slots pass half the row (or the row was halved,
forgotten or restored from an older version's record) the row is written in full again. `g`
counts the row's full records, so a delta left from before the latest full record is ignored.
Which slots changed is part of the state (restored from the delta, kept in a batch's undo), so a
restored partition goes on writing what the original would have.

>>> from models.covisit import CoVisits
>>> cv, ids = CoVisits(window=2, max_neighbors=8), [f"i{n}" for n in range(6)]
>>> for item, previous in [(1, [0]), (2, [0, 1]), (3, [2])]:
...     _ = cv.add(item, np.array(previous))
>>> _ = cv.refresh()
>>> rows, deltas = cv.records([0, 1, 2], ids)
>>> sorted(rows), deltas                       # new rows: in full
(['i0', 'i1', 'i2'], {})
>>> _ = cv.add(4, np.array([2]))
>>> rows, deltas = cv.records(cv.refresh(), ids)
>>> sorted(rows), {k: (d["ids"], unpack(d["w"], "<f8").tolist()) for k, d in deltas.items()}
(['i4'], {'i2': (['i4'], [1.0])})
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

from models.packing import pack, pack_slices, unpack


class CoVisitRecords:
    """`CoVisits`' plain data (its subclass holds the arrays)."""

    __slots__ = ()
    _nbr: np.ndarray
    _wt: np.ndarray
    _slot: np.ndarray
    _deg: np.ndarray
    _inv: np.ndarray
    _ids: np.ndarray | None
    _by_row: dict[int, list[int]] | None
    _grouped: int
    _flat: tuple[np.ndarray, ...] | None
    _buf_r: list[int]
    _buf_c: list[int]
    _buf_g: list[float]
    _buf_s: list[bool]
    _changed: np.ndarray
    _tracked: np.ndarray
    _gen: np.ndarray
    _journal: Any
    count: np.ndarray
    max_neighbors: int

    def __len__(self) -> int:
        return len(self._deg)

    def _grow(self, n: int) -> None:
        raise NotImplementedError

    def _remember(self, items: Iterable[int]) -> None:
        raise NotImplementedError

    def _own(self, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def items(self) -> list[int]:
        """The items with a count, neighbours or buffered updates."""
        return sorted(set(self.rows()) | set(self._buf_r))

    def rows(self) -> list[int]:
        """The items with a count or neighbours."""
        return np.flatnonzero(self.count + self._deg).tolist()

    def row(self, item: int, ids: Sequence[str]) -> dict[str, Any] | None:
        """The item's count and neighbours (in slot order) as plain data, None when it has
        neither: `{"n", "ids", "w", "g"}` with the counts packed (`models.packing`, float64).
        It changes only when a refresh does. `ids` only grows (an index keeps its id), as a
        catalog's ids do."""
        d = int(self._deg[item]) if item < len(self) else 0
        n = float(self.count[item]) if item < len(self) else 0.0
        if not (n or d):
            return None
        # Flat lists and packed counts: each neighbour as its own small list, and its count as
        # a JSON number, was most of a worker's changelog time.
        s = self._slot[item] if d else 0
        return {"n": n, "ids": self._names(ids)[self._nbr[s, :d]].tolist() if d else [],
                "w": pack(self._wt[s, :d] if d else (), "<f8"), "g": int(self._gen[item])}

    def records(self, items: Iterable[int], ids: Sequence[str], full: bool = False
                ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The rows of `items` to write now: `(full rows, deltas)` by item id (module
        docstring); a full row starts the item's next generation. `full`: every row in full,
        nothing changed (a whole partition's dump). The rows' columns are gathered for all of
        them at once (`_gather`)."""
        at = np.asarray(list(items), dtype=np.intp)
        if not len(at):
            return {}, {}
        if full:
            return self._full_rows(self._written(at), ids), {}
        if int(at.max()) >= len(self):  # a forgotten item without a row counts a generation
            self._grow(int(at.max()) + 1)
        delta = self._tracked[at] & (2 * self._changed[self._slot[at]].sum(axis=1) <=
                                     self._deg[at])
        whole = at[~delta]
        if len(whole):  # the next generation starts: nothing changed since its full record
            self._remember(whole.tolist())
            self._gen[whole] += 1
            self._tracked[whole] = True
            self._changed[self._slot[whole]] = False
        return self._full_rows(self._written(whole), ids), self._deltas(at[delta], ids)

    def _written(self, items: np.ndarray) -> np.ndarray:
        """Those of `items` with a count or neighbours (in their order)."""
        inside = items[items < len(self)]
        return inside[(self._deg[inside] > 0) | (self.count[inside] != 0)]

    def _full_rows(self, at: np.ndarray, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`row` of each of the items `at` (each with a count or neighbours)."""
        if not len(at):
            return {}
        degrees = self._deg[at].astype(np.intp)
        names, weights, _ = self._gather(at, degrees, np.arange(int(degrees.sum())) -
                                         np.repeat(np.cumsum(degrees) - degrees, degrees), ids)
        return {ids[i]: {"n": n, "ids": nm, "w": w, "g": g} for i, n, nm, w, g in
                zip(at.tolist(), self.count[at].tolist(), names, weights,
                    self._gen[at].tolist(), strict=True)}

    def _deltas(self, at: np.ndarray, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The deltas of the items `at`: each row's slots changed since its full record."""
        if not len(at):
            return {}
        rows, slots = np.nonzero(self._changed[self._slot[at]])  # row by row, slots ascending
        names, weights, packed = self._gather(at, np.bincount(rows, minlength=len(at)), slots,
                                              ids)
        return {ids[i]: {"g": g, "n": n, "d": d, "s": s, "ids": nm, "w": w}
                for i, g, n, d, s, nm, w in zip(at.tolist(), self._gen[at].tolist(),
                                                self.count[at].tolist(), self._deg[at].tolist(),
                                                packed, names, weights, strict=True)}

    def _gather(self, rows: np.ndarray, lengths: np.ndarray, slots: np.ndarray,
                ids: Sequence[str]) -> tuple[list[list[str]], list[str], list[str]]:
        """For each of `rows`, its `lengths[r]` slots taken in turn from `slots`: the
        neighbours' ids, their counts packed (float64) and the slots packed (int32)."""
        ends = np.cumsum(lengths)
        a, b = (ends - lengths).tolist(), ends.tolist()
        flat_rows = np.repeat(self._slot[rows], lengths)
        names = self._names(ids)[self._nbr[flat_rows, slots]].tolist()
        return ([names[x:y] for x, y in zip(a, b, strict=True)],
                pack_slices(self._wt[flat_rows, slots], "<f8", a, b),
                pack_slices(slots, "<i4", a, b))

    def pending_of(self, item: int, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """The item's buffered updates as plain data, in arrival order: `(None, 1.0)` for an
        event of the item, `(neighbour id, gain, 1)` for a co-visit counted both ways (this
        version writes these), `(neighbour id, gain)` for the item's side alone (as earlier
        versions wrote them, each side in its own item's record)."""
        at = np.asarray(self._groups().get(item, ()), dtype=np.intp)
        if not len(at):
            return []
        _, cols, gains, sym = self._buffer_arrays()
        names = self._names(ids)[cols[at]].tolist()
        return [(j, g, 1) if s else (j, g) for j, g, s in
                zip(names, gains[at].tolist(), sym[at].tolist(), strict=True)]

    def pending_record(self, item: int, ids: Sequence[str]) -> dict[str, Any] | None:
        """`pending_of` packed in columns, as item records hold it (None: nothing buffered):
        `{"ids": neighbour ids (None: an event of the item), "g": gains (float64), "s": counted
        both ways (uint8)}`, base64 (`models.packing`)."""
        return self.pending_records([item], ids)[0]

    def pending_records(self, items: Sequence[int], ids: Sequence[str]
                        ) -> list[dict[str, Any] | None]:
        """`pending_record` of each of `items`, gathered in one pass over the buffer (a
        partition's write asks for each item its batch changed)."""
        if not items:
            return []
        get = self._groups().get
        spans = [get(i, ()) for i in items]
        lengths = np.fromiter(map(len, spans), np.intp, len(spans))
        ends = np.cumsum(lengths)
        if not len(ends) or not ends[-1]:
            return [None] * len(spans)
        firsts = ends - lengths
        at = np.fromiter(chain.from_iterable(spans), np.intp, int(ends[-1]))
        _, cols, gains, sym = self._buffer_arrays()
        names = self._names(ids)[cols[at]].tolist()
        a, b = firsts.tolist(), ends.tolist()
        packed = zip(a, b, pack_slices(gains[at], "<f8", a, b), pack_slices(sym[at], "<u1", a, b),
                     strict=True)
        return [{"ids": names[x:y], "g": g, "s": f} if x < y else None for x, y, g, f in packed]

    def load_row(self, item: int, row: dict[str, Any], index: Callable[[str], int],
                 own_record: bool = True) -> None:
        """Install a `row` (beyond `max_neighbors`, the strongest neighbours are kept);
        `own_record=False`: it came inside an item record of an earlier version, so the row's
        next record is in full."""
        # {"ids", "w"}; earlier versions wrote "w" as a list of numbers, or [id, count] pairs
        # in "nbrs"
        named = (zip(row["ids"], unpack(row["w"], "<f8").tolist(), strict=True) if "ids" in row
                 else row["nbrs"])
        pairs = [(index(j), float(w)) for j, w in named]
        trimmed = len(pairs) > self.max_neighbors
        if trimmed:
            strongest = sorted(range(len(pairs)), key=lambda s: (-pairs[s][1], pairs[s][0]))
            pairs = [pairs[s] for s in sorted(strongest[: self.max_neighbors])]
        self._grow(max([item, *(j for j, _ in pairs)]) + 1)
        self.count[item] = row["n"]
        self._inv[item] = 1.0 / np.sqrt(max(row["n"], 1.0))
        d = self._deg[item] = len(pairs)
        s = self._own(np.array([item]))[0] if d else self._slot[item]
        self._nbr[s] = -1
        self._wt[s] = 0.0
        if d:
            self._nbr[s, :d] = [j for j, _ in pairs]
            self._wt[s, :d] = [w for _, w in pairs]
        self._gen[item] = int(row.get("g", 0))
        self._changed[s] = False
        self._tracked[item] = not (trimmed or "ids" not in row or not own_record)  # else: full

    def load_deltas(self, deltas: Mapping[str, Mapping[str, Any]],
                    index: Callable[[str], int]) -> None:
        """Apply `records`' deltas to the rows loaded (`load_row`) of their generation; the
        others are older than their row's full record, and ignored."""
        for item_id, delta in deltas.items():
            i = index(item_id)
            if i >= len(self) or not self._tracked[i] or delta["g"] != self._gen[i]:
                continue
            slots = unpack(delta["s"], "<i4").astype(np.intp)
            cols = [index(j) for j in delta["ids"]]
            self._grow(max([i, *cols]) + 1)
            s = self._own(np.array([i]))[0]
            self._nbr[s, slots] = cols
            self._wt[s, slots] = unpack(delta["w"], "<f8")
            self._deg[i] = delta["d"]
            self.count[i] = delta["n"]
            self._inv[i] = 1.0 / np.sqrt(max(delta["n"], 1.0))
            self._changed[s] = False
            self._changed[s, slots] = True

    def load_pending(
        self, item: int, pending: Iterable[Sequence[Any]] | Mapping[str, Any],
        index: Callable[[str], int],
    ) -> None:
        """Buffer `pending_record` (or, as earlier versions wrote them, `pending_of`) updates
        again. The updates of different items may come in any order: a refresh sums each
        pair's terms in ascending order."""
        if isinstance(pending, Mapping):
            pending = zip(pending["ids"], unpack(pending["g"], "<f8").tolist(),
                          unpack(pending["s"], "<u1").tolist(), strict=True)
        for entry in pending:
            j, g = entry[0], entry[1]
            self._buf_r.append(item)
            self._buf_c.append(-1 if j is None else index(j))
            self._buf_g.append(float(g))
            self._buf_s.append(len(entry) > 2 and bool(entry[2]))
        self._by_row = None

    # -- which slots changed since each row's full record

    def _track(self, rows: np.ndarray, slots: np.ndarray) -> None:
        """Note changed `slots` of `rows` for the rows' next records (a row whose next record
        is in full starts again from none changed when it is written)."""
        self._changed[self._slot[rows], slots] = True

    def _untrack(self, rows: Iterable[int]) -> None:
        """The next records of `rows` are in full."""
        self._tracked[np.fromiter(rows, np.intp)] = False

    def _names(self, ids: Sequence[str]) -> np.ndarray:
        """`ids` as an object array with None past the last id (so that index -1, an event,
        names None): `ids` itself when it is one already (`ItemIndex.names`, shared by every
        partition of a catalog), else built once per catalog size."""
        if isinstance(ids, np.ndarray):
            return ids
        if self._ids is None or len(self._ids) != len(ids) + 1:
            self._ids = np.array([*ids, None], dtype=object)
        return self._ids

    def _groups(self) -> dict[int, list[int]]:
        """Each row's buffered updates: their positions in the buffer, in arrival order. Kept
        while the buffer is only appended to: the entries appended since the last call are
        grouped (refresh, revert, forget and a restore start it again), not the whole buffer,
        which a partition's write asks for after every batch."""
        if self._by_row is None:
            self._by_row, self._grouped = {}, 0
        rows, by_row = self._buf_r, self._by_row
        for p in range(self._grouped, len(rows)):
            by_row.setdefault(rows[p], []).append(p)
        self._grouped = len(rows)
        return by_row

    def _buffer_arrays(self) -> tuple[np.ndarray, ...]:
        """The buffer as arrays (rows, cols, gains, symmetric): only the entries appended since
        the last call are converted (refresh, revert and forget start it again)."""
        flat = self._flat
        done = 0 if flat is None else len(flat[0])
        if flat is None or done < len(self._buf_r):
            new = (np.asarray(self._buf_r[done:], dtype=np.int64),
                   np.asarray(self._buf_c[done:], dtype=np.int64),
                   np.asarray(self._buf_g[done:], dtype=np.float64),
                   np.asarray(self._buf_s[done:], dtype=bool))
            flat = new if flat is None else tuple(
                np.concatenate(pair) for pair in zip(flat, new, strict=True))
            self._flat = flat
        return flat
