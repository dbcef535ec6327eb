"""Declared profiles: bounded by recency of update, hashed like items, scored like users."""

from __future__ import annotations

import numpy as np
import pytest

from models.content_index import ContentIndex
from models.profiles import DeclaredProfiles
from refold.core.errors import ModelError


def test_keeps_the_most_recently_updated_users() -> None:
    p = DeclaredProfiles(capacity=2)
    p.set_many([("a", "x", [], None, None), ("b", "y", [], None, None)])
    p.set_many([("a", "x again", [], None, 5.0)])  # a is fresh again
    p.set_many([("c", "z", [], None, None)])
    assert "b" not in p and "a" in p and "c" in p
    assert p.get("a").signup_at == 5.0
    v = p.version
    p.drop("a")
    p.drop("nobody")
    assert "a" not in p and p.version == v + 1
    with pytest.raises(ModelError):
        DeclaredProfiles(capacity=0)


def test_a_declared_profile_scores_like_the_same_text_and_tags() -> None:
    ci = ContentIndex()
    ci.set_items(range(3), ["kafka stream processing", "python data science", "cooking"],
                 [["kafka", "java"], ["python"], ["food"]])
    p = DeclaredProfiles()
    p.set_many([("u", "stream processing with kafka", ["Kafka", "Scala"], None, None)])
    d = p.get("u")
    direct = ci.scores(ci.profile_of_user("stream processing with kafka", ["kafka", "scala"]), 3)
    declared = ci.scores(ci.profile_of_terms(d.terms, d.counts, d.tags), 3)
    assert np.allclose(direct, declared)
    assert declared.argmax() == 0 and declared[2] == 0.0
