"""Content in the recommender: the cold-start ladder's second step before any model, declared
profiles for users without history, and vectors for new items from their content."""

from __future__ import annotations

import numpy as np

from models.foldin import ItemFactors
from models.recommender import FoldInConfig, OnlineRecommender
from refold.core.schemas import Item, User

JOBS = [
    Item(item_id="kafka-eng", text="Data engineer: Kafka streams, stream processing in Java",
         tags=["kafka", "java"]),
    Item(item_id="flink-eng", text="Stream processing engineer, Flink and Kafka",
         tags=["kafka", "flink"]),
    Item(item_id="ml-eng", text="Machine learning engineer, recommender systems in Python",
         tags=["python", "ml"]),
    Item(item_id="ds", text="Data scientist, Python, statistics and experiments",
         tags=["python", "statistics"]),
    Item(item_id="chef", text="Chef de partie for a busy kitchen", tags=["cooking"],
         attributes={"city": "Lyon", "remote": False}),
    Item(item_id="sous-chef", text="Sous chef, French kitchen, Lyon", tags=["cooking"]),
]


def recommender(**config) -> OnlineRecommender:
    rec = OnlineRecommender(FoldInConfig(k=3, **config))
    rec.apply_items(JOBS)
    return rec


def test_before_any_model_a_history_brings_content_similar_items() -> None:
    rec = recommender()
    for u in ("a", "b", "c"):  # popularity: the kitchen jobs
        rec.learn(u, "chef", "click", t=1.0)
        rec.learn(u, "sous-chef", "click", t=1.0)
    rec.learn("dev", "kafka-eng", "bookmark", t=2.0)
    r = rec.recommend("dev", now=3.0)
    assert r.model_version is None and r.source == "content"
    # a bookmark does not consume; no one touched flink-eng: content alone brings it
    assert r.items[:2] == ["kafka-eng", "flink-eng"]


def test_a_declared_profile_serves_a_user_without_history() -> None:
    rec = recommender()
    rec.learn("a", "chef", "click", t=1.0)
    assert rec.recommend("newcomer", now=2.0).source == "popular"
    rec.set_profiles([User(user_id="newcomer", interests="python recommender systems",
                           skills=["ml", "python"])])
    r = rec.recommend("newcomer", now=2.0)
    assert r.source == "content" and r.items[:2] == ["ml-eng", "ds"]
    rec.drop_profile("newcomer")
    assert rec.recommend("newcomer", now=2.0).source == "popular"


def test_textual_attributes_are_tags() -> None:
    rec = recommender()
    rec.set_profiles([User(user_id="u", skills=["city=lyon"])])
    assert rec.recommend("u", now=0.0).items[0] == "chef"


def test_an_item_outside_the_model_gets_a_vector_from_its_content() -> None:
    """The model knows four jobs; a new stream-processing job lands near the Kafka jobs and is
    recommended to a user who likes them, before any refit."""
    Y = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    rec = OnlineRecommender(FoldInConfig(k=3, full_events=1),
                            ItemFactors(["kafka-eng", "flink-eng", "ml-eng", "ds"], Y, 1))
    rec.apply_items(JOBS)
    rec.apply_items([Item(item_id="spark-eng", text="Stream processing engineer: Kafka, Spark",
                          tags=["kafka", "spark"])])
    rec.learn("dev", "kafka-eng", "purchase", t=1.0)
    r = rec.recommend("dev", now=2.0)
    assert r.source == "collaborative"
    assert r.items[:2] == ["flink-eng", "spark-eng"] or r.items[:2] == ["spark-eng", "flink-eng"]
    assert "chef" not in r.items  # categories-only or no-content items outside: no vector
