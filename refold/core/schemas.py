"""The wire contract: events, catalog items, user profiles, recommendation lists and impressions
(JSON, version 1).

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

__all__ = ["EVENT_TYPES", "Cause", "Event", "EventType", "Impression", "Item", "PolicyInfo",
           "Recommendation", "RecommendedItem", "SchemaError", "ShownItem", "User",
           "decode_event", "decode_impression", "decode_item", "decode_recommendation",
           "decode_user", "encode", "impression_of", "json_schemas", "validate_event",
           "validate_impression"]

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


Text = Annotated[str, msgspec.Meta(max_length=100_000, description="free text, <= 100,000 chars")]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=256, description="a tag, <= 256 chars")]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=1000)]


class Item(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A catalog entry. Keyed by `item_id` on the compacted items topic."""

    v: Version = SCHEMA_VERSION
    item_id: Id
    active: bool = True
    categories: list[str] = []
    created_at: Seconds | None = None
    attributes: dict[str, str | int | float | bool | None] | None = None
    text: Text | None = None
    """Title, description...: its TF-IDF vector is compared with users' (content similarity)."""
    tags: Tags = []
    """Tags or skills the item has or asks for, compared with users' (Jaccard)."""


class User(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A user's declared profile. Keyed by `user_id` on the compacted users topic (partitioned
    like the events, so a profile is on the same partition number as its user's events)."""

    v: Version = SCHEMA_VERSION
    user_id: Id
    interests: Text | None = None
    """What the user says they like or do, as text (compared with items' text)."""
    skills: Tags = []
    """Declared interests or skills as tags (compared with items' tags and categories)."""
    signup_at: Seconds | None = None
    """When the account was created: the mixer weighs signals by the account's age."""
    attributes: dict[str, str | int | float | bool | None] | None = None
    """Textual attributes become tags (`key=value`), like items'."""


Scalar = str | int | float | bool
Source = Literal["collaborative", "content", "popular"]
Position = Annotated[int, msgspec.Meta(ge=1, description="1-based slot of the list")]
Propensity = Annotated[float, msgspec.Meta(
    gt=0, le=1, description="probability that the policy put this item at this position")]


# gc=False (also on Cause and BasisItem): scalar fields only, so never part of a reference cycle;
# untracked by the collector an object is 16 bytes smaller, which a reader holding millions of
# lists (RecommendationsView) feels. The wire format is unchanged.
class RecommendedItem(msgspec.Struct, omit_defaults=True, gc=False):
    item_id: str
    score: float
    position: int | None = None
    """1-based slot in the list (lists published before exploration was logged: absent)."""
    propensity: float | None = None
    """P(the policy put this item at this position | the candidate scores)."""
    rank: int | None = None
    """The item's rank among the candidates the policy drew from (0 = best)."""
    explored: bool | None = None
    """Placed above its rank by exploration."""
    reason: Literal["continue"] | None = None
    """Why the item holds a reserved slot: `continue` = bookmarked or carted, not bought."""


class PolicyInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The exploration policy that drew a list, and its parameters."""

    name: Literal["none", "epsilon", "plackett_luce"]
    epsilon: float | None = None
    temperature: float | None = None
    candidates: int | None = None
    """How many ranked candidates the policy drew from (M)."""


class Cause(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """What produced a recommendation list, and where it was read: the user's event, or (with
    `reason` "item_inactive") the catalog message that deactivated an item of the user's last
    list (`event_id` is then that item's id, `event_time` the message's timestamp)."""

    event_id: str
    event_time: float
    topic: str
    partition: int
    offset: int
    reason: Literal["event", "item_inactive"] = "event"


class BasisItem(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
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
    source: Source
    generated_at: float
    cause: Cause | None = None
    basis: list[BasisItem] = []
    """The user's latest positive items, newest first (at most 5): what explanations name."""
    rec_id: str | None = None
    """The list's id: the same user, causing event and model version give the same id."""
    policy: PolicyInfo | None = None
    candidate_scores: list[float] | None = None
    """The scores of the candidates the policy drew from, best first (absent for `none`: the
    items' own scores): what off-policy evaluation re-applies other policies to."""
    candidates: list[str] | None = None
    """The ids of those candidates, in the same order: what off-policy evaluation re-ranks
    with another model (absent for `none`: the items)."""


class ShownItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One item a service showed, at its 1-based position on the page."""

    item_id: Id
    position: Position
    propensity: Propensity | None = None
    """Copied from the list when the item is shown at the position the list gave it."""
    rank: Annotated[int, msgspec.Meta(ge=0)] | None = None
    explored: bool | None = None


class Impression(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a service showed a user, from which list. Keyed by `user_id` on the impressions
    topic. `EventProducer.impression(rec, shown=...)` fills in the list's fields."""

    v: Version = SCHEMA_VERSION
    impression_id: Id
    """Unique id used for de-duplication."""
    rec_id: Id
    user_id: Id
    shown_at: Seconds
    items: Annotated[list[ShownItem], msgspec.Meta(min_length=1, max_length=1000)]
    source: Source | None = None
    model_version: int | None = None
    policy: PolicyInfo | None = None
    list_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """How many items the list had (the policy's K)."""
    candidate_scores: list[float] | None = None
    candidates: list[str] | None = None
    """The ids of the candidates, in the order of `candidate_scores`."""
    context: dict[str, Scalar] | None = None


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
_decoders = {t: msgspec.json.Decoder(t)
             for t in (Event, Item, User, Recommendation, SimilarItems, Impression)}


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
    except RecursionError:  # thousands of levels deep, in a field the type skips
        raise SchemaError("", "JSON nested too deeply (beyond the decoder's recursion "
                          "limit)") from None


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


def decode_user(data: bytes) -> User:
    return _decode(data, User)  # type: ignore[return-value]


def decode_recommendation(data: bytes) -> Recommendation:
    return _decode(data, Recommendation)  # type: ignore[return-value]


def check_impression(imp: Impression) -> Impression:
    """Rules a type cannot express: each position and each item at most once."""
    positions = [it.position for it in imp.items]
    if len(set(positions)) != len(positions):
        raise SchemaError("items", "a position is shown twice")
    if len({it.item_id for it in imp.items}) != len(imp.items):
        raise SchemaError("items", "an item is shown twice")
    return imp


def decode_impression(data: bytes) -> Impression:
    """Decode and validate one impression; raises `SchemaError` naming the field and why."""
    return check_impression(_decode(data, Impression))  # type: ignore[arg-type]


def validate_impression(imp: Impression) -> Impression:
    return decode_impression(encode(imp))


def impression_of(
    rec: Recommendation, shown: int | list[str], shown_at: float, impression_id: str,
    context: dict[str, Scalar] | None = None,
) -> Impression:
    """The impression of showing `rec`: its first `shown` items, or the item ids `shown` in the
    order of the page's slots. An item keeps the list's propensity only where it is shown at the
    position the list gave it (elsewhere the propensity does not describe the page, and is left
    out); items the list did not contain are shown without list fields."""
    if rec.rec_id is None:
        raise SchemaError("rec_id", "the list has no rec_id (published before lists were "
                                    "logged): there is nothing to report an impression of")
    ids = [it.item_id for it in rec.items[:shown]] if isinstance(shown, int) else list(shown)
    listed = {it.item_id: it for it in rec.items}
    items = []
    for pos, item_id in enumerate(ids, 1):
        it = listed.get(item_id)
        if it is None:
            items.append(ShownItem(item_id=item_id, position=pos))
            continue
        same = it.position == pos
        items.append(ShownItem(item_id=item_id, position=pos,
                               propensity=it.propensity if same else None,
                               rank=it.rank, explored=it.explored))
    scores, candidates = rec.candidate_scores, rec.candidates
    if scores is None and rec.policy is not None and rec.policy.name == "none":
        scores = [it.score for it in rec.items]  # "none" draws the top K: they are the context
        candidates = [it.item_id for it in rec.items]
    return validate_impression(Impression(
        impression_id=impression_id, rec_id=rec.rec_id, user_id=rec.user_id, shown_at=shown_at,
        items=items, source=rec.source, model_version=rec.model_version, policy=rec.policy,
        list_size=len(rec.items) or None, candidate_scores=scores, candidates=candidates,
        context=context))


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
    for name, kind in (("event", Event), ("item", Item), ("user", User),
                       ("recommendation", Recommendation),
                       ("similar-items", SimilarItems), ("impression", Impression)):
        schema = msgspec.json.schema(kind)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"refold {name} v{SCHEMA_VERSION}"
        out[f"{name}.v{SCHEMA_VERSION}.json"] = schema
    return out
