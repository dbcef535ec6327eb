"""Poison inputs become dead letters with a reason, not crashes."""

from __future__ import annotations

import hashlib

import pytest

from consumers.deadletter import Limits, Rejected, check_event_message, truncated_copy
from consumers.poison import check_numbers, exception_reason
from refold.core.config import Settings
from refold.core.schemas import Event

HEAD = b'{"v":1,"event_id":"e","user_id":"u1","item_id":"i","event_type":"click","event_time":1'


@pytest.mark.parametrize("depth", [2_000, 30_000])  # 60 KB: within max_message_bytes
def test_json_nested_thousands_deep_is_rejected_as_too_deep(depth) -> None:
    deep = HEAD + b',"extra":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(Rejected) as err:
        check_event_message(b"u1", deep, Limits.of(Settings()), now=10.0)
    assert err.value.error_class == "too_deep"


def test_shallow_json_decodes() -> None:
    ok = HEAD + b',"extra":[[[1]]]}'
    assert check_event_message(b"u1", ok, Limits.of(Settings()), now=10.0).user_id == "u1"


def event(**kw) -> Event:
    return Event(event_id="e", user_id="u", item_id="i", event_type="rating", event_time=1.0,
                 value=kw.pop("value", 4.0), **kw)


@pytest.mark.parametrize(("kw", "field"), [
    ({"weight": 1e39}, "weight"), ({"weight": -1e39}, "weight"), ({"value": 5e38}, "value"),
    ({"weight": 2e4}, "weight"), ({"weight": float("inf")}, "weight"),
])
def test_numbers_beyond_float32_or_the_weight_limit_are_out_of_range(kw, field) -> None:
    with pytest.raises(Rejected) as err:
        check_numbers(event(**kw), max_abs_weight=1e4)
    assert err.value.error_class == "out_of_range" and err.value.field == field


def test_ordinary_numbers_pass() -> None:
    check_numbers(event(weight=-1e4), max_abs_weight=1e4)
    check_numbers(event(value=None, weight=None), max_abs_weight=1e4)


def test_a_truncated_copy_keeps_the_size_and_hash_of_the_original() -> None:
    original = bytes(range(256)) * 1000
    value, headers = truncated_copy(original, 1024)
    h = dict(headers)
    assert value == original[:1024]
    assert h["original_size"] == b"256000"
    assert h["original_sha256"] == hashlib.sha256(original).hexdigest().encode()


def test_exception_reasons_are_bounded() -> None:
    assert exception_reason(KeyError("k")) == "KeyError: 'k'"
    assert len(exception_reason(ValueError("x" * 10_000))) == 500
