"""Dead letters: an event the worker cannot use goes to the dead-letter topic, bytes untouched.

`check_event_message` decides whether a raw events-topic message is usable and says why not,
without a broker; `DeadLetters` sends the rejects (original key and value, and headers naming the
reason and where the message was read) inside the worker's transaction, and counts them by class.

>>> import time
>>> from refold.core.config import Settings
>>> limits = Limits.of(Settings())
>>> check_event_message(b"u1", b'{"v":1,"event_id":"e","user_id":"u1","item_id":"i",'
...                     b'"event_type":"click","event_time":1}', limits, now=10.0).item_id
'i'
>>> try:
...     check_event_message(b"u1", b"oops", limits, now=10.0)
... except Rejected as exc:
...     print(exc.error_class, "|", exc)
not_json | not valid JSON (JSON is malformed: invalid character (byte 0))
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Message

from refold.core.config import Settings
from refold.core.errors import ConsumerError
from refold.core.kafka import where
from refold.core.schemas import Event, Impression, SchemaError, decode_event, decode_impression

log = logging.getLogger(__name__)

ID_FIELDS = ("event_id", "user_id", "item_id", "impression_id", "rec_id")


class Rejected(SchemaError, ConsumerError):
    """A message that is not a usable event; `error_class` is a short, bounded category."""

    def __init__(self, field: str, reason: str, error_class: str) -> None:
        super().__init__(field, reason)
        self.error_class = error_class


@dataclass(frozen=True)
class Limits:
    """What a usable event must stay within, beyond its schema."""

    max_message_bytes: int
    max_future_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_message_bytes, settings.max_future_seconds)


def _error_class(err: SchemaError) -> str:
    """Sort the schema module's errors into a few classes (bounded: usable as metric labels)."""
    text = str(err)
    if err.field == "":
        if text.startswith("empty message"):
            return "null_value"
        if text.startswith("not valid UTF-8"):
            return "not_utf8"
        if text.startswith("not valid JSON"):
            return "not_json"
        if text.startswith("JSON nested too deeply"):
            return "too_deep"
    if err.field == "event_type":
        return "unknown_type"
    if err.field in ID_FIELDS and ("length >= 1" in text or "regex" in text):
        return "empty_id"
    return "schema"


def check_event_message(
    key: bytes | None, value: bytes | None, limits: Limits, now: float
) -> Event:
    """Decode one events-topic message, or raise `Rejected` naming the field and the reason.

    Beyond the schema: the value must fit `max_message_bytes`, its event time must not lie more
    than `max_future_seconds` ahead of `now`, and its key must be its user id (the partition
    that owns a user's state is chosen by the key).
    """
    event = _checked(key, value, limits, decode_event)
    _not_ahead("event_time", event.event_time, limits, now)
    _keyed_by_user(key, event.user_id)
    return event


def check_impression_message(
    key: bytes | None, value: bytes | None, limits: Limits, now: float
) -> Impression:
    """`check_event_message` for the impressions topic (`shown_at` is the time checked)."""
    imp = _checked(key, value, limits, decode_impression)
    _not_ahead("shown_at", imp.shown_at, limits, now)
    _keyed_by_user(key, imp.user_id)
    return imp


def _checked(key: bytes | None, value: bytes | None, limits: Limits, decode: Any) -> Any:
    if value is not None and len(value) > limits.max_message_bytes:
        raise Rejected(
            "", f"message of {len(value)} bytes exceeds max_message_bytes "
            f"({limits.max_message_bytes})", "oversize")
    try:
        return decode(value)  # None: "empty message"
    except SchemaError as exc:
        raise Rejected(exc.field, exc.reason, _error_class(exc)) from None


def _not_ahead(field: str, t: float, limits: Limits, now: float) -> None:
    ahead = t - now
    if ahead > limits.max_future_seconds:
        raise Rejected(
            field, f"{ahead:.0f} s in the future (max_future_seconds is "
            f"{limits.max_future_seconds:g})", "future_time")


def _keyed_by_user(key: bytes | None, user_id: str) -> None:
    if key != user_id.encode():
        shown = "missing" if key is None else repr(key.decode("utf-8", "replace")[:64])
        raise Rejected("key", f"key {shown} is not the user_id", "key_mismatch")


class Output(Protocol):
    """Where a processor's messages go (the loop's transactional producer)."""

    def produce(self, topic: str, value: bytes | None, key: bytes | str | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None: ...


def dead_letter_headers(msg: Message, err: Rejected, failed_at: float) -> list[tuple[str, bytes]]:
    """Headers that say why a message was rejected and where it was read."""
    return [
        ("reason", str(err).encode()),
        ("error_class", err.error_class.encode()),
        ("source_topic", msg.topic().encode()),
        ("source_partition", str(msg.partition()).encode()),
        ("source_offset", str(msg.offset()).encode()),
        ("failed_at", f"{failed_at:.6f}".encode()),
    ]


def truncated_copy(value: bytes, limit: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The first `limit` bytes of `value`, and headers with its full size and sha256."""
    return value[:limit], [("original_size", str(len(value)).encode()),
                           ("original_sha256", hashlib.sha256(value).hexdigest().encode()),
                           ("truncated", b"true")]


KEEP_BYTES = 1_000_000 - 16_384
"""A dead letter keeps at most this much of its message: under the 1 MB default message limit of
producers and topics, with room for the headers."""


class DeadLetters:
    """Send rejected messages to `settings.topic("dead_letter")` and count them by class.

    A value larger than `KEEP_BYTES` (an `oversize` event, up to what the events topic accepts)
    is cut to its first `KEEP_BYTES` bytes, with its size and sha256 in headers: the whole of it
    would not fit the producer's own limit (1 MB unless `max_message_bytes` is larger) or the
    dead-letter topic's, and the transaction would fail again and again."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("dead_letter")
        self.keep_bytes = KEEP_BYTES
        self.counts: Counter[str] = Counter()

    def send(self, out: Output, msg: Message, err: Rejected, now: float | None = None) -> None:
        """Publish the message's original key and value (cut if oversize) with the reason, in
        the caller's transaction."""
        now = time.time() if now is None else now
        value, headers = msg.value(), dead_letter_headers(msg, err, now)
        if value is not None and len(value) > self.keep_bytes:
            value, extra = truncated_copy(value, self.keep_bytes)
            headers += extra
        out.produce(self.topic, value, msg.key(), headers)
        log.warning("dead letter %s: %s (%s)", where(msg), err, err.error_class)

    def send_state(self, out: Output, topic: str, partition: int, key: bytes, value: bytes,
                   reason: str, met_by: Message, now: float | None = None) -> None:
        """Publish a stored state record that made handling raise (`bad_state`): its key and
        bytes as stored, where it was kept (`topic`, the changelog, and `partition`; offset -1:
        a store does not keep its records' offsets) and the message that met it (`met_by`)."""
        now = time.time() if now is None else now
        headers = [("reason", reason.encode()), ("error_class", b"bad_state"),
                   ("source_topic", topic.encode()), ("source_partition", str(partition).encode()),
                   ("source_offset", b"-1"), ("failed_at", f"{now:.6f}".encode()),
                   ("met_by", where(met_by).encode())]
        if len(value) > self.keep_bytes:
            value, extra = truncated_copy(value, self.keep_bytes)
            headers += extra
        out.produce(self.topic, value, key, headers)
        log.warning("dead letter: the stored state %r of %s[%d], met by %s: %s", key, topic,
                    partition, where(met_by), reason)

    def count(self, counts: Counter[str]) -> None:
        """Add a committed batch's rejects to the totals (aborted batches are not counted)."""
        self.counts.update(counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
