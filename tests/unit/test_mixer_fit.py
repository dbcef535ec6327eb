"""Fitting the mixer from a replay: what is scored, what becomes an example, and that the
fitted mixer ranks the way the replayed users chose."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np

from models.catalog import ItemIndex
from models.mixer import Candidates, Signals, item_context, user_context
from models.mixer_fit import ExampleBuffer, collect


class World:
    """A fake recommender: 30 items with a fixed cf and content score per user; users with
    five events or more choose by cf, newcomers by content; the candidates are items 0..19."""

    def __init__(self, seed: int = 0) -> None:
        self.catalog = ItemIndex([f"i{k}" for k in range(30)])
        self.rng = np.random.default_rng(seed)
        self.seen: dict[str, int] = {}
        self.learned: list[str] = []

    def scores(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(zlib.crc32(user_id.encode()))
        return r.random(30), r.random(30)

    def choice(self, user_id: str) -> int:
        cf, content = self.scores(user_id)
        return int(np.argmax(cf if self.seen.get(user_id, 0) >= 5 else content))

    def candidates_of(self, user_id: str, now: float) -> Candidates:
        cf, content = self.scores(user_id)
        items = np.arange(20)
        sig = Signals(cf=cf[items], content=content[items], trend=np.zeros(20))
        return Candidates(items, sig, user_context(self.seen.get(user_id, 0), 0.0),
                          item_context(np.zeros(20)))

    def learn_event(self, ev, partition: int = 0) -> float:
        self.seen[ev.user_id] = self.seen.get(ev.user_id, 0) + 1
        self.learned.append(ev.event_id)
        return 1.0


def events(world: World, n: int):
    """`n` events: 20 regulars come back all the time, every other event is a newcomer's first;
    10% of the choices are noise."""
    out = []
    for j in range(n):
        u = f"regular{j % 20}" if j % 2 else f"newcomer{j}"
        item = world.choice(u) if j % 10 else int(world.rng.integers(30))
        out.append(SimpleNamespace(event_id=f"e{j}", user_id=u, item_id=f"i{item}",
                                   event_time=float(j)))
        world.seen[u] = world.seen.get(u, 0) + 1
    world.seen.clear()
    return out


def test_collect_scores_from_the_start_and_skips_items_outside_the_candidates() -> None:
    world = World()
    evs = events(world, 1200)
    buf = ExampleBuffer()
    counts = collect(world, evs, positive=lambda ev: ev.event_id != "e7", buffer=buf,
                     score_from=300, seed=1)
    assert counts["events"] == 1200 and world.learned == [ev.event_id for ev in evs]
    assert counts["scored"] == 900
    outside = sum(int(ev.item_id[1:]) >= 20 for ev in evs[300:])
    assert counts["examples"] == 900 - outside
    assert len(buf) == 4 * counts["examples"] and buf.positives == counts["examples"]


def test_sampling_and_capacity() -> None:
    world = World()
    evs = events(world, 2000)
    buf = ExampleBuffer(capacity=400)
    counts = collect(world, evs, positive=lambda ev: True, buffer=buf, sample=0.25, seed=2)
    assert 400 < counts["scored"] < 600
    assert len(buf) == 400


def test_the_fitted_mixer_ranks_like_the_users_chose() -> None:
    world = World()
    evs = events(world, 6000)
    buf = ExampleBuffer()
    collect(world, evs, positive=lambda ev: True, buffer=buf, score_from=1000, seed=3)
    mixer = buf.fit(min_positives=100)
    assert mixer is not None
    assert mixer.weight("content") > 0 and mixer.weight("cf*user_events") > 0
    hits = {"newcomer": 0, "old hand": 0}  # the mixer's first is the right signal's top 3
    for j in range(100):
        u = f"new{j}"
        cf, content = (np.argsort(-s[:20])[:3] for s in world.scores(u))
        hits["newcomer"] += mixer.rank(world.candidates_of(u, 0.0), 1)[0][0] in content
        for _ in range(100):
            world.learn_event(SimpleNamespace(user_id=u, event_id=""))
        hits["old hand"] += mixer.rank(world.candidates_of(u, 0.0), 1)[0][0] in cf
    assert min(hits.values()) >= 90, hits


def test_no_mixer_without_enough_positives_or_negatives() -> None:
    assert ExampleBuffer().fit() is None
    world = World()
    buf = ExampleBuffer()
    collect(world, events(world, 200), positive=lambda ev: True, buffer=buf)
    assert buf.fit(min_positives=10_000) is None
