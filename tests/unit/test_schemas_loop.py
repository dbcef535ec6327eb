"""The loop's additions to the contract: logged lists and impressions, readable by version-1
readers that do not know the new fields."""

from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest

from models.exploration import POLICIES
from refold.core.schemas import (
    Impression,
    PolicyInfo,
    Recommendation,
    RecommendedItem,
    SchemaError,
    ShownItem,
    decode_impression,
    decode_recommendation,
    encode,
    impression_of,
    json_schemas,
    validate_impression,
)

OLD_LIST = (b'{"v":1,"user_id":"u1","items":[{"item_id":"a","score":0.9}],"model_version":3,'
            b'"source":"collaborative","generated_at":1.0}')
IMPRESSION = {"v": 1, "impression_id": "x1", "rec_id": "r1", "user_id": "u1", "shown_at": 5.0,
              "items": [{"item_id": "a", "position": 1, "propensity": 0.8, "rank": 0},
                        {"item_id": "b", "position": 2}]}


class ReaderV1(msgspec.Struct, kw_only=True):
    """A version-1 reader written before lists were logged decisions."""

    class Item(msgspec.Struct):
        item_id: str
        score: float

    v: int
    user_id: str
    items: list[Item]
    model_version: int | None
    source: str
    generated_at: float


def logged_list() -> Recommendation:
    return Recommendation(
        user_id="u1", model_version=3, source="collaborative", generated_at=1.0,
        items=[RecommendedItem("a", 0.9, 1, 0.8, 0, False),
               RecommendedItem("c", 0.1, 2, 0.05, 7, True)],
        rec_id="r1", policy=PolicyInfo(name="epsilon", epsilon=0.1, candidates=40),
        candidate_scores=[0.9, 0.5, 0.1])


def test_lists_of_before_still_decode_and_new_lists_decode_for_old_readers() -> None:
    old = decode_recommendation(OLD_LIST)
    assert old.rec_id is None and old.items[0].position is None
    new = encode(logged_list())
    assert decode_recommendation(new) == logged_list()
    seen = msgspec.json.decode(new, type=ReaderV1)
    assert [(i.item_id, i.score) for i in seen.items] == [("a", 0.9), ("c", 0.1)]
    assert b'"position"' not in encode(old)  # absent fields stay absent


def test_json_schemas_accept_new_lists_and_impressions() -> None:
    schemas = json_schemas()
    jsonschema.validate(json.loads(encode(logged_list())), schemas["recommendation.v1.json"])
    jsonschema.validate(IMPRESSION, schemas["impression.v1.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**IMPRESSION, "items": []}, schemas["impression.v1.json"])
    assert set(schemas["recommendation.v1.json"]["$defs"]["PolicyInfo"]["properties"]["name"]
               ["enum"]) == set(POLICIES)


def test_impressions_round_trip() -> None:
    imp = decode_impression(json.dumps(IMPRESSION).encode())
    assert imp.items[0] == ShownItem(item_id="a", position=1, propensity=0.8, rank=0)
    assert decode_impression(encode(imp)) == imp


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"items": []}, "items", "length >= 1"),
    ({"rec_id": ""}, "rec_id", "length >= 1"),
    ({"rec_id": ...}, "rec_id", "required field is missing"),
    ({"shown_at": -1}, "shown_at", ">= 0"),
    ({"items": [{"item_id": "a", "position": 0}]}, "items", ">= 1"),
    ({"items": [{"item_id": "a", "position": 1, "propensity": 1.5}]}, "items", "<= 1"),
    ({"items": [{"item_id": "a", "position": 1}, {"item_id": "b", "position": 1}]}, "items",
     "position is shown twice"),
    ({"items": [{"item_id": "a", "position": 1}, {"item_id": "a", "position": 2}]}, "items",
     "item is shown twice"),
    ({"policy": {"name": "greedy"}}, "policy", "Invalid enum value"),
])
def test_bad_impressions_name_the_field_and_the_reason(change, field, reason) -> None:
    d = {k: v for k, v in {**IMPRESSION, **change}.items() if v is not ...}
    with pytest.raises(SchemaError) as info:
        decode_impression(json.dumps(d).encode())
    assert info.value.field == field
    assert reason in info.value.reason


def test_python_built_impressions_are_validated() -> None:
    with pytest.raises(SchemaError, match="items"):
        validate_impression(Impression(impression_id="x", rec_id="r", user_id="u",
                                       shown_at=1.0, items=[]))


def test_an_impression_of_a_list_copies_what_the_list_logged() -> None:
    rec = logged_list()
    imp = impression_of(rec, 2, 9.0, "x1", {"page": "home"})
    assert [(i.item_id, i.position, i.propensity, i.rank, i.explored) for i in imp.items] == \
        [("a", 1, 0.8, 0, False), ("c", 2, 0.05, 7, True)]
    assert (imp.rec_id, imp.list_size, imp.candidate_scores) == ("r1", 2, [0.9, 0.5, 0.1])
    assert imp.policy == rec.policy and imp.context == {"page": "home"}
    moved = impression_of(rec, ["c", "zz"], 9.0, "x2")  # c shown at 1 (the list said 2)
    assert [(i.item_id, i.position, i.propensity, i.rank) for i in moved.items] == \
        [("c", 1, None, 7), ("zz", 2, None, None)]


def test_a_none_policy_list_is_its_own_context_and_old_lists_have_no_impressions() -> None:
    rec = Recommendation(user_id="u", items=[RecommendedItem("a", 2.0, 1, 1.0, 0, False),
                                             RecommendedItem("b", 1.0, 2, 1.0, 1, False)],
                         model_version=1, source="collaborative", generated_at=0.0,
                         rec_id="r", policy=PolicyInfo(name="none"))
    assert impression_of(rec, 1, 0.0, "x").candidate_scores == [2.0, 1.0]
    with pytest.raises(SchemaError, match="rec_id"):
        impression_of(decode_recommendation(OLD_LIST), 1, 0.0, "x")
