"""Which events-topic messages are dead letters, why, and what the dead letter carries."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Message

from consumers.deadletter import (
    DeadLetters,
    Limits,
    Rejected,
    check_event_message,
    dead_letter_headers,
)
from refold.core.config import Settings

NOW = 1_700_000_000.0
LIMITS = Limits(max_message_bytes=1024, max_future_seconds=3600.0)


def event(**changes) -> dict:
    ev = {"v": 1, "event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "click",
          "event_time": NOW - 5}
    ev.update(changes)
    return ev


def raw(ev: dict) -> bytes:
    return json.dumps(ev).encode()


def rejected(value: bytes | None, key: bytes | None = b"u1") -> Rejected:
    with pytest.raises(Rejected) as info:
        check_event_message(key, value, LIMITS, NOW)
    return info.value


def test_a_valid_event_passes():
    ev = check_event_message(b"u1", raw(event(session_id="s", value=2.0)), LIMITS, NOW)
    assert (ev.event_id, ev.user_id, ev.item_id, ev.value) == ("e1", "u1", "i1", 2.0)


@pytest.mark.parametrize(
    ("value", "error_class", "field", "text"),
    [
        (None, "null_value", "", "empty message (no value)"),
        (b'{"v":1,"event_id":', "not_json", "", "not valid JSON"),
        (b"not json", "not_json", "", "not valid JSON"),
        (b'{"v":1,"event_id":"e\xff"}', "not_utf8", "", "not valid UTF-8"),
        (raw(event(event_type="like")), "unknown_type", "event_type", "Invalid enum value 'like'"),
        (raw(event(event_id="")), "empty_id", "event_id", "event_id: Expected `str` of length"),
        (raw(event(user_id="   ")), "empty_id", "user_id", "user_id: Expected `str` matching"),
        (raw(event(item_id="")), "empty_id", "item_id", "item_id:"),
        (raw({k: v for k, v in event().items() if k != "item_id"}), "schema", "item_id",
         "item_id: required field is missing"),
        (raw(event(event_time="yesterday")), "schema", "event_time", "event_time: Expected"),
        (raw(event(event_type="rating")), "schema", "value", "value: a rating event needs"),
        (raw(event(v=2)), "schema", "v", "v: Expected `int` <= 1"),
        (b"[1, 2]", "schema", "", "Expected `object`, got `array`"),
        (raw(event(event_time=NOW + 3601)), "future_time", "event_time",
         "event_time: 3601 s in the future"),
        (raw(event(context={"pad": "x" * 1100})), "oversize", "",
         "exceeds max_message_bytes (1024)"),
    ],
)
def test_each_kind_of_bad_message_is_classified_with_its_field(value, error_class, field, text):
    err = rejected(value)
    assert err.error_class == error_class
    assert err.field == field
    assert text in str(err)


def test_event_time_within_the_future_allowance_passes():
    assert check_event_message(b"u1", raw(event(event_time=NOW + 3599)), LIMITS, NOW)


def test_the_key_must_be_the_user_id():
    assert rejected(raw(event()), key=b"u2").error_class == "key_mismatch"
    err = rejected(raw(event()), key=None)
    assert (err.field, err.error_class) == ("key", "key_mismatch")
    assert "missing" in str(err)


def test_oversize_is_checked_before_decoding():
    err = rejected(b"\xff" * 2000)  # would be not_utf8 if it were decoded first
    assert err.error_class == "oversize"


def test_limits_come_from_settings():
    s = Settings(max_message_bytes=10, max_future_seconds=1.0)
    assert Limits.of(s) == Limits(10, 1.0)


class FakeOutput:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def produce(self, topic, value, key=None, headers=None) -> None:
        self.sent.append((topic, value, key, headers))


def test_a_dead_letter_keeps_the_original_bytes_and_says_why_and_where():
    value = b'{"v":1,"event_id":"e\xff"}'
    msg = Message(topic="p.events", partition=3, offset=42, key=b"u\xfe", value=value)
    out, dl = FakeOutput(), DeadLetters(Settings(topic_prefix="p."))
    err = rejected(value)
    dl.send(out, msg, err, now=NOW)
    [(topic, sent_value, sent_key, headers)] = out.sent
    assert topic == "p.dead-letter"
    assert sent_value == value and sent_key == b"u\xfe"
    h = dict(headers)
    assert h["reason"].decode() == str(err)
    assert h["error_class"] == b"not_utf8"
    assert (h["source_topic"], h["source_partition"], h["source_offset"]) == (
        b"p.events", b"3", b"42")
    assert float(h["failed_at"]) == NOW


def test_a_null_value_is_dead_lettered_as_null():
    msg = Message(topic="t", partition=0, offset=0, key=b"u1", value=None)
    out = FakeOutput()
    DeadLetters(Settings()).send(out, msg, rejected(None), now=NOW)
    assert out.sent[0][1] is None
    assert dict(out.sent[0][3])["error_class"] == b"null_value"


def test_counts_are_by_class():
    dl = DeadLetters(Settings())
    msg = Message(topic="t", partition=0, offset=0, key=b"u1", value=b"x")
    from collections import Counter

    dl.count(Counter({"not_json": 2, "oversize": 1}))
    dl.count(Counter({"not_json": 1}))
    assert dl.counts == {"not_json": 3, "oversize": 1} and dl.total == 4
    assert [k for k, _ in dead_letter_headers(msg, rejected(b"x"), NOW)] == [
        "reason", "error_class", "source_topic", "source_partition", "source_offset", "failed_at"]
