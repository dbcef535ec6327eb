"""What `refold serve` answers (HTTP), and the similar-items message it reads.

Answers are msgspec structs: the server encodes them as JSON and derives its OpenAPI description
from them. `SimilarItems` is the value of the compacted similar-items topic (key: the item id),
version 1 like every refold message; readers ignore fields they do not know.

>>> msg = decode_similar(b'{"v":1,"item_id":"50","items":[{"item_id":"181","score":1.4}],'
...                      b'"model_version":3,"generated_at":1.7e9}')
>>> msg.items[0].item_id, msg.model_version
('181', 3)
"""

from __future__ import annotations

from typing import Literal

import msgspec

from refold.core.schemas import Id, RecommendedItem, SchemaError, Seconds, Version

Source = Literal["collaborative", "content", "popular"]


class SimilarItems(msgspec.Struct, kw_only=True):
    """An item's nearest neighbours, best first, from the refit `model_version`."""

    v: Version = 1
    item_id: Id
    items: list[RecommendedItem]
    model_version: int
    generated_at: Seconds


_similar = msgspec.json.Decoder(SimilarItems)


def decode_similar(data: bytes) -> SimilarItems:
    """Decode and validate one similar-items message; raises `SchemaError`."""
    if data is None:
        raise SchemaError("", "empty message (no value)")
    try:
        return _similar.decode(data)
    except msgspec.ValidationError as exc:
        raise SchemaError("", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise SchemaError("", f"not valid JSON ({exc})") from None


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
