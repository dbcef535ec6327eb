"""The similar-items topic on the real broker: one record per item of ml-100k with plausible
neighbours, and tombstones for the items a later model no longer has (after a restart too)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from consumers.similar_publisher import TOPIC, Sequences, SimilarItemsPublisher
from consumers.tail import TopicTail
from models.als import csr_from, fit_als
from models.weights import EventWeights
from producers.datasets import load_movielens
from refold.core.config import Settings
from refold.core.kafka import make_admin
from refold.core.schemas import decode_similar
from refold.core.topics import create_topics

ROOT = Path(__file__).resolve().parents[2]
ML100K = Path(os.environ.get("REFOLD_ML100K", ROOT.parent / "shared" / "datasets" / "ml-100k"))
pytestmark = [pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}"),
              pytest.mark.slow]


@pytest.fixture
def settings(bootstrap: str, unique_prefix: str) -> Settings:
    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix)
    create_topics(make_admin(s), s)
    return s


def read_all(settings: Settings) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = []
    tail = TopicTail(settings, settings.topic(TOPIC))
    try:
        assert tail.catch_up(lambda ms: out.extend((m.key().decode(), m.value()) for m in ms),
                             30)
    finally:
        tail.close()
    return out


def test_one_record_per_item_with_plausible_neighbours_then_tombstones(settings) -> None:
    log, catalog = load_movielens(ML100K)
    weights = EventWeights()
    w = np.array([weights.weight("rating", v) for v in log.values])
    _, u = np.unique(log.user_ids, return_inverse=True)
    item_ids, i = np.unique(log.item_ids, return_inverse=True)
    X = csr_from(u, i, w, (u.max() + 1, len(item_ids)))
    Y = fit_als(X, 32, 5.0, 2.0, 15, 0, item_ids=item_ids.tolist()).Y
    pos = w > 0
    sequences = Sequences(u[pos], i[pos], log.times[pos])

    publisher = SimilarItemsPublisher(settings)
    got = publisher.publish(1, item_ids.tolist(), Y, sequences)
    publisher.close()
    assert (got.records, got.tombstones) == (len(item_ids), 0)
    records = read_all(settings)
    assert len(records) == len({k for k, _ in records}) == len(item_ids)  # one per item
    latest = {k: decode_similar(v) for k, v in records if v is not None}
    assert {m.model_version for m in latest.values()} == {1}
    star_wars = [n.item_id for n in latest["50"].items]
    assert len(star_wars) == 50 and "50" not in star_wars  # SimilarParams.k
    assert {"181", "172"} <= set(star_wars[:3])  # Return of the Jedi, The Empire Strikes Back
    genres = {it.item_id: set(it.categories) for it in catalog}
    shared = [bool(genres[k] & genres[n.item_id]) for k in ("1", "50", "127", "56", "100")
              for n in latest[k].items[:10]]
    assert np.mean(shared) >= 0.65

    # a new refitter process publishes a model without the last ten items
    kept = item_ids[:-10].tolist()
    again = SimilarItemsPublisher(settings)
    got = again.publish(2, kept, Y[:-10], None)
    again.close()
    assert (got.records, got.tombstones) == (len(kept), 10)
    final: dict[str, bytes | None] = dict(read_all(settings))
    assert sorted(k for k, v in final.items() if v is None) == sorted(item_ids[-10:].tolist())
    assert {decode_similar(v).model_version for v in final.values() if v is not None} == {2}
    assert all(n.item_id in set(kept) for v in final.values() if v is not None
               for n in decode_similar(v).items)


def test_each_refit_publishes_its_similar_items(bootstrap, unique_prefix, tmp_path) -> None:
    from consumers.refitter import Refitter, Triggers
    from consumers.snapshots import load_latest
    from models.refit import RefitParams
    from producers.sdk import EventProducer
    from refold.core.schemas import Event

    s = Settings(bootstrap_servers=bootstrap, topic_prefix=unique_prefix, events_partitions=2,
                 home=str(tmp_path), refit_group=f"{unique_prefix}refit")
    create_topics(make_admin(s), s)
    rng = np.random.default_rng(0)
    with EventProducer(s) as producer:  # 200 users, each buying within one of 6 clusters
        for t in range(3000):
            u = int(rng.integers(0, 200))
            item = (u % 6) * 50 + int(rng.integers(0, 50))
            producer.send(Event(event_id=f"e{t}", user_id=f"u{u}", item_id=f"i{item}",
                                event_type="purchase", event_time=1.7e9 + t))
    refitter = Refitter(s, RefitParams(factors=8, iterations=5, holdout_fraction=0.1, k=10),
                        triggers=Triggers(0, 0, 3600))
    assert refitter.run(once=True, restore_timeout=20) == 0
    snap = load_latest(s, timeout=20)
    records = read_all(s)
    assert sorted(k for k, _ in records) == sorted(snap.item_ids)  # one record per item
    latest = [decode_similar(v) for _, v in records if v is not None]
    assert {m.model_version for m in latest} == {snap.version}
    cluster = [int(n.item_id[1:]) // 50 == int(m.item_id[1:]) // 50
               for m in latest for n in m.items[:10]]
    assert np.mean(cluster) >= 0.9  # neighbours come from the item's own cluster
