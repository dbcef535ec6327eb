"""A shop's own event records mapped to refold `Event`s: field names, type names, timestamps.

The bridge (`refold bridge`), `refold produce replay --dataset csv` and `refold evaluate` on a CSV
file read foreign records through one `EventMapping`:

- `fields`: refold field -> source field (`user_id=uid`; a dotted source path reads nested
  objects, `user_id=user.id`; `context.<key>=<source>` fills the event's context);
- `types`: source type name -> refold event type (`pv=view`); a source name that is already a
  refold type passes unchanged; names listed in `skip_types` are dropped on purpose (counted,
  not dead-lettered); any other name is an error;
- `time_unit`: how the source writes `event_time`: `s`, `ms`, `us`, `iso` (ISO 8601, naive
  times are UTC) or `auto` (numbers by magnitude, strings as ISO 8601 or numbers);
- `default_type`: the type of records without a type field (a purchase log, say).

Without an `event_time` mapping, the caller's `fallback_time` (the Kafka record's timestamp) is
used; without an `event_id`, the caller's `fallback_id` (e.g. `topic-partition-offset`, so a record
read twice maps to the same event and the worker applies it once).

>>> m = EventMapping.from_specs(["user_id=uid", "item_id=sku", "event_type=action",
...                              "event_time=ts"], types=["pv=view"], time_unit="ms")
>>> ev = m.map_record({"uid": 42, "sku": "A-1", "action": "pv", "ts": 1732356000250},
...                   fallback_id="clicks-0-17")
>>> ev.user_id, ev.item_id, ev.event_type, ev.event_time, ev.event_id
('42', 'A-1', 'view', 1732356000.25, 'clicks-0-17')
>>> m.map_record({"uid": 42, "sku": "A-1", "action": "hover", "ts": 1}, fallback_id="x")
Traceback (most recent call last):
...
refold.core.mapping.MappingError: event_type: 'hover' is neither mapped (pv) nor a refold type
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from refold.core.errors import CoreError
from refold.core.schemas import EVENT_TYPES, Event, SchemaError, validate_event

TIME_UNITS = ("s", "ms", "us", "iso", "auto")
TARGETS = ("event_id", "user_id", "item_id", "event_type", "event_time", "session_id", "value",
           "weight")
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


class MappingError(SchemaError):
    """A record cannot become an event; `error_class` is a short, bounded category (a
    dead-letter reason and a metric label)."""

    def __init__(self, field: str, reason: str, error_class: str = "mapping") -> None:
        super().__init__(field, reason)
        self.error_class = error_class


class Skipped(CoreError):
    """A record of a type the mapping drops on purpose (`skip_types`)."""


def parse_pairs(specs: Iterable[str], what: str) -> dict[str, str]:
    """`["a=b", ...]` -> `{"a": "b"}`; a spec without `=` or with an empty side is an error.

    >>> parse_pairs(["user_id=uid", " item_id = sku "], "field")
    {'user_id': 'uid', 'item_id': 'sku'}
    """
    out: dict[str, str] = {}
    for spec in specs:
        left, sep, right = spec.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise ValueError(f"{what} mapping {spec!r}: expected NAME=NAME")
        out[left.strip()] = right.strip()
    return out


def parse_time(raw: Any, unit: str) -> float:
    """Unix seconds from a number or string in `unit` (`TIME_UNITS`).

    >>> parse_time(1732356000250, "ms"), parse_time("2024-11-23T10:00:00Z", "iso")
    (1732356000.25, 1732356000.0)
    >>> parse_time(1732356000250000, "auto"), parse_time("1732356000", "auto")
    (1732356000.25, 1732356000.0)
    """
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"not a time: {raw!r}")
    if unit == "auto":
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                return _iso(raw)
        unit = "us" if abs(raw) >= 1e14 else "ms" if abs(raw) >= 1e11 else "s"
    if unit == "iso":
        if not isinstance(raw, str):
            raise ValueError(f"expected an ISO 8601 string, got {raw!r}")
        return _iso(raw)
    try:
        seconds = float(raw) * _SCALE[unit]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a number: {raw!r}") from exc
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite time: {raw!r}")
    return seconds


def _iso(text: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _get(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted `path` (`user.id`), or None when any step is missing."""
    if path in record:
        return record[path]
    value: Any = record
    for step in path.split("."):
        if not isinstance(value, Mapping) or step not in value:
            return None
        value = value[step]
    return value


