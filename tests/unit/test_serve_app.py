"""The HTTP API over a filled state: answers, 4xx for bad parameters, 404/421, health, OpenAPI."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from consumers.serve_state import ServeState
from refold.serve.app import MAX_K, create_app

NOW = 5_000.0


class Status:
    def __init__(self) -> None:
        self.ok, self.caught_up = True, False

    def healthy(self) -> tuple[bool, str]:
        return self.ok, "following" if self.ok else "the follower stopped"

    def ready(self) -> tuple[bool, str]:
        return self.caught_up, "caught up" if self.caught_up else "reading the topics"


def filled(state: ServeState) -> ServeState:
    for item, cats in [("a", ["Drama"]), ("b", ["Comedy"]), ("c", ["Drama"]), ("p", ["Drama"])]:
        state.set_item(item, True, cats, title=item.upper())
    state.event("x", "p", "purchase", NOW, offset=0)
    state.put_list("u1", ["a", "b", "c"], [3.0, 2.0, 1.0], "collaborative", 4, NOW - 1,
                   cause_offset=5, basis=[("b", "click")])
    state.set_similar("b", [("a", 0.8), ("c", 0.3)], model_version=4)
    return state


@pytest.fixture
def status() -> Status:
    return Status()


@pytest.fixture
def client(status: Status) -> Iterator[TestClient]:
    app = create_app(filled(ServeState()), status, default_k=2, clock=lambda: NOW)
    with TestClient(app=app) as c:
        yield c


def test_a_users_list_with_k_exclude_category_and_explanations(client: TestClient) -> None:
    body = client.get("/v1/users/u1/recommendations").json()
    assert body["source"] == "collaborative" and body["model_version"] == 4
    assert [i["item_id"] for i in body["items"]] == ["a", "b"]  # the default k
    got = client.get("/v1/users/u1/recommendations?k=4&exclude=a,zz&exclude=c").json()
    assert [(i["item_id"], i["source"]) for i in got["items"]] == \
        [("b", "collaborative"), ("p", "popular")]
    got = client.get("/v1/users/u1/recommendations?k=3&category=Drama&explain=true").json()
    assert [i["item_id"] for i in got["items"]] == ["a", "c", "p"]
    assert got["items"][0]["reason"] == {"kind": "similar", "item_id": "b",
                                         "text": "because you clicked B"}
    assert got["items"][2]["reason"]["text"] == "popular in Drama"
    assert "reason" not in client.get("/v1/users/u1/recommendations").json()["items"][0]


def test_an_unknown_user_gets_trending(client: TestClient) -> None:
    body = client.get("/v1/users/nobody/recommendations?k=5").json()
    assert body["source"] == "popular" and body["generated_at"] is None
    assert [i["item_id"] for i in body["items"]] == ["p"]


@pytest.mark.parametrize("query, key", [
    ("k=0", "k"), (f"k={MAX_K + 1}", "k"), ("k=ten", "k"), ("explain=perhaps", "explain")])
def test_bad_parameters_are_400_naming_the_parameter(client: TestClient, query: str,
                                                     key: str) -> None:
    r = client.get(f"/v1/users/u1/recommendations?{query}")
    assert r.status_code == 400 and r.json()["extra"][0]["key"] == key
    assert client.get(f"/v1/items/b/similar?{query}").status_code == (
        400 if key == "k" else 200)


def test_similar_and_popular(client: TestClient) -> None:
    body = client.get("/v1/items/b/similar?k=5").json()
    assert body == {"item_id": "b", "model_version": 4,
                    "items": [{"item_id": "a", "score": pytest.approx(0.8)},
                              {"item_id": "c", "score": pytest.approx(0.3)}]}
    assert client.get("/v1/items/a/similar").json()["items"] == []  # known, no neighbours
    r = client.get("/v1/items/nope/similar")
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    assert client.get("/v1/popular?category=Drama").json()["items"][0]["item_id"] == "p"
    assert client.get("/v1/popular?category=Comedy").json()["items"] == []
    assert client.get("/v1/nothing").status_code == 404


def test_health_ready_metrics_and_openapi(client: TestClient, status: Status) -> None:
    assert client.get("/ready").status_code == 503
    status.caught_up = True
    assert client.get("/ready").json() == {"ready": True, "detail": "caught up"}
    assert client.get("/healthz").status_code == 200
    status.ok = False
    assert client.get("/healthz").status_code == 503
    text = client.get("/metrics").text
    assert 'refold_serve_requests_total{route="health",status="503"}' in text
    assert "refold_serve_users 1.0" in text
    spec = client.get("/schema/openapi.json").json()
    params = {p["name"] for p in
              spec["paths"]["/v1/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert params == {"user_id", "k", "category", "exclude", "explain"}
    assert {"/v1/items/{item_id}/similar", "/v1/popular"} <= set(spec["paths"])


def test_a_user_of_a_partition_not_held_is_misdirected() -> None:
    state = filled(ServeState(partitions=3, held=[zlib.crc32(b"u1") % 3]))
    other = next(u for u in (f"v{n}" for n in range(99)) if zlib.crc32(u.encode()) % 3 !=
                 zlib.crc32(b"u1") % 3)
    with TestClient(app=create_app(state, Status(), clock=lambda: NOW)) as c:
        assert c.get("/v1/users/u1/recommendations").status_code == 200
        r = c.get(f"/v1/users/{other}/recommendations")
        assert r.status_code == 421
        assert r.json()["extra"]["partition"] == zlib.crc32(other.encode()) % 3
