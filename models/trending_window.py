"""The adaptive trending's tally between refreshes (`models.adaptive_trending`): how often each
rung's published top-K held the item of an event, of every event and of newcomers' events, and
which rungs' tops hold an item (a bit mask per item).

>>> w = Window.empty(2)
>>> w.score(held_masks([frozenset({7}), frozenset({7, 8})])[7], newcomer=True)
>>> w.held, w.newcomer_held, w.events, w.newcomers
([1, 1], [1, 1], 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(slots=True)
class Window:
    """Hits since the last refresh: per rung, of every event and of newcomers' events. Whole
    numbers, so the order they were counted in (one by one, or batched) does not matter; at
    the refresh they are added to the faded totals (`faded`)."""

    held: list[int]
    newcomer_held: list[int]
    events: int = 0
    newcomers: int = 0

    @classmethod
    def empty(cls, rungs: int) -> Window:
        return cls([0] * rungs, [0] * rungs)

    def copy(self) -> Window:
        return Window(list(self.held), list(self.newcomer_held), self.events, self.newcomers)

    def score(self, mask: int, newcomer: bool) -> None:
        """One event whose item the rungs of bit `mask` held."""
        self.events += 1
        self.newcomers += newcomer
        r = 0
        while mask:
            if mask & 1:
                self.held[r] += 1
                if newcomer:
                    self.newcomer_held[r] += 1
            mask >>= 1
            r += 1

    def score_many(self, masks: Sequence[int], newcomers: Sequence[bool]) -> int:
        """`score` of each event; returns how many were newcomers'."""
        bits = (np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(len(self.held))) & 1
        new = np.asarray(newcomers, dtype=bool)
        self.held = [a + int(b) for a, b in zip(self.held, bits.sum(0).tolist(), strict=True)]
        self.newcomer_held = [a + int(b) for a, b in
                              zip(self.newcomer_held, bits[new].sum(0).tolist(), strict=True)]
        self.events += len(new)
        n = int(new.sum())
        self.newcomers += n
        return n

    def faded(self, base: np.ndarray, fade: float, newcomers: bool = False) -> np.ndarray:
        """`base` (the totals at the last refresh) faded by this window's events (newcomers'
        events: `newcomers`), plus its hits."""
        n, held = (self.newcomers, self.newcomer_held) if newcomers else (self.events, self.held)
        return base * fade**n + np.asarray(held, dtype=np.float64)

    def to_plain(self) -> list[Any]:
        """The window as plain data: copies, so a window that goes on counting does not change
        what was taken (`from_plain` reads it back).

        >>> w = Window.empty(2)
        >>> plain = w.to_plain()
        >>> w.score(0b01, newcomer=False)
        >>> plain[0], Window.from_plain(w.to_plain()).held
        ([0, 0], [1, 0])
        """
        return [list(self.held), list(self.newcomer_held), self.events, self.newcomers]

    @classmethod
    def from_plain(cls, plain: Sequence[Any]) -> Window:
        held, newcomer_held, events, newcomers = plain
        return cls([int(x) for x in held], [int(x) for x in newcomer_held], int(events),
                   int(newcomers))


def held_masks(tops: Sequence[frozenset[int]]) -> dict[int, int]:
    """Item -> bit mask of the tops holding it (bit r: `tops[r]`)."""
    out: dict[int, int] = {}
    for r, top in enumerate(tops):
        for i in top:
            out[i] = out.get(i, 0) | (1 << r)
    return out
