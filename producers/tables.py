"""Delimited text tables as numpy string columns, and their numbers and times, with errors that
name the file and the line: what the CSV and MovieLens loaders read with."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from producers.interactions import DatasetError


def read_table(
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


def floats(col: np.ndarray, where: str, lines: np.ndarray, *, empty_is_nan: bool) -> np.ndarray:
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


def iso_times(col: np.ndarray, where: str, lines: np.ndarray) -> np.ndarray:
    out = np.empty(len(col))
    for k, s in enumerate(col.tolist()):
        try:
            t = datetime.fromisoformat(s.strip())
        except ValueError:
            raise DatasetError(f"{where}, line {lines[k]}: not an ISO 8601 time: {s!r}") from None
        out[k] = (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()  # naive means UTC
    return out
