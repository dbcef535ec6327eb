"""Interaction logs and catalogs from files: MovieLens 100K (two layouts) and users' own CSV logs.

Kafka-free: a loader returns an `InteractionLog` (numpy columns in event-time order) and a
`Catalog`; `producers.replay` publishes them, the evaluation and the benchmarks read them.

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

import csv
import re
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from refold.core.errors import ProducerError
from refold.core.mapping import EventMapping, MappingError, Skipped, parse_time
from refold.core.schemas import EVENT_TYPES, Event, Item

ML_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # the order of the genre flag columns of u.item, used when u.genre is absent


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
        _check_rows(cols)
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


def _check_rows(cols: dict[str, np.ndarray], where: str = "", lines: Any = None) -> None:
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


def _read_table(
    path: Path, delimiter: str, *, header: bool, encoding: str = "utf-8", quoted: bool = False
) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """Header, string columns and each row's line number; blank lines are skipped."""
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    try:
        with open(path, newline="", encoding=encoding) as f:
            rows = list(csv.reader(f, delimiter=delimiter, quoting=quoting))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    head = [h.strip() for h in rows.pop(0)] if header and rows else []
    keep = [k for k, r in enumerate(rows) if r]
    lines = np.asarray(keep, dtype=np.int64) + 1 + header
    rows = [rows[k] for k in keep] if len(keep) < len(rows) else rows
    width = len(head) if header else len(rows[0]) if rows else 0
    for k, r in enumerate(rows):
        if len(r) != width:
            raise DatasetError(f"{path}, line {lines[k]}: {len(r)} fields, expected {width}")
    cols = [np.array(c, dtype=str) for c in zip(*rows, strict=True)] if rows else []
    return head, cols or [np.array([], dtype=str)] * width, lines


def _floats(col: np.ndarray, where: str, lines: np.ndarray, *, empty_is_nan: bool) -> np.ndarray:
    text = np.char.strip(col)
    if empty_is_nan:
        text = np.where(text == "", "nan", text)
    try:
        out = text.astype(np.float64)
    except ValueError:  # find the culprit
        out = np.full(len(text), np.inf)
        for k, s in enumerate(text.tolist()):
            try:
                out[k] = float(s)
            except ValueError:
                break
    bad = np.isinf(out) if empty_is_nan else ~np.isfinite(out)
    if bad.any():
        k = int(np.argmax(bad))
        raise DatasetError(f"{where}, line {lines[k]}: not a finite number: {col[k].item()!r}")
    return out


