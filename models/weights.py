"""Implicit-feedback weight of each event type, and the list of event types.

A weight is what the fold-in multiplies by `alpha` to get implicit-ALS confidence: a positive
weight says "the user likes the item" (preference 1), a negative one "the user does not"
(preference 0, with confidence |alpha * weight|): implicit's convention for negative entries.

>>> w = EventWeights()
>>> w.weight("click"), w.weight("rating", 5), w.weight("rating", 2), w.weight("view", override=2.0)
(0.3, 1.0, -0.5, 2.0)
>>> EventWeights(ratings_as_positive=True).weight("rating", 2)
1.0
>>> w.weight("like")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
models.errors.ModelError: unknown event type 'like'; known: view, click, add_to_cart, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from models.errors import ModelError

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "bookmark", "rating", "dismiss")
BLOCKING_TYPES = frozenset({"dismiss"})
"""Event types after which the caller blocks the item for the user."""
_KNOWN = 1024
"""(type, value) pairs whose weights an `EventWeights` remembers."""


@dataclass(frozen=True)
class EventWeights:
    """Weight per event type; `rating` maps a 1..`rating_max` value around `rating_neutral`.

    A rating r weighs `(r - rating_neutral) / (rating_max - rating_neutral)`, clipped to [-1, 1]:
    5 stars is 1.0, 4 is 0.5, 3 is nothing, 1 is -1.0. With `ratings_as_positive` every rating
    weighs 1.0 whatever its value: the standard MovieLens protocol binarises ratings into "seen",
    and a binary weight keeps the fold-in's confidences equal to the refitter's training matrix.
    """

    view: float = 0.1
    click: float = 0.3
    add_to_cart: float = 0.6
    purchase: float = 1.0
    bookmark: float = 0.8
    dismiss: float = -1.0
    rating_neutral: float = 3.0
    rating_max: float = 5.0
    ratings_as_positive: bool = False

    def __post_init__(self) -> None:
        if self.rating_max <= self.rating_neutral:
            raise ModelError("rating_max must be greater than rating_neutral")
        object.__setattr__(self, "_known", {})

    def weight(
        self, event_type: str, value: float | None = None, override: float | None = None
    ) -> float:
        """The weight of one event; `override` (the event's own weight) wins over the type's.
        (Each event is weighed by the checks, the model and the monitor: the weights of the
        usual few (type, value) pairs are remembered.)"""
        if override is None:
            w = self._known.get((event_type, value))
            if w is not None:
                return w
        w = self._weigh(event_type, value, override)
        if override is None and len(self._known) < _KNOWN:
            self._known[(event_type, value)] = w
        return w

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> EventWeights:
        """Build from a config table, e.g. `{"view": 0.05, "ratings_as_positive": True}`."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ModelError(f"unknown event weight setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, raw in config.items():
            values[name] = bool(raw) if name == "ratings_as_positive" else float(raw)
        return cls(**values)

    def _weigh(self, event_type: str, value: float | None, override: float | None) -> float:
        if event_type not in EVENT_TYPES:
            raise ModelError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
        if override is not None:
            return float(override)
        if event_type != "rating":
            return float(getattr(self, event_type))
        if value is None:
            raise ModelError("a rating event needs a value")
        if self.ratings_as_positive:
            return 1.0
        w = (float(value) - self.rating_neutral) / (self.rating_max - self.rating_neutral)
        return min(1.0, max(-1.0, w))

    @staticmethod
    def blocks(event_type: str) -> bool:
        """Whether this event type blocks the item for the user (a dismiss)."""
        return event_type in BLOCKING_TYPES
