"""`refold serve` against the real broker: a worker's list appears in the HTTP API after its event;
a dismissed and a deactivated item disappear at once (with the worker stopped, so the read-time
filters alone hide them); an unknown user gets trending; bad parameters get 4xx."""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from consumers.model_source import fit_log
from consumers.recs_view import RecommendationsView
from models.recommender import FoldInConfig, OnlineRecommender
from models.weights import EventWeights
from producers.datasets import load_movielens
from producers.sdk import EventProducer
from refold.core.config import Settings
from refold.core.kafka import make_admin, make_producer
from refold.core.schemas import (
    BasisItem,
    Event,
    Item,
    Recommendation,
    RecommendedItem,
    SimilarItems,
    encode,
)
from refold.core.topics import create_topics
from refold.serve.server import Served, build

from .workers import WorkerThread

ROOT = Path(__file__).resolve().parents[2]
ML100K = Path(os.environ.get("REFOLD_ML100K", ROOT.parent / "shared" / "datasets" / "ml-100k"))
CONFIG = FoldInConfig(k=10, full_events=1, weights=EventWeights(ratings_as_positive=True))
pytestmark = [pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}"),
              pytest.mark.slow]


@pytest.fixture(scope="module")
def data():
    log, catalog = load_movielens(ML100K)
    log = log[:3000]
    factors = fit_log(log, Settings(factors=16, iterations=5), CONFIG)
    return list(log.iter_events("ml")), list(catalog), factors


@pytest.fixture
def settings(bootstrap: str, unique_prefix: str) -> Iterator[Settings]:
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_partitions=3,
                 consumer_group=f"{unique_prefix}foldin", batch_size=100, k=10)
    create_topics(make_admin(s), s)  # the similar-items topic too
    yield s


