"""Attribution: which shown slot a user's click, cart or purchase answers, and when users convert.

`Attribution` keeps one user's recently shown slots (item, position, list id, list source,
explored or not, when shown). An outcome event on an item is attributed to the most recent slot
that showed the item at most `window` seconds before the event (last touch), or, when the event
names a `rec_id` in its context, to that list's slot of the item whatever the time. Each
(slot, outcome kind) counts once: a second click on the same shown slot is not a second success,
so click-through rates stay rates.

`FirstConversion` holds a user's first event time and says, at their first purchase, how long
it took (time to first conversion).

Memory per user is bounded: at most `max_slots` slots, the oldest forgotten first, and slots
older than the window are dropped as new ones arrive.

>>> a = Attribution(window=600.0, max_slots=50)
>>> a.shown([Slot("i1", 1, 100.0, "r1", "collaborative", False),
...          Slot("i2", 2, 100.0, "r1", "collaborative", True)])
>>> hit = a.outcome("i2", "click", 130.0)
>>> hit.rec_id, hit.position, hit.explored, hit.first
('r1', 2, True, True)
>>> a.outcome("i2", "click", 140.0).first            # the same slot clicked again
False
>>> a.outcome("i2", "purchase", 900.0) is None       # outside the window
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.errors import ModelError

OUTCOMES = ("click", "add_to_cart", "purchase")
"""Event types that are outcomes of an impression."""


@dataclass(slots=True)
class Slot:
    """One item shown at one position of one list."""

    item_id: str
    position: int
    shown_at: float
    rec_id: str
    source: str
    explored: bool
    answered: set[str] = field(default_factory=set)
    """Outcome kinds already attributed to this slot."""


@dataclass(frozen=True, slots=True)
class Attributed:
    """An outcome matched to the slot it answers; `first`: the slot's first of this kind."""

    rec_id: str
    position: int
    source: str
    explored: bool
    event_type: str
    shown_at: float
    first: bool


class Attribution:
    """One user's shown slots within the attribution window."""

    __slots__ = ("_slots", "max_slots", "window")

    def __init__(self, window: float = 3600.0, max_slots: int = 100) -> None:
        if not window > 0 or max_slots < 1:
            raise ModelError("attribution needs window > 0 and max_slots >= 1")
        self.window = window
        self.max_slots = max_slots
        self._slots: deque[Slot] = deque(maxlen=max_slots)

    def shown(self, slots: Iterable[Slot]) -> None:
        """An impression's slots (appended in order; expired ones go)."""
        for s in slots:
            self._slots.append(s)
        if self._slots:
            newest = self._slots[-1].shown_at
            while self._slots[0].shown_at < newest - self.window:
                self._slots.popleft()

    def outcome(self, item_id: str, event_type: str, t: float,
                rec_id: str | None = None) -> Attributed | None:
        """The slot an outcome event answers, or None (not an outcome, or not shown)."""
        if event_type not in OUTCOMES:
            return None
        for s in reversed(self._slots):
            if s.item_id == item_id and self._answers(s, t, rec_id):
                first = event_type not in s.answered
                s.answered.add(event_type)
                return Attributed(s.rec_id, s.position, s.source, s.explored, event_type,
                                  s.shown_at, first)
        return None

    def _answers(self, s: Slot, t: float, rec_id: str | None) -> bool:
        """An event naming its list answers that list's slot; otherwise the last slot shown
        within the window before it."""
        if rec_id is not None:
            return s.rec_id == rec_id
        return s.shown_at <= t <= s.shown_at + self.window

    def __len__(self) -> int:
        return len(self._slots)

    def to_state(self) -> list[list[Any]]:
        """Plain data, oldest first, for a changelog."""
        return [[s.item_id, s.position, s.shown_at, s.rec_id, s.source, s.explored,
                 sorted(s.answered)] for s in self._slots]

    @classmethod
    def from_state(cls, state: Iterable[list[Any]], window: float = 3600.0,
                   max_slots: int = 100) -> Attribution:
        a = cls(window, max_slots)
        for item, pos, at, rec, source, explored, answered in state:
            a._slots.append(Slot(item, int(pos), float(at), rec, source, bool(explored),
                                 set(answered)))
        return a


class FirstConversion:
    """A user's first event time and whether they have bought; `on_event` returns the time to
    first conversion at their first purchase (None otherwise).

    >>> c = FirstConversion()
    >>> c.on_event("view", 10.0), c.on_event("purchase", 70.0), c.on_event("purchase", 90.0)
    (None, 60.0, None)
    """

    __slots__ = ("converted", "first_event")

    def __init__(self, first_event: float | None = None, converted: bool = False) -> None:
        self.first_event = first_event
        self.converted = converted

    def on_event(self, event_type: str, t: float) -> float | None:
        if self.first_event is None:
            self.first_event = t
        if event_type != "purchase" or self.converted:
            return None
        self.converted = True
        return max(0.0, t - self.first_event)

    def to_state(self) -> list[Any]:
        return [self.first_event, self.converted]

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | list[Any]) -> FirstConversion:
        first, converted = state
        return cls(None if first is None else float(first), bool(converted))
