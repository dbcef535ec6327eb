"""The refitter's hybrid part on the broker: each snapshot carries the items' counts and the
catalog's idf; from the second, a mixer fitted on a replay served by the first."""

from __future__ import annotations

import numpy as np
import pytest

from consumers.snapshots import load_latest
from models.mixer import Mixer
from refold.core.config import Settings
from refold.core.kafka import make_producer, produce
from refold.core.schemas import Item, encode
from tests.integration.test_refitter import run_once, send_events

pytestmark = pytest.mark.slow

WORDS = ["kafka", "stream", "python", "cooking", "garden", "music"]


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings(events_partitions=2, factors=8, iterations=5, k=10,
                         mixer_scored_events=2000)


def publish_catalog(settings: Settings, items: int = 300) -> None:
    """Items of 6 clusters (those of `send_events`), each described by its cluster's word."""
    producer = make_producer(settings)
    for i in range(items):
        text = f"{WORDS[i // (items // 6)]} item number {i}"
        produce(producer, settings.topic("items"), encode(Item(item_id=f"i{i}", text=text)),
                f"i{i}")
    assert producer.flush(30) == 0


def test_snapshots_carry_counts_idf_and_then_a_mixer(settings) -> None:
    publish_catalog(settings)
    send_events(settings, 3000)
    first = run_once(settings)
    snap = load_latest(settings, timeout=20)
    assert first.published == 1 and "mixer" not in snap.params  # no live model to replay
    counts = snap.extras["counts"]
    assert counts.shape == (len(snap.item_ids),) and counts.sum() > 0
    idf = snap.idf()
    assert idf is not None and idf.n_docs == 300
    assert snap.item_factors().idf is not None

    send_events(settings, 3000, start=3000)
    second = run_once(settings)
    snap2 = load_latest(settings, timeout=20)
    assert second.published == 1 and snap2.version == 2
    mixer = Mixer.from_json(snap2.params["mixer"])
    assert mixer.metrics["positives"] >= 500
    assert snap2.metrics["mixer_scored"] > 0 and snap2.metrics["mixer_seconds"] > 0
    assert np.isfinite(mixer.coef).all() and snap2.item_factors().mixer is not None