class Server:
    """`build(settings)` served by uvicorn on a free port, on a thread of the test."""

    def __init__(self, served: Served) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.served = served
        config = uvicorn.Config(served.app, port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def __enter__(self) -> Server:
        self.served.view.start()
        self.thread.start()
        wait(lambda: self.get("/ready").status_code == 200, "the view to catch up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.served.view.close()
        self.http.close()

    def get(self, path: str) -> httpx.Response:
        for _ in range(50):  # the server thread may not be listening yet
            try:
                return self.http.get(path)
            except httpx.ConnectError:
                time.sleep(0.1)
        raise AssertionError(f"no server on port {self.port}")

    def items(self, user: str, query: str = "") -> list[str]:
        body = self.get(f"/v1/users/{user}/recommendations?k=10{query}").json()
        return [i["item_id"] for i in body["items"]]


def wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    """Seconds until `predicate` held (polled every 10 ms); fails after `timeout`."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.01)
    return time.monotonic() - start


def test_lists_filters_trending_and_errors_through_http(settings, data) -> None:
    events, catalog, factors = data
    with EventProducer(settings) as producer:
        for item in catalog:
            producer.send_item(item)
        producer.send_many(events)
    user = events[-1].user_id
    worker = WorkerThread(settings, recommender=OnlineRecommender(CONFIG, factors))
    worker.start()
    with Server(build(settings)) as server:
        # 1. a list appears in the API after its event
        wait(lambda: server.get(f"/v1/users/{user}/recommendations").json()["source"]
             == "collaborative", "the user's list")
        with EventProducer(settings) as producer:
            producer.send(Event(event_id="late-1", user_id="late", item_id="50",
                                event_type="rating", value=5, event_time=events[-1].event_time))
        wait(lambda: server.get("/v1/users/late/recommendations").json()["source"]
             == "collaborative", "a new user's list after their event")
        with RecommendationsView(settings) as view:  # the list names what it was made from
            assert view.catch_up(20)
            assert [(b.item_id, b.event_type) for b in view.get("late").basis] == \
                [("50", "rating")]
            assert len(view.get(user).basis) == 5 and view.get(user).basis[0].item_id == \
                events[-1].item_id
        worker.stop()  # from here on, only the read-time filters can hide anything
        listed = server.items(user)
        assert len(listed) == 10
        # a replica holding only the user's partition (crc32, the workers' partitioner) has it
        mine = {zlib.crc32(user.encode()) % settings.events_partitions}
        with Server(build(settings, held=mine)) as replica:
            assert replica.items(user) == listed

        # 2. a dismissed item disappears at once
        with EventProducer(settings) as producer:
            producer.send(Event(event_id="dismiss-1", user_id=user, item_id=listed[0],
                                event_type="dismiss", event_time=events[-1].event_time))
        wait(lambda: listed[0] not in server.items(user), "the dismissed item to go", 5)

        # 3. a deactivated item disappears at once, for everyone
        with EventProducer(settings) as producer:
            producer.send_item(Item(item_id=listed[1], active=False))
        wait(lambda: listed[1] not in server.items(user), "the inactive item to go", 5)
        assert listed[2:] == server.items(user)[:8]  # the rest keeps its order, then a fill

        # 4. an unknown user gets trending, which leaves out the inactive item
        body = server.get("/v1/users/never-seen/recommendations?k=5").json()
        assert body["source"] == "popular" and len(body["items"]) == 5
        assert listed[1] not in [i["item_id"] for i in body["items"]]
        assert [i["item_id"] for i in body["items"]] == \
            [i["item_id"] for i in server.get("/v1/popular?k=5").json()["items"]]

        # 5. bad parameters get 4xx, unknown items 404
        for query in ("k=0", "k=1000", "k=x", "explain=2"):
            r = server.get(f"/v1/users/{user}/recommendations?{query}")
            assert r.status_code == 400, query
        assert server.get("/v1/items/no-such-item/similar").status_code == 404
        assert server.get("/metrics").status_code == 200


def test_similar_items_and_explanations_come_from_the_topic(settings) -> None:
    producer = make_producer(settings)
    topic = settings.topic("similar-items")
    producer.produce(settings.topic("items"), encode(Item(item_id="a", categories=["X"])), "a")
    producer.produce(topic, encode(SimilarItems(
        item_id="a", items=[RecommendedItem("b", 0.9), RecommendedItem("c", 0.5)],
        model_version=2, generated_at=1.0)), "a")
    producer.produce(topic, encode(SimilarItems(
        item_id="z", items=[RecommendedItem("a", 0.1)], model_version=1, generated_at=1.0)),
        "z")
    producer.produce(topic, None, "z")  # deleted
    producer.produce(settings.topic("recommendations"), encode(Recommendation(
        user_id="u", items=[RecommendedItem("c", 2.0), RecommendedItem("x", 1.0)],
        model_version=2, source="collaborative", generated_at=1.0,
        basis=[BasisItem(item_id="a", event_type="purchase")])), "u")
    producer.flush(10)
    with Server(build(settings)) as server:
        body = server.get("/v1/items/a/similar?k=1").json()
        assert body == {"item_id": "a", "model_version": 2,
                        "items": [{"item_id": "b", "score": pytest.approx(0.9)}]}
        assert server.get("/v1/items/z/similar").json()["items"] == []
        reasons = [i["reason"] for i in server.get(
            "/v1/users/u/recommendations?k=2&explain=true").json()["items"]]
        assert reasons == [{"kind": "similar", "item_id": "a", "text": "because you bought a"},
                           {"kind": "profile", "text": "close to your recent activity"}]
        producer.produce(settings.topic("items"), encode(Item(item_id="b", active=False)), "b")
        producer.flush(10)
        wait(lambda: [i["item_id"] for i in server.get("/v1/items/a/similar").json()["items"]]
             == ["c"], "the inactive neighbour to go", 5)


def test_a_replica_holds_only_its_partitions(settings) -> None:
    held = {0}
    with Server(build(settings, held=held)) as server:
        users = [f"user-{n}" for n in range(20)]
        for u in users:
            expected = 200 if zlib.crc32(u.encode()) % settings.events_partitions in held else 421
            assert server.get(f"/v1/users/{u}/recommendations").status_code == expected, u
