"""A user's feedback state: what they were shown and what they did with it.

`UserFeedback` gathers the three per-user parts of closing the loop, kept with the user's history
(`models.history.UserHistory.feedback`, so it is saved, restored and undone with it):

- `exposure` (`models.exposure.Exposure`): unanswered impressions per item, for demotion;
- `attribution` (`models.attribution.Attribution`): the slots shown within the attribution
  window, to credit clicks, carts and purchases to the list, position and policy that showed
  the item;
- `conversion` (`models.attribution.FirstConversion`): the first event time of a user refold saw
  arrive, and whether they bought since (time to first conversion).

It also counts the impressions of the user's current list, so that when a new list replaces
it, how often the old one was shown is known (a list nobody saw, against one that was ignored).

`shown` takes one impression, `acted` one event, `published` one new list, in stream order.

>>> f = UserFeedback.new(FeedbackConfig(), new_user=True)
>>> _ = f.acted(3, "i3", "view", 100.0)            # the user's first event
>>> f.shown([(7, Slot("i7", 1, 110.0, "r1", "collaborative", False))])
>>> hit, ttfc = f.acted(7, "i7", "purchase", 130.0)
>>> (hit.rec_id, hit.position), ttfc
(('r1', 1), 30.0)
>>> f.exposure.counts(np.array([7])).tolist()    # answered: no longer counts
[0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.attribution import Attributed, Attribution, FirstConversion, Slot
from models.exposure import Exposure

__all__ = ["FeedbackConfig", "Slot", "UserFeedback"]


@dataclass(frozen=True)
class FeedbackConfig:
    """Bounds and the attribution window."""

    window: float = 3600.0
    max_slots: int = 50
    max_items: int = 100


class UserFeedback:
    """Exposure, attribution and first conversion of one user."""

    __slots__ = ("attribution", "conversion", "exposure", "list_id", "list_impressions",
                 "list_items")

    def __init__(self, exposure: Exposure, attribution: Attribution,
                 conversion: FirstConversion, list_id: str | None = None,
                 list_impressions: int = 0, list_items: tuple[str, ...] = ()) -> None:
        self.exposure = exposure
        self.attribution = attribution
        self.conversion = conversion
        self.list_id = list_id
        """The user's current list (the last published)."""
        self.list_impressions = list_impressions
        self.list_items = list_items
        """The item ids of the current list: a list holding an item the catalog deactivates is
        published again (`consumers.republish`)."""

    @classmethod
    def new(cls, config: FeedbackConfig, new_user: bool) -> UserFeedback:
        """Fresh state. `new_user`: refold is seeing the user arrive, and times their first
        conversion from their first event; a user it knew before is not timed."""
        conversion = FirstConversion(None, converted=not new_user)
        return cls(Exposure(config.max_items), Attribution(config.window, config.max_slots),
                   conversion)

    def shown(self, slots: Iterable[tuple[int, Slot]]) -> None:
        """One impression: (item index, slot) per shown item."""
        slots = list(slots)
        self.exposure.shown(i for i, _ in slots)
        self.attribution.shown(s for _, s in slots)
        if slots and slots[0][1].rec_id == self.list_id:
            self.list_impressions += 1

    def published(self, rec_id: str, items: Sequence[str] = ()) -> int | None:
        """A new list (of `items`) replaces the current one: how often the replaced one was
        shown (None: there was none, or it is the same list again)."""
        self.list_items = tuple(items)
        if rec_id == self.list_id:
            return None
        before = None if self.list_id is None else self.list_impressions
        self.list_id, self.list_impressions = rec_id, 0
        return before

    def acted(self, item: int, item_id: str, event_type: str, t: float,
              rec_id: str | None = None) -> tuple[Attributed | None, float | None]:
        """One event of the user: the slot it answers (if any), and the time to first
        conversion if it is the first purchase of a user refold saw arrive."""
        self.exposure.interacted(item)
        return (self.attribution.outcome(item_id, event_type, t, rec_id),
                self.conversion.on_event(event_type, t))

    def to_state(self, ids: Sequence[str]) -> dict[str, Any]:
        """Plain data with item ids, and the bounds it was made with (as histories keep
        theirs)."""
        a = self.attribution
        return {"window": a.window, "max_slots": a.max_slots,
                "max_items": self.exposure.max_items,
                "exposure": self.exposure.to_state(ids), "slots": a.to_state(),
                "conversion": self.conversion.to_state(),
                "list": [self.list_id, self.list_impressions],
                "list_items": list(self.list_items)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], index: Callable[[str], int]) -> UserFeedback:
        """The inverse of `to_state`; `index(item_id)` gives (or makes) an item's index."""
        list_id, list_impressions = state["list"]
        return cls(Exposure.from_state(state["exposure"], index, state["max_items"]),
                   Attribution.from_state(state["slots"], state["window"], state["max_slots"]),
                   FirstConversion.from_state(state["conversion"]), list_id, list_impressions,
                   tuple(state.get("list_items", ())))

    def counts(self, items: np.ndarray) -> np.ndarray:
        """Unanswered impressions of `items` (indices)."""
        return self.exposure.counts(items)
