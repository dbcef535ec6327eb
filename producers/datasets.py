r"""Datasets from files: users' own CSV logs (here) and MovieLens 100K (`producers.movielens`).

Kafka-free: a loader returns an `InteractionLog` (numpy columns in event-time order) and a
`Catalog` (`producers.interactions`); `producers.replay` publishes them, the evaluation and the
benchmarks read them. Everything a caller needs is importable from here.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
>>> _ = path.write_text("uid,sku,ts,kind\nu1,i1,20,click\nu2,i1,10,\n")
>>> log = load_csv(path, "uid", "sku", "ts", type_col="kind", default_event_type="view")
>>> log.user_ids.tolist(), log.event_types.tolist()    # in time order; empty type: the default
(['u2', 'u1'], ['view', 'click'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from producers.interactions import Catalog, DatasetError, InteractionLog, check_rows
from producers.movielens import ML_100K_GENRES, ML_100K_URL, download_movielens, load_movielens
from producers.tables import floats, iso_times, read_table
from refold.core.mapping import EventMapping, MappingError, Skipped, parse_time
from refold.core.schemas import EVENT_TYPES

__all__ = ["ML_100K_GENRES", "ML_100K_URL", "Catalog", "DatasetError", "InteractionLog",
           "download_movielens", "load_csv", "load_movielens"]


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
    head, cols, lines = read_table(path, delimiter, header=True, quoted=True)
    wanted = (user_col, item_col, time_col, value_col, type_col, session_col)
    for c in (c for c in wanted if c is not None):
        if c not in head:
            raise DatasetError(f"{path}: no column {c!r} (columns: {', '.join(head)})")
    col = dict(zip(head, cols, strict=True))
    n, where = len(lines), f"{path}, column {time_col!r}"
    times = (iso_times(col[time_col], where, lines) if time_format == "iso"
             else floats(col[time_col], where, lines, empty_is_nan=False))
    values = np.full(n, np.nan)
    if value_col is not None:
        values = floats(col[value_col], f"{path}, column {value_col!r}", lines, empty_is_nan=True)
    types = np.full(n, default_event_type, dtype="U16")
    if type_col is not None:
        given = np.char.strip(col[type_col])
        types = np.where(given == "", types, given)
    sessions = np.full(n, "") if session_col is None else np.char.strip(col[session_col])
    cols = {"user_ids": np.char.strip(col[user_col]), "item_ids": np.char.strip(col[item_col]),
            "event_types": types, "values": values, "times": times, "session_ids": sessions}
    check_rows(cols, str(path), lines)  # name the line before the log sorts the rows
    return InteractionLog(**cols, name=name or path.stem)


def _load_mapped_csv(path: Path, mapping: EventMapping, user_col: str, item_col: str,
                     time_col: str, value_col: str | None, type_col: str | None,
                     session_col: str | None, default_event_type: str, delimiter: str,
                     name: str | None) -> InteractionLog:
    """`load_csv` with a mapping: its fields win over the column arguments."""
    cols = {"user_id": user_col, "item_id": item_col, "event_time": time_col,
            "value": value_col, "event_type": type_col, "session_id": session_col}
    cols.update({k: v for k, v in mapping.fields.items() if k in cols})
    head, table, lines = read_table(path, delimiter, header=True, quoted=True)
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
    values = (np.full(len(rows), np.nan) if value is None else floats(
        col[value][rows], f"{path}, column {value!r}", lines[rows], empty_is_nan=True))
    sessions = np.full(len(rows), "") if session is None else np.char.strip(col[session][rows])
    out = {"user_ids": np.char.strip(col[cols["user_id"]][rows]), "values": values,
           "item_ids": np.char.strip(col[cols["item_id"]][rows]), "session_ids": sessions,
           "event_types": np.array(types, dtype="U16"), "times": np.array(times, dtype=float)}
    check_rows(out, str(path), lines[rows])
    return InteractionLog(**out, name=name or path.stem)