@dataclass(frozen=True)
class EventMapping:
    """How one source's records become events (see the module docstring)."""

    fields: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    time_unit: str = "auto"
    skip_types: frozenset[str] = frozenset()
    default_type: str | None = None

    def __post_init__(self) -> None:
        unknown = [t for t in self.fields if t not in TARGETS and not t.startswith("context.")]
        if unknown:
            raise ValueError(f"field mapping: unknown event field(s) {', '.join(unknown)}; "
                             f"one of {', '.join(TARGETS)} or context.<key>")
        bad = {s: t for s, t in self.types.items() if t not in EVENT_TYPES}
        if bad:
            raise ValueError(f"type mapping: {', '.join(f'{s}={t}' for s, t in bad.items())}: "
                             f"a refold type is one of {', '.join(EVENT_TYPES)}")
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"time unit {self.time_unit!r}: one of {', '.join(TIME_UNITS)}")
        if self.default_type is not None and self.default_type not in EVENT_TYPES:
            raise ValueError(f"default type {self.default_type!r}: one of "
                             f"{', '.join(EVENT_TYPES)}")

    @classmethod
    def from_specs(cls, fields: Iterable[str] = (), types: Iterable[str] = (),
                   time_unit: str = "auto", skip_types: Iterable[str] = (),
                   default_type: str | None = None) -> EventMapping:
        """From `NAME=NAME` strings, as flags and TOML lists give them."""
        return cls(parse_pairs(fields, "field"), parse_pairs(types, "type"), time_unit,
                   frozenset(skip_types), default_type)

    def source(self, target: str) -> str:
        """The source field read for a refold field (itself when not mapped)."""
        return self.fields.get(target, target)

    def event_type(self, raw: Any) -> str:
        """The refold type of a source type name; `Skipped` for a dropped one."""
        if raw is None:
            if self.default_type is None:
                raise MappingError("event_type", f"missing (source field "
                                   f"{self.source('event_type')!r})", "missing_field")
            return self.default_type
        name = str(raw)
        if name in self.skip_types:
            raise Skipped(name)
        if name in self.types:
            return self.types[name]
        if name in EVENT_TYPES:
            return name
        mapped = ", ".join(self.types) or "no mapping"
        raise MappingError("event_type", f"{name!r} is neither mapped ({mapped}) nor a refold "
                           "type", "unknown_type")

    def map_record(self, record: Mapping[str, Any], *, fallback_id: str,
                   fallback_time: float | None = None) -> Event:
        """The validated event of one record, or `MappingError` naming the field and why."""
        if not isinstance(record, Mapping):
            raise MappingError("", f"expected a JSON object, got {type(record).__name__}",
                               "not_object")
        values = {t: _get(record, self.source(t)) for t in TARGETS}
        for target in ("user_id", "item_id"):
            if values[target] is None or isinstance(values[target], Mapping | list):
                raise MappingError(target, f"missing or not a scalar (source field "
                                   f"{self.source(target)!r})", "missing_field")
        ev_time = self._time(values["event_time"], fallback_time)
        context = {k.removeprefix("context."): _get(record, src)
                   for k, src in self.fields.items() if k.startswith("context.")}
        event = Event(
            event_id=str(values["event_id"]) if values["event_id"] is not None else fallback_id,
            user_id=str(values["user_id"]), item_id=str(values["item_id"]),
            event_type=self.event_type(values["event_type"]),  # type: ignore[arg-type]
            event_time=ev_time,
            session_id=None if values["session_id"] is None else str(values["session_id"]),
            value=_number(values["value"], "value"), weight=_number(values["weight"], "weight"),
            context={k: v for k, v in context.items() if v is not None} or None)
        try:
            return validate_event(event)
        except SchemaError as exc:
            raise MappingError(exc.field, exc.reason, "schema") from exc

    def _time(self, raw: Any, fallback: float | None) -> float:
        if raw is None:
            if "event_time" in self.fields or fallback is None:
                raise MappingError("event_time", f"missing (source field "
                                   f"{self.source('event_time')!r})", "missing_field")
            return fallback
        try:
            return parse_time(raw, self.time_unit)
        except ValueError as exc:
            raise MappingError("event_time", f"{exc} (unit {self.time_unit})", "bad_time") from exc


def _number(raw: Any, name: str) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise MappingError(name, f"not a number: {raw!r}", "schema") from exc
    return value
