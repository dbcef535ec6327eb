"""Foreign records to events: field and type mappings, timestamps, and errors that say why."""

from __future__ import annotations

import pytest

from refold.core.mapping import EventMapping, MappingError, Skipped, parse_pairs, parse_time

SHOP = EventMapping.from_specs(
    ["user_id=uid", "item_id=product.sku", "event_type=action", "event_time=ts",
     "session_id=sid", "value=stars", "context.page=page"],
    types=["pv=view", "atc=add_to_cart", "buy=purchase", "rate=rating", "hide=dismiss"],
    time_unit="ms", skip_types=["heartbeat"])


def record(**changes):
    base = {"uid": 7, "product": {"sku": "A-1"}, "action": "pv", "ts": 1732356000250,
            "sid": "s1", "page": "home"}
    return {**base, **changes}


def test_a_mapped_record_becomes_a_valid_event():
    ev = SHOP.map_record(record(), fallback_id="clicks-2-99")
    assert (ev.user_id, ev.item_id, ev.event_type) == ("7", "A-1", "view")
    assert ev.event_time == pytest.approx(1732356000.25)
    assert (ev.event_id, ev.session_id, ev.context) == ("clicks-2-99", "s1", {"page": "home"})


def test_types_mapped_passed_through_skipped_or_refused():
    assert SHOP.map_record(record(action="atc"), fallback_id="x").event_type == "add_to_cart"
    assert SHOP.map_record(record(action="click"), fallback_id="x").event_type == "click"
    assert SHOP.map_record(record(action="rate", stars=2), fallback_id="x").value == 2.0
    with pytest.raises(Skipped):
        SHOP.map_record(record(action="heartbeat"), fallback_id="x")
    with pytest.raises(MappingError) as err:
        SHOP.map_record(record(action="teleport"), fallback_id="x")
    assert err.value.field == "event_type" and err.value.error_class == "unknown_type"
    assert "'teleport'" in str(err.value) and "pv, atc" in str(err.value)


@pytest.mark.parametrize(("raw", "unit", "seconds"), [
    (1732356000, "s", 1732356000.0),
    (1732356000.5, "s", 1732356000.5),
    (1732356000250, "ms", 1732356000.25),
    (1732356000250000, "us", 1732356000.25),
    ("2024-11-23T10:00:00Z", "iso", 1732356000.0),
    ("2024-11-23T11:00:00+01:00", "iso", 1732356000.0),
    ("2024-11-23T10:00:00", "iso", 1732356000.0),  # naive: UTC
    ("2024-11-23 10:00:00.250Z", "iso", 1732356000.25),
    (1732356000, "auto", 1732356000.0),
    (1732356000250, "auto", 1732356000.25),
    (1732356000250000, "auto", 1732356000.25),
    ("1732356000250", "auto", 1732356000.25),
    ("2024-11-23T10:00:00Z", "auto", 1732356000.0),
])
def test_timestamps_in_every_unit(raw, unit, seconds):
    assert parse_time(raw, unit) == pytest.approx(seconds)


@pytest.mark.parametrize(("raw", "unit"), [
    ("yesterday", "iso"), (1732356000, "iso"), ("x", "auto"), (None, "s"), (True, "ms"),
    (float("nan"), "s"), ("12 o'clock", "ms"),
])
def test_bad_timestamps_are_refused(raw, unit):
    with pytest.raises((ValueError, TypeError)):
        parse_time(raw, unit)


def test_bad_time_in_a_record_names_the_field_and_unit():
    with pytest.raises(MappingError) as err:
        SHOP.map_record(record(ts="soon"), fallback_id="x")
    assert err.value.field == "event_time" and err.value.error_class == "bad_time"
    assert "unit ms" in str(err.value)


def test_missing_fields_and_fallbacks():
    with pytest.raises(MappingError) as err:
        SHOP.map_record(record(uid=None), fallback_id="x")
    assert err.value.field == "user_id" and "'uid'" in str(err.value)
    with pytest.raises(MappingError, match="item_id"):
        SHOP.map_record(record(product={"name": "no sku"}), fallback_id="x")
    with pytest.raises(MappingError, match="user_id"):
        SHOP.map_record(record(uid={"id": 1}), fallback_id="x")
    no_time = record()
    del no_time["ts"]
    with pytest.raises(MappingError, match="event_time: missing"):
        SHOP.map_record(no_time, fallback_id="x", fallback_time=5.0)
    plain = EventMapping.from_specs(default_type="purchase")
    ev = plain.map_record({"user_id": "u", "item_id": "i", "event_id": "e9"}, fallback_id="x",
                          fallback_time=12.5)
    assert (ev.event_type, ev.event_time, ev.event_id) == ("purchase", 12.5, "e9")


def test_contract_violations_become_mapping_errors():
    with pytest.raises(MappingError) as err:
        SHOP.map_record(record(action="rate"), fallback_id="x")  # a rating needs a value
    assert err.value.error_class == "schema"
    with pytest.raises(MappingError, match="not a number"):
        SHOP.map_record(record(stars="five"), fallback_id="x")
    with pytest.raises(MappingError, match="JSON object"):
        SHOP.map_record(["not", "an", "object"], fallback_id="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fields": ["userid=uid"]}, "unknown event field"),
    ({"fields": ["user_id"]}, "expected NAME=NAME"),
    ({"types": ["pv=look"]}, "pv=look"),
    ({"time_unit": "days"}, "time unit"),
    ({"default_type": "like"}, "default type"),
])
def test_bad_mappings_are_refused_when_configured(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EventMapping.from_specs(**kwargs)


def test_parse_pairs_strips_blanks():
    assert parse_pairs([" a = b "], "field") == {"a": "b"}
