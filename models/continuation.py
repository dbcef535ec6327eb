"""Continuation: what a user bookmarked or put in the cart and has not bought comes back.

`Continuation` keeps, per user, the items of their `bookmark` and `add_to_cart` events, newest
first (at most `max_items`); a `purchase`, a `rating` (the item was consumed) or a `dismiss` of
the item closes it. `reserve` puts the newest open items of the last `window_seconds` into
`slots` reserved positions of the user's list, starting at `position`, and marks them: an item
already in the list moves there rather than appearing twice; the list keeps its length.

>>> c = Continuation()
>>> c.observe(7, "add_to_cart", t=100.0)
>>> c.observe(8, "bookmark", t=200.0)
>>> c.observe(7, "purchase", t=300.0)
>>> c.pending(now=400.0, window_seconds=3600.0)
[8]
>>> reserve([1, 2, 8, 3], [0.9, 0.8, 0.7, 0.6], [8], k=4, slots=1, position=0)
([8, 1, 2, 3], [0.7, 0.9, 0.8, 0.6], ['continue', None, None, None])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from models.errors import ModelError

OPENING = frozenset({"bookmark", "add_to_cart"})
CLOSING = frozenset({"purchase", "rating", "dismiss"})
MARK = "continue"


class Continuation:
    """Open bookmarks and carts of one user: item -> time of its latest opening event."""

    __slots__ = ("_open", "max_items")

    def __init__(self, max_items: int = 20) -> None:
        if max_items < 1:
            raise ModelError("max_items must be at least 1")
        self.max_items = max_items
        self._open: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._open)

    def observe(self, item: int, event_type: str, t: float) -> None:
        """Open the item on a bookmark or cart, close it on a purchase, rating or dismiss."""
        if event_type in OPENING:
            self._open.pop(item, None)
            self._open[item] = t
            if len(self._open) > self.max_items:
                del self._open[next(iter(self._open))]
        elif event_type in CLOSING:
            self._open.pop(item, None)

    def pending(self, now: float, window_seconds: float) -> list[int]:
        """Open items opened within `window_seconds` before `now`, newest first."""
        return [i for i, t in reversed(self._open.items()) if now - t <= window_seconds]

    def to_state(self, item_ids: Sequence[str] | None = None) -> list[list[Any]]:
        """[[item id (`item_ids[i]`, or the index), time], ...] oldest first (JSON friendly)."""
        return [[i if item_ids is None else item_ids[i], t] for i, t in self._open.items()]

    @classmethod
    def from_state(cls, state: Sequence[Sequence[Any]],
                   index: Callable[[str], int] | None = None,
                   max_items: int = 20) -> Continuation:
        """Rebuild from `to_state` (`index` maps saved ids back to indices)."""
        c = cls(max_items)
        for item, t in state[-max_items:]:
            c._open[int(item) if index is None else index(item)] = float(t)
        return c


def reserve(
    items: Sequence[int], scores: Sequence[float], pending: Sequence[int], k: int,
    slots: int = 1, position: int = 0, allowed: Mapping[int, bool] | Callable[[int], bool]
    | None = None,
) -> tuple[list[int], list[float], list[str | None]]:
    """The list with up to `slots` of the `pending` items (newest first, only those `allowed`)
    at `position` onwards, marked `"continue"`; at most `k` items. A reserved item takes its
    own score if it was listed, else the score of the item listed after the reserved slots."""
    ok = allowed if callable(allowed) or allowed is None else allowed.__getitem__
    chosen = [i for i in pending if ok is None or ok(i)][:slots]
    if not chosen:
        return list(items)[:k], list(scores)[:k], [None] * min(len(items), k)
    own = dict(zip(items, scores, strict=True))
    rest = [(i, s) for i, s in zip(items, scores, strict=True) if i not in chosen]
    at = min(position, len(rest), max(k - len(chosen), 0))  # the reserved slots stay in
    after = rest[min(at, len(rest) - 1)][1] if rest else 0.0
    fill = [own.get(i, after) for i in chosen]
    out = rest[:at] + list(zip(chosen, fill, strict=True)) + rest[at:]
    marks = [None] * at + [MARK] * len(chosen) + [None] * (len(rest) - at)
    out, marks = out[:k], marks[:k]
    return [i for i, _ in out], [s for _, s in out], marks
