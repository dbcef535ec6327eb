"""The pure parts of `refold bench serve` and `refold serve`'s options."""

from __future__ import annotations

import sys

import click
import pytest

from refold.bench.serve import deep_size, user_id
from refold.cli.serve import parse_partitions
from refold.core.schemas import Recommendation, RecommendedItem


def test_deep_size_counts_what_a_message_holds() -> None:
    item = RecommendedItem("item-a", 0.25)
    assert deep_size(item) == sys.getsizeof(item) + sys.getsizeof("item-a") + sys.getsizeof(0.25)
    empty = Recommendation(user_id="u1", items=[], model_version=1, source="popular",
                           generated_at=7.5)
    full = Recommendation(user_id="u1", items=[item], model_version=1, source="popular",
                          generated_at=7.5)
    pointer = sys.getsizeof([item]) - sys.getsizeof([])
    assert deep_size(full) - deep_size(empty) == deep_size(item) + pointer
    shared = [item, item]
    assert deep_size(shared) == sys.getsizeof(shared) + deep_size(item)  # counted once
    assert user_id(42) == "u00000042"


def test_partitions_option() -> None:
    assert parse_partitions("all") is None and parse_partitions(None) is None
    assert parse_partitions("0, 2,5") == {0, 2, 5}
    for bad in ("x", "-1", ","):
        with pytest.raises(click.BadParameter):
            parse_partitions(bad)
