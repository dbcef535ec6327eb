from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from refold.core.schemas import (
    Event,
    Item,
    SchemaError,
    decode_event,
    decode_item,
    encode,
    json_schemas,
    validate_event,
)

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"v": 1, "event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "click",
        "event_time": 1_700_000_000.25}


def raw(**changes) -> bytes:
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...}).encode()


def test_round_trip_is_byte_identical():
    ev = decode_event(raw(session_id="s", value=None, context={"page": "home", "pos": 3}))
    assert decode_event(encode(ev)) == ev
    assert encode(decode_event(encode(ev))) == encode(ev)


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (raw(user_id=""), "user_id", "length >= 1"),
        (raw(item_id="   "), "item_id", "regex"),
        (raw(event_type="teleport"), "event_type", "Invalid enum value 'teleport'"),
        (raw(event_time="yesterday"), "event_time", "Expected `float`"),
        (raw(event_time=-5), "event_time", ">= 0"),
        (raw(user_id=...), "user_id", "required field is missing"),
        (raw(event_type="rating"), "value", "needs a value"),
        (raw(v=2), "v", "<= 1"),
        (raw(weight=1.5).replace(b"1.5", b"1e400"), "weight", "out of range"),
        (b'{"v":1,"event_id":', "", "not valid JSON"),
        (b"\xff\xfe\x00", "", "not valid"),
        (raw(context={"nested": {"a": 1}}), "context", "Expected"),
    ],
)
def test_invalid_events_name_field_and_reason(data, field, reason):
    with pytest.raises(SchemaError) as info:
        decode_event(data)
    assert info.value.field == field
    assert reason in info.value.reason


def test_python_built_events_are_validated_before_send():
    with pytest.raises(SchemaError, match="user_id"):
        validate_event(Event(event_id="e", user_id="", item_id="i", event_type="view",
                             event_time=1.0))


def test_unknown_fields_are_ignored_for_forward_compatibility():
    assert decode_event(raw(new_field=[1, 2])).user_id == "u1"


def test_item_defaults():
    item = decode_item(b'{"v":1,"item_id":"m1","categories":["Drama"]}')
    assert item == Item(item_id="m1", categories=["Drama"])
    assert item.active is True


def test_committed_json_schemas_are_current():
    for name, schema in json_schemas().items():
        path = ROOT / "schemas" / name
        committed = json.loads(path.read_text())
        hint = f"{path} is stale: run `refold schemas --out schemas`"
        assert committed == json.loads(json.dumps(schema)), hint


def test_json_schema_agrees_with_the_decoder():
    schema = json_schemas()["event.v1.json"]
    jsonschema.validate(json.loads(raw(value=4.0, event_type="rating")), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(raw(event_type="teleport")), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(raw(user_id="")), schema)
