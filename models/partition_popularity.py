"""A partition's popularity as plain data: the raw accumulators of its trending count (one, or
one per rung of an adaptive ladder), the rescales they were written after, and their loading
from records written with another setting (`models.partition` writes and reads the records).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from models.adaptive_trending import AdaptiveTrending
from models.packing import pack_rows, unpack
from models.trending import Trending


def t_refs(trending: Trending | AdaptiveTrending) -> list[float | None]:
    if isinstance(trending, AdaptiveTrending):
        return [rung.t_ref for rung in trending.rungs]
    return [trending.t_ref]


def pop_columns(trending: Trending | AdaptiveTrending) -> list[np.ndarray]:
    """The raw accumulators: one array, or one per rung of a ladder."""
    if isinstance(trending, AdaptiveTrending):
        return [rung.ranking_scores() for rung in trending.rungs]
    return [trending.ranking_scores()]


def shifts_of(trending: Trending | AdaptiveTrending) -> int | list[int] | None:
    """The rescales so far (`Trending.shift`): a number, a list for a ladder; None before any
    (records then leave it out)."""
    rungs = trending.rungs if isinstance(trending, AdaptiveTrending) else [trending]
    shifts = [rung.shift for rung in rungs]
    if not any(shifts):
        return None
    return shifts if isinstance(trending, AdaptiveTrending) else shifts[0]


def pop_values(columns: list[np.ndarray], items: list[int]) -> list[float] | list[str]:
    """The items' accumulators for their plain records: numbers, or for a ladder each item's
    rungs packed (`models.packing`, float64; earlier versions wrote lists of numbers)."""
    at = np.asarray(items, dtype=np.intp)
    values = np.zeros((len(at), len(columns)))
    for r, c in enumerate(columns):
        inside = at < len(c)
        values[inside, r] = c[at[inside]]
    if len(columns) == 1:
        return values[:, 0].tolist()
    return pack_rows(values, "<f8")


def popular(trending: Trending | AdaptiveTrending) -> np.ndarray:
    """Items with popularity in any count."""
    columns = pop_columns(trending)
    return np.flatnonzero(np.logical_or.reduce([c != 0 for c in columns]))


def load_popularity(
    trending: Trending | AdaptiveTrending, plain: Mapping[str, Any], idx: np.ndarray,
    entries: list[Mapping[str, Any]], index: Callable[[str], int],
) -> None:
    """Install saved accumulators. A record of the other kind (one count where a ladder is
    kept, or the reverse, or a ladder of another length, after the setting changed) loads as
    well as it can: a single count (a ladder's served rung) into every rung, a ladder's served
    rung into a single count; the choice then starts afresh."""
    pops = [unpack(e["pop"], "<f8").tolist() if isinstance(e["pop"], str) else e["pop"]
            for e in entries]
    t_ref, shift = plain["t_ref"], plain.get("sh", 0)
    saved = [e.get("sh", 0) for e in entries]  # the shift each item was written at
    n = len(trending.rungs) if isinstance(trending, AdaptiveTrending) else 1
    if isinstance(t_ref, list) and (isinstance(trending, Trending) or len(t_ref) != n):
        rung = plain["trend"]["chosen"]  # the ladder's served rung
        t_ref, pops = t_ref[rung], [p[rung] for p in pops]
        shift, saved = rung_shift(shift, rung), [rung_shift(s, rung) for s in saved]
        plain = {key: v for key, v in plain.items() if key != "trend"}
    if isinstance(trending, Trending):
        trending.load(t_ref, idx, np.array(pops, dtype=np.float64), shift, np.array(saved))
        return
    if not isinstance(t_ref, list):
        t_ref, pops = [t_ref] * n, [[p] * n for p in pops]
    values = np.array(pops, dtype=np.float64).reshape(len(idx), n)
    shifts = np.array([[rung_shift(s, r) for r in range(n)] for s in [shift, *saved]],
                      dtype=np.int64).reshape(len(idx) + 1, n)
    for r, rung in enumerate(trending.rungs):
        rung.load(t_ref[r], idx, values[:, r], int(shifts[0, r]), shifts[1:, r])
    if "trend" in plain:
        selector = dict(plain["trend"])
        selector["tops"] = [[index(x) for x in top] for top in selector["tops"]]
        trending.load_selector(selector)


def rung_shift(shift: int | list[int], r: int) -> int:
    """Rung `r`'s shift of a record's `sh` (one number: every rung's)."""
    return shift[r] if isinstance(shift, list) else shift
