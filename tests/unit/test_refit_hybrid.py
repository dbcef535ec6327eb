"""The refitter's hybrid part without a broker: the idf it keeps, the counts, and the mixer it
fits on a replay served by the live model."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from consumers.model_source import fit_log
from consumers.refit_hybrid import HybridRefit
from models.content import Idf, TextEncoder
from models.mixer import Mixer
from models.snapshot import Snapshot, Watermark
from models.store import InteractionStore
from producers.synth_content import catalog_with_content, content_synth_config, generate_content
from refold.core.config import Settings
from refold.core.schemas import Item


def test_idf_follows_the_catalog_as_texts_come_and_go() -> None:
    hybrid = HybridRefit(Settings(), follow_catalog=False)
    texts = {"a": "red running shoes", "b": "blue wine", "c": "red wine"}
    hybrid.apply_items([Item(item_id=k, text=v) for k, v in texts.items()])
    hybrid.apply_items([Item(item_id="b", text="green tea"), Item(item_id="d")])
    texts["b"] = "green tea"
    want = Idf.fit(TextEncoder().counts(list(texts.values())))
    got = hybrid.df.idf()
    assert got.n_docs == 3 and np.array_equal(got.features, want.features)
    assert np.allclose(got.values, want.values)


@pytest.mark.slow
def test_a_replay_served_by_the_live_model_fits_a_mixer_and_ships_counts() -> None:
    world = generate_content(content_synth_config(n_users=300, n_items=200, n_events=8000,
                                                  seed=4))
    log = world.log
    settings = Settings(factors=8, iterations=5, learn_mixer=True, mixer_scored_events=3000)
    half = len(log) // 2
    factors = fit_log(log[:half], settings)
    live = Snapshot.build(1, 0.0, factors.item_ids, factors.Y,
                          watermark=Watermark({}, float(log.times[half - 1])))
    hybrid = HybridRefit(settings, follow_catalog=False)
    hybrid.min_positives = 100
    hybrid.apply_items(list(catalog_with_content(world)))
    assert hybrid.mixer(None) is None  # no live model: the hand-set blend
    for ev in log.iter_events("t"):
        hybrid.add(ev, zlib.crc32(ev.user_id.encode()) % 3)
    mixed = hybrid.mixer(live)
    assert mixed is not None and hybrid.last["scored"] > 0
    assert hybrid.last["events"] == len(log)
    mixer = Mixer.from_json(mixed)
    assert mixer.metrics["positives"] >= 100
    store = InteractionStore()
    for ev in log.iter_events("t"):
        store.add(ev.user_id, ev.item_id, ev.event_type, ev.event_time, ev.value, ev.weight)
    data = store.training_data(0.0)
    extras = hybrid.extras(factors.item_ids, data)
    assert extras["counts"].shape == (len(factors.item_ids),) and extras["counts"].max() > 0
    assert int(extras["idf_meta"][0]) == len(world.items)
    snap = Snapshot.build(2, 0.0, factors.item_ids, factors.Y, params={"mixer": mixed},
                          extras=extras)
    back = Snapshot.from_bytes(snap.to_bytes()).item_factors()
    assert back.mixer is not None and back.idf.n_docs == len(world.items)


def test_a_replay_without_any_catalog_message_still_runs() -> None:
    """A shop that never published its catalog: the replay has no item content to apply."""
    world = generate_content(content_synth_config(n_users=60, n_items=40, n_events=1500,
                                                  seed=5))
    log = world.log
    settings = Settings(factors=4, iterations=3, learn_mixer=True)
    factors = fit_log(log, settings)
    live = Snapshot.build(1, 0.0, factors.item_ids, factors.Y,
                          watermark=Watermark({}, float(log.times[len(log) // 2])))
    hybrid = HybridRefit(settings, follow_catalog=False)
    for ev in log.iter_events("t"):
        hybrid.add(ev, 0)
    hybrid.mixer(live)  # too few examples for a mixer, but no error
    assert hybrid.last["events"] == len(log)
