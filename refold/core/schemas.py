"""The wire contract: interaction events, catalog items and recommendation lists (JSON, version 1).

Messages are JSON objects encoded and validated with msgspec. Each carries `"v": 1`; readers accept
fields they do not know (additive changes keep version 1) and reject a version they do not know.
JSON Schema files for other languages are generated from these classes (`refold schemas`).

>>> ev = decode_event(b'{"v":1,"event_id":"e1","user_id":"u1","item_id":"i9",'
...                   b'"event_type":"click","event_time":1700000000.5}')
>>> ev.user_id, ev.event_type, ev.value
('u1', 'click', None)
>>> decode_event(b'{"v":1,"event_id":"e1","user_id":"","item_id":"i9",'
...              b'"event_type":"click","event_time":1}')
Traceback (most recent call last):
...
refold.core.errors.SchemaError: user_id: Expected `str` of length >= 1
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from models.weights import EVENT_TYPES
from refold.core.errors import SchemaError

__all__ = ["EVENT_TYPES", "Cause", "Event", "EventType", "Item", "Recommendation",
           "RecommendedItem", "SchemaError", "decode_event", "decode_item",
           "decode_recommendation", "encode", "json_schemas", "validate_event"]

SCHEMA_VERSION = 1

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]  # the one list, in models.weights

Id = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=256, pattern=r"\S", description="non-blank id, <= 256 chars"
    ),
]
Seconds = Annotated[float, msgspec.Meta(ge=0, description="Unix time in seconds")]
Version = Annotated[int, msgspec.Meta(ge=1, le=1, description="schema version")]


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One user-item interaction. Keyed by `user_id` on the events topic."""

    v: Version = SCHEMA_VERSION
    event_id: Id
    """Unique id used for de-duplication (a UUID, or `<source>-<sequence>`)."""
    user_id: Id
    item_id: Id
    event_type: EventType
    event_time: Seconds
    session_id: str | None = None
    value: float | None = None
    """Explicit value, e.g. a 1-5 rating; required when event_type is `rating`."""
    weight: float | None = None
    """Overrides the configured weight of the event type."""
    context: dict[str, str | int | float | bool] | None = None


class Item(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A catalog entry. Keyed by `item_id` on the compacted items topic."""

    v: Version = SCHEMA_VERSION
    item_id: Id
    active: bool = True
    categories: list[str] = []
    created_at: Seconds | None = None
    attributes: dict[str, str | int | float | bool | None] | None = None


class RecommendedItem(msgspec.Struct, array_like=False):
    item_id: str
    score: float


class Cause(msgspec.Struct, kw_only=True):
    """The event that produced a recommendation list, and where it was read."""

    event_id: str
    event_time: float
    topic: str
    partition: int
    offset: int


class BasisItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One of the items a list was computed from: a recent positive interaction of the user."""

    item_id: str
    event_type: EventType | None = None
    """Known for the item of the event that caused the list."""


class Recommendation(msgspec.Struct, kw_only=True):
    """A user's latest top-K. Keyed by `user_id` on the compacted recommendations topic."""

    v: Version = SCHEMA_VERSION
    user_id: str
    items: list[RecommendedItem]
    model_version: int | None
    source: Literal["collaborative", "content", "popular"]
    generated_at: float
    cause: Cause | None = None
    basis: list[BasisItem] = []
    """The user's latest positive items, newest first (at most 5): what explanations name."""


class SimilarItems(msgspec.Struct, kw_only=True):
    """An item's nearest neighbours, best first, from the refit `model_version`. Keyed by
    `item_id` on the compacted similar-items topic; a null value: the item left the model."""

    v: Version = SCHEMA_VERSION
    item_id: Id
    items: list[RecommendedItem]
    model_version: int
    generated_at: Seconds


_MSG = re.compile(r"^(?P<reason>.*?)(?: - at `\$\.?(?P<field>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_encoder = msgspec.json.Encoder()
_decoders = {t: msgspec.json.Decoder(t) for t in (Event, Item, Recommendation, SimilarItems)}


def _schema_error(exc: msgspec.MsgspecError) -> SchemaError:
    text = str(exc)
    if m := _MISSING.match(text):
        return SchemaError(m["field"], "required field is missing")
    m = _MSG.match(text)
    assert m is not None
    field = (m["field"] or "").split(".")[0].split("[")[0]
    reason = m["reason"]
    if not field and not isinstance(exc, msgspec.ValidationError):
        reason = f"not valid JSON ({reason})"
    return SchemaError(field, reason)


def _decode(data: bytes, kind: type) -> msgspec.Struct:
    if data is None:
        raise SchemaError("", "empty message (no value)")
    try:
        return _decoders[kind].decode(data)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc) from None
    except msgspec.DecodeError as exc:
        raise _utf8_error(data) or _schema_error(exc) from None
    except UnicodeDecodeError as exc:  # msgspec before 0.19 let the codec's error through
        raise _utf8_error(data) or SchemaError("", f"not valid UTF-8 ({exc})") from None


def _utf8_error(data: bytes) -> SchemaError | None:
    """The error for bytes that are not UTF-8 (with the offending byte), None if they are."""
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return SchemaError("", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
    return None


def check_event(ev: Event) -> Event:
    """Rules a type cannot express: a rating needs a value. (JSON cannot carry NaN or infinity:
    the decoder refuses them, so decoded numbers are finite.)"""
    if ev.value is None and ev.event_type == "rating":
        raise SchemaError("value", "a rating event needs a value")
    return ev


def decode_event(data: bytes) -> Event:
    """Decode and validate one event; raises `SchemaError` naming the field and the reason."""
    return check_event(_decode(data, Event))  # type: ignore[arg-type]


def decode_item(data: bytes) -> Item:
    return _decode(data, Item)  # type: ignore[return-value]


def decode_recommendation(data: bytes) -> Recommendation:
    return _decode(data, Recommendation)  # type: ignore[return-value]


def decode_similar(data: bytes) -> SimilarItems:
    return _decode(data, SimilarItems)  # type: ignore[return-value]


def encode(msg: msgspec.Struct) -> bytes:
    """Encode any message of this module to compact JSON."""
    return _encoder.encode(msg)


def validate_event(ev: Event) -> Event:
    """Validate an `Event` built in Python (constructors do not check constraints)."""
    return decode_event(encode(ev))


def json_schemas() -> dict[str, dict]:
    """JSON Schema documents for the messages, by file name."""
    out = {}
    for name, kind in (("event", Event), ("item", Item), ("recommendation", Recommendation),
                       ("similar-items", SimilarItems)):
        schema = msgspec.json.schema(kind)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"refold {name} v{SCHEMA_VERSION}"
        out[f"{name}.v{SCHEMA_VERSION}.json"] = schema
    return out
