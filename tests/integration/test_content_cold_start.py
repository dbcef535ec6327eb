"""Content before the first refit, through the broker: items published with text and tags and a
user's declared profile on the users topic are served by a worker that has no model at all."""

from __future__ import annotations

import time

from consumers.recs_view import RecommendationsView
from producers.sdk import EventProducer
from refold.core.kafka import make_producer, produce
from refold.core.schemas import Event, Item, Recommendation, User, encode

JOBS = [
    Item(item_id="kafka-eng", text="Data engineer: Kafka streams, stream processing in Java",
         tags=["kafka", "java"]),
    Item(item_id="flink-eng", text="Stream processing engineer, Flink and Kafka",
         tags=["kafka", "flink"]),
    Item(item_id="ml-eng", text="Machine learning engineer, recommender systems in Python",
         tags=["python", "ml"]),
    Item(item_id="ds", text="Data scientist, Python, statistics and experiments",
         tags=["python", "statistics"]),
    Item(item_id="chef", text="Chef de partie for a busy kitchen", tags=["cooking"]),
    Item(item_id="sous-chef", text="Sous chef, French kitchen", tags=["cooking"]),
    Item(item_id="baker", text="Baker, early shifts", tags=["cooking"]),
]


def publish_catalog_and_profile(settings) -> None:
    producer = make_producer(settings)
    for item in JOBS:
        produce(producer, settings.topic("items"), encode(item), item.item_id)
    produce(producer, settings.topic("users"), encode(User(
        user_id="newcomer", interests="python and recommender systems", skills=["ml"])),
        "newcomer")
    produce(producer, settings.topic("users"), b'{"v":1,"user_id":""}', "broken")  # skipped
    assert producer.flush(30) == 0


def wait_for_lists(settings, users: list[str], timeout: float = 60.0
                   ) -> dict[str, Recommendation]:
    with RecommendationsView(settings) as view:
        deadline = time.monotonic() + timeout
        while True:
            view.catch_up(10)
            lists = {u: view.get(u) for u in users}
            if all(lists.values()):
                return lists  # type: ignore[return-value]
            assert time.monotonic() < deadline, f"no lists for {users} in {timeout} s"
            time.sleep(0.2)


def test_content_only_items_are_served_before_the_first_refit(make_settings,
                                                             worker_thread) -> None:
    settings = make_settings(exploration="none")  # lists in ranking order
    publish_catalog_and_profile(settings)
    worker = worker_thread(settings)  # no factors, no snapshot: nothing was ever trained
    with EventProducer(settings) as events:
        for n, (user, item, kind) in enumerate([
                ("a", "chef", "click"), ("b", "chef", "click"), ("c", "sous-chef", "click"),
                ("dev", "kafka-eng", "bookmark"), ("newcomer", "baker", "view")]):
            events.send(Event(event_id=f"e{n}", user_id=user, item_id=item, event_type=kind,
                              event_time=1_700_000_000.0 + n))
    lists = wait_for_lists(settings, ["dev", "newcomer"])
    worker.stop()
    dev = lists["dev"]
    assert dev.model_version is None and dev.source == "content"
    # the bookmark holds the reserved slot, marked; no one touched flink-eng: content brings it
    assert dev.items[0].item_id == "kafka-eng" and dev.items[0].reason == "continue"
    assert [i.item_id for i in dev.items][1] == "flink-eng"
    newcomer = [i.item_id for i in lists["newcomer"].items]
    assert lists["newcomer"].source == "content"
    assert newcomer.index("ml-eng") < newcomer.index("sous-chef")  # the declared profile counts
