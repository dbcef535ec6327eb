"""What `refold serve` answers over HTTP.

Answers are msgspec structs: the server encodes them as JSON and derives its OpenAPI description
from them.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Source = Literal["collaborative", "content", "popular"]


class Reason(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why an item is in a list: `similar` to an item the user acted on (`item_id`), `popular`
    (in `category`, when one applies), or `profile` (the user's vector as a whole)."""

    kind: Literal["similar", "popular", "profile"]
    text: str
    item_id: str | None = None
    category: str | None = None


class ServedItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    item_id: str
    score: float
    source: Source
    """What ranked this item: the user's list (its source), or `popular` for items filled in."""
    reason: Reason | None = None
    """Only with `explain=true`."""


class UserRecommendations(msgspec.Struct, kw_only=True):
    """A user's list as served: the latest published list, filtered at read time, filled with
    popular items when filters left fewer than `k`; `source: popular` for a user without one."""

    user_id: str
    source: Source
    model_version: int | None
    generated_at: float | None
    """When the worker published the list (Unix seconds); None for a trending answer."""
    items: list[ServedItem]


class Neighbour(msgspec.Struct):
    item_id: str
    score: float


class SimilarAnswer(msgspec.Struct, kw_only=True):
    item_id: str
    model_version: int | None
    items: list[Neighbour]


class PopularAnswer(msgspec.Struct, kw_only=True):
    category: str | None
    items: list[Neighbour]


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An error answer: HTTP status and what was wrong."""

    status_code: int
    detail: str
    extra: dict[str, object] | None = None