def _iso_times(col: np.ndarray, where: str, lines: np.ndarray) -> np.ndarray:
    out = np.empty(len(col))
    for k, s in enumerate(col.tolist()):
        try:
            t = datetime.fromisoformat(s.strip())
        except ValueError:
            raise DatasetError(f"{where}, line {lines[k]}: not an ISO 8601 time: {s!r}") from None
        out[k] = (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()  # naive means UTC
    return out


def load_csv(
    path: str | Path, user_col: str, item_col: str, time_col: str, value_col: str | None = None,
    type_col: str | None = None, default_event_type: str = "click", delimiter: str = ",",
    time_format: Literal["unix", "iso"] = "unix", session_col: str | None = None,
    name: str | None = None, mapping: EventMapping | None = None,
) -> InteractionLog:
    """A CSV log with a header row; columns are picked by name.

    `time_format` is "unix" (seconds) or "iso" (ISO 8601; naive times are UTC). An empty or absent
    type is `default_event_type`; an empty value is none. Errors name the column or the line.
    A `mapping` (`refold.core.mapping`, the bridge's) names columns (`user_id=uid`), translates
    types (skipped ones are dropped) and reads times in its unit.
    """
    if mapping is not None:
        return _load_mapped_csv(Path(path), mapping, user_col, item_col, time_col, value_col,
                                type_col, session_col, default_event_type, delimiter, name)
    path = Path(path)
    if time_format not in ("unix", "iso"):
        raise ValueError(f"time_format must be 'unix' or 'iso', not {time_format!r}")
    if default_event_type not in EVENT_TYPES:
        raise ValueError(f"default_event_type must be one of {EVENT_TYPES}")
    head, cols, lines = _read_table(path, delimiter, header=True, quoted=True)
    wanted = (user_col, item_col, time_col, value_col, type_col, session_col)
    for c in (c for c in wanted if c is not None):
        if c not in head:
            raise DatasetError(f"{path}: no column {c!r} (columns: {', '.join(head)})")
    col = dict(zip(head, cols, strict=True))
    n, where = len(lines), f"{path}, column {time_col!r}"
    times = (_iso_times(col[time_col], where, lines) if time_format == "iso"
             else _floats(col[time_col], where, lines, empty_is_nan=False))
    values = np.full(n, np.nan)
    if value_col is not None:
        values = _floats(col[value_col], f"{path}, column {value_col!r}", lines, empty_is_nan=True)
    types = np.full(n, default_event_type, dtype="U16")
    if type_col is not None:
        given = np.char.strip(col[type_col])
        types = np.where(given == "", types, given)
    sessions = np.full(n, "") if session_col is None else np.char.strip(col[session_col])
    cols = {"user_ids": np.char.strip(col[user_col]), "item_ids": np.char.strip(col[item_col]),
            "event_types": types, "values": values, "times": times, "session_ids": sessions}
    _check_rows(cols, str(path), lines)  # name the line before the log sorts the rows
    return InteractionLog(**cols, name=name or path.stem)


def _load_mapped_csv(path: Path, mapping: EventMapping, user_col: str, item_col: str,
                     time_col: str, value_col: str | None, type_col: str | None,
                     session_col: str | None, default_event_type: str, delimiter: str,
                     name: str | None) -> InteractionLog:
    """`load_csv` with a mapping: its fields win over the column arguments."""
    cols = {"user_id": user_col, "item_id": item_col, "event_time": time_col,
            "value": value_col, "event_type": type_col, "session_id": session_col}
    cols.update({k: v for k, v in mapping.fields.items() if k in cols})
    head, table, lines = _read_table(path, delimiter, header=True, quoted=True)
    for c in (c for c in cols.values() if c is not None):
        if c not in head:
            raise DatasetError(f"{path}: no column {c!r} (columns: {', '.join(head)})")
    col = dict(zip(head, table, strict=True))
    default = mapping.default_type or default_event_type
    keep, types, times = [], [], []
    for k in range(len(lines)):
        raw_type = col[cols["event_type"]][k].strip() if cols["event_type"] else ""
        try:
            types.append(mapping.event_type(raw_type) if raw_type else default)
            times.append(parse_time(col[cols["event_time"]][k].strip(), mapping.time_unit))
            keep.append(k)
        except Skipped:
            continue
        except (MappingError, ValueError) as exc:
            raise DatasetError(f"{path}, line {lines[k]}: {exc}") from None
    rows, value, session = np.asarray(keep, dtype=np.int64), cols["value"], cols["session_id"]
    values = (np.full(len(rows), np.nan) if value is None else _floats(
        col[value][rows], f"{path}, column {value!r}", lines[rows], empty_is_nan=True))
    sessions = np.full(len(rows), "") if session is None else np.char.strip(col[session][rows])
    out = {"user_ids": np.char.strip(col[cols["user_id"]][rows]), "values": values,
           "item_ids": np.char.strip(col[cols["item_id"]][rows]), "session_ids": sessions,
           "event_types": np.array(types, dtype="U16"), "times": np.array(times, dtype=float)}
    _check_rows(out, str(path), lines[rows])
    return InteractionLog(**out, name=name or path.stem)


def load_movielens(path: str | Path) -> tuple[InteractionLog, Catalog]:
    """MovieLens 100K from a directory: the GroupLens layout (`u.data`, `u.item`, `u.genre`) or
    the tab-separated atomic layout (`<name>.inter`, `<name>.item`). Ratings become `rating`
    events with their value; genres become item categories."""
    root = Path(path)
    if not (root / "u.data").is_file() and (root / "ml-100k" / "u.data").is_file():
        root = root / "ml-100k"  # the directory download_movielens extracted into
    if (root / "u.data").is_file():
        return _load_grouplens(root)
    if inter := sorted(root.glob("*.inter")):
        return _load_atomic(inter[0])
    raise DatasetError(
        f"{root}: no MovieLens files here (expected u.data and u.item, or <name>.inter and "
        "<name>.item)"
    )


def _title_year(title: str, date: str) -> tuple[str, int | None]:
    """'Toy Story (1995)', '01-Jan-1995' -> ('Toy Story', 1995)."""
    m = re.fullmatch(r"(.*?)\s*\((\d{4})\)\s*", title)
    year = date[-4:] if date[-4:].isdigit() else m[2] if m else ""
    return (m[1] if m else title), int(year) if year else None


def _load_grouplens(root: Path) -> tuple[InteractionLog, Catalog]:
    _, cols, lines = _read_table(root / "u.data", "\t", header=False)
    if len(cols) != 4:
        raise DatasetError(f"{root / 'u.data'}: expected 4 columns (user item rating timestamp)")
    ratings, times = (_floats(c, f"{root / 'u.data'}", lines, empty_is_nan=False)
                      for c in cols[2:])
    log = InteractionLog(cols[0], cols[1], np.full(len(times), "rating"), ratings, times,
                         name="ml-100k")
    genres = list(ML_100K_GENRES)
    if (root / "u.genre").is_file():
        _, g, _ = _read_table(root / "u.genre", "|", header=False, encoding="latin-1")
        genres = g[0][np.argsort(g[1].astype(int))].tolist()
    catalog = Catalog()
    if (root / "u.item").is_file():
        _, cols, lines = _read_table(root / "u.item", "|", header=False, encoding="latin-1")
        if len(cols) != 5 + len(genres):
            raise DatasetError(f"{root / 'u.item'}: expected {5 + len(genres)} columns "
                               f"(id title date video-date url and {len(genres)} genre flags)")
        flags = np.stack(cols[5:], axis=1) == "1"
        for k, (item, title, date) in enumerate(zip(*(c.tolist() for c in cols[:3]), strict=True)):
            name, year = _title_year(title, date)
            catalog.append(Item(
                item_id=item, categories=[g for g, f in zip(genres, flags[k], strict=True) if f],
                attributes={"title": name, "year": year},
            ))
    return log, catalog


def _load_atomic(inter: Path) -> tuple[InteractionLog, Catalog]:
    """`<name>.inter` / `<name>.item`: tab-separated, header fields typed as `name:type`."""
    head, cols, lines = _read_table(inter, "\t", header=True)
    col = {h.split(":")[0]: c for h, c in zip(head, cols, strict=True)}
    for needed in ("user_id", "item_id", "rating", "timestamp"):
        if needed not in col:
            raise DatasetError(f"{inter}: no column {needed!r} (columns: {', '.join(head)})")
    ratings, times = (_floats(col[c], str(inter), lines, empty_is_nan=False)
                      for c in ("rating", "timestamp"))
    log = InteractionLog(col["user_id"], col["item_id"], np.full(len(times), "rating"), ratings,
                         times, name=inter.stem)
    catalog = Catalog()
    item_file = inter.with_suffix(".item")
    if item_file.is_file():
        head, cols, _ = _read_table(item_file, "\t", header=True)
        col = {h.split(":")[0]: c.tolist() for h, c in zip(head, cols, strict=True)}
        if "item_id" not in col:
            raise DatasetError(f"{item_file}: no column 'item_id' (columns: {', '.join(head)})")
        blank = [""] * len(col["item_id"])
        for item, title, year, genres in zip(col["item_id"], col.get("movie_title", blank),
                                             col.get("release_year", blank),
                                             col.get("class", blank), strict=True):
            catalog.append(Item(item_id=item, categories=genres.split(), attributes={
                "title": title, "year": int(year) if year.isdigit() else None}))
    return log, catalog


def download_movielens(dest_dir: str | Path, url: str = ML_100K_URL) -> Path:
    """Download and unzip the original ml-100k archive into `dest_dir`; returns `dest_dir/ml-100k`.

    Only ever called explicitly (the MovieLens terms ask that the data not be redistributed).
    Does nothing when `dest_dir/ml-100k/u.data` already exists.
    """
    dest = Path(dest_dir)
    target = dest / "ml-100k"
    if (target / "u.data").is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as tmp:
        with urllib.request.urlopen(url, timeout=60) as resp:
            size = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=Path(url).name) as bar:
                while block := resp.read(1 << 16):
                    tmp.write(block)
                    bar.update(len(block))
        tmp.seek(0)
        with zipfile.ZipFile(tmp) as archive:
            archive.extractall(dest)  # extractall keeps member paths inside dest
    if not (target / "u.data").is_file():
        raise DatasetError(f"{url}: the archive has no ml-100k/u.data")
    return target
