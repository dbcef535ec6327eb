"""Event weights: defaults, ratings in both modes, overrides, config, errors."""

from __future__ import annotations

import pytest

from models.weights import EVENT_TYPES, EventWeights
from refold.core.errors import ModelError


def test_default_weight_per_type() -> None:
    w = EventWeights()
    got = {t: w.weight(t) for t in EVENT_TYPES if t != "rating"}
    assert got == {"view": 0.1, "click": 0.3, "add_to_cart": 0.6, "purchase": 1.0,
                   "bookmark": 0.8, "dismiss": -1.0}


@pytest.mark.parametrize(("rating", "expected"), [(5, 1.0), (4, 0.5), (3, 0.0), (2, -0.5),
                                                  (1, -1.0), (0.5, -1.0), (6, 1.0)])
def test_rating_centred_on_neutral_and_clipped(rating: float, expected: float) -> None:
    assert EventWeights().weight("rating", rating) == pytest.approx(expected)


def test_rating_scale_is_configurable() -> None:
    w = EventWeights(rating_neutral=5.0, rating_max=10.0)
    assert w.weight("rating", 7.5) == pytest.approx(0.5)


def test_ratings_as_positive_counts_every_rating_as_one() -> None:
    w = EventWeights(ratings_as_positive=True)
    assert [w.weight("rating", r) for r in (1, 3, 5)] == [1.0, 1.0, 1.0]


def test_override_wins_over_type_and_rating_value() -> None:
    w = EventWeights()
    assert w.weight("view", override=3.0) == 3.0
    assert w.weight("rating", 5, override=-0.25) == -0.25
    assert w.weight("dismiss", override=0.0) == 0.0


def test_unknown_type_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'like'"):
        EventWeights().weight("like")


def test_rating_without_value_is_an_error() -> None:
    with pytest.raises(ModelError, match="value"):
        EventWeights().weight("rating")


def test_only_dismiss_blocks() -> None:
    assert [t for t in EVENT_TYPES if EventWeights.blocks(t)] == ["dismiss"]


def test_from_mapping_sets_fields_and_rejects_unknown_keys() -> None:
    w = EventWeights.from_mapping({"view": "0.05", "ratings_as_positive": True, "dismiss": -2})
    assert (w.view, w.ratings_as_positive, w.dismiss, w.click) == (0.05, True, -2.0, 0.3)
    with pytest.raises(ModelError, match="purchse"):
        EventWeights.from_mapping({"purchse": 1.0})


def test_bad_rating_scale_is_rejected() -> None:
    with pytest.raises(ModelError):
        EventWeights(rating_neutral=5.0, rating_max=5.0)
