"""Content in the contract: items' text and tags, users' declared profiles, reserved slots."""

from __future__ import annotations

import json

import jsonschema
import pytest

from refold.core.schemas import (
    Item,
    Recommendation,
    RecommendedItem,
    SchemaError,
    User,
    decode_item,
    decode_recommendation,
    decode_user,
    encode,
    json_schemas,
)


def test_items_carry_optional_text_and_tags() -> None:
    item = decode_item(b'{"v":1,"item_id":"job-7","text":"Senior data engineer, Kafka",'
                       b'"tags":["kafka","python"]}')
    assert item.text == "Senior data engineer, Kafka" and item.tags == ["kafka", "python"]
    assert decode_item(encode(item)) == item
    assert encode(Item(item_id="m1")) == b'{"item_id":"m1"}'  # absent when unset


def test_users_declare_interests_skills_and_signup() -> None:
    user = decode_user(b'{"v":1,"user_id":"u1","interests":"stream processing",'
                       b'"skills":["python","kafka"],"signup_at":1700000000,'
                       b'"attributes":{"city":"Berlin"}}')
    assert user.skills == ["python", "kafka"] and user.signup_at == 1_700_000_000
    assert decode_user(encode(user)) == user
    assert encode(User(user_id="u2")) == b'{"user_id":"u2"}'


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'{"v":1,"user_id":""}', "user_id"),
        (b'{"v":1,"user_id":"u","skills":[""]}', "skills"),
        (b'{"v":1,"user_id":"u","signup_at":-1}', "signup_at"),
        (b'{"v":1,"user_id":"u","interests":5}', "interests"),
        (b'{"v":2,"user_id":"u"}', "v"),
    ],
)
def test_bad_profiles_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode_user(data)
    assert info.value.field == field


def test_too_long_text_is_refused() -> None:
    data = json.dumps({"v": 1, "item_id": "i", "text": "x" * 100_001}).encode()
    with pytest.raises(SchemaError, match="length <= 100000"):
        decode_item(data)


def test_a_reserved_slot_is_marked_and_old_readers_ignore_it() -> None:
    rec = Recommendation(user_id="u1", items=[RecommendedItem("i1", 0.9, reason="continue")],
                         model_version=3, source="collaborative", generated_at=1.0)
    data = encode(rec)
    assert b'"reason":"continue"' in data
    assert decode_recommendation(data).items[0].reason == "continue"
    old = json.loads(data)
    del old["items"][0]["reason"]
    assert decode_recommendation(json.dumps(old).encode()).items[0].reason is None


def test_json_schema_of_users_agrees_with_the_decoder() -> None:
    schema = json_schemas()["user.v1.json"]
    jsonschema.validate({"v": 1, "user_id": "u1", "skills": ["go"], "signup_at": 5}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"v": 1, "user_id": "u1", "skills": [""]}, schema)
