"""Learned mixer: scoring equals the feature rows, a known rule is recovered, its JSON, scaling
and negative sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.mixer import (
    FEATURES,
    Candidates,
    Mixer,
    Signals,
    feature_rows,
    fit,
    item_context,
    sample_negatives,
    scaled,
    union_of_tops,
    user_context,
)
from refold.core.errors import ModelError


def random_signals(rng: np.random.Generator, n: int) -> Signals:
    return Signals(cf=rng.normal(size=n), session=None, content=rng.random(n),
                   trend=rng.random(n))


def test_scores_are_the_feature_rows_times_the_weights() -> None:
    rng = np.random.default_rng(0)
    m = Mixer(rng.normal(size=len(FEATURES)), intercept=0.3)
    sig = random_signals(rng, 50)
    u, item = user_context(7, 3 * 86400.0), item_context(rng.integers(0, 500, 50))
    assert np.allclose(m.scores(sig, u, item), feature_rows(sig, u, item) @ m.coef)
    some = np.array([3, 9, 20])
    assert np.allclose(feature_rows(sig.of(some), u, item[some]),
                       feature_rows(sig, u, item)[some])


def test_fit_recovers_who_trusts_which_signal() -> None:
    """Users with a history pick by collaborative filtering, newcomers by content."""
    rng = np.random.default_rng(1)
    X, y = [], []
    for _ in range(600):
        events = float(rng.choice([0, 1, 50, 100]))
        sig = random_signals(rng, 40)
        driver = sig.cf if events >= 50 else sig.content
        pos = int(np.argmax(driver + 0.1 * rng.normal(size=40)))
        items = np.r_[pos, sample_negatives(rng, pos, np.arange(40), 3)]
        X.append(feature_rows(sig.of(items), user_context(events, 0.0), np.zeros(4)))
        y += [1, 0, 0, 0]
    m = fit(np.vstack(X), np.array(y), regularization=0.01)
    assert m.weight("cf*user_events") > 1.0 and m.weight("content") > 1.0
    assert m.weight("content*user_events") < 0
    assert m.metrics["examples"] == 2400 and m.metrics["positives"] == 600
    # and it ranks: the right signal's best item comes first for either kind of user
    sig = random_signals(rng, 40)
    assert np.argmax(m.scores(sig, user_context(100, 0), np.zeros(40))) == np.argmax(sig.cf)
    assert np.argmax(m.scores(sig, user_context(0, 0), np.zeros(40))) == np.argmax(sig.content)


def test_json_round_trip_and_checks() -> None:
    m = Mixer(np.arange(len(FEATURES), dtype=float), 0.5, {"examples": 10.0})
    back = Mixer.from_json(m.to_json())
    assert back.coef.tolist() == m.coef.tolist() and back.intercept == 0.5
    assert back.metrics == {"examples": 10.0}
    with pytest.raises(ModelError, match="other features"):
        Mixer.from_json({**m.to_json(), "features": ["cf"]})
    with pytest.raises(ModelError, match="finite"):
        Mixer(np.full(len(FEATURES), np.nan))
    with pytest.raises(ModelError, match="finite"):
        Mixer(np.zeros(3))


def test_fit_needs_both_labels_and_the_right_width() -> None:
    with pytest.raises(ModelError, match="positive and negative"):
        fit(np.zeros((4, len(FEATURES))), np.ones(4))
    with pytest.raises(ModelError, match="features"):
        fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]))


def test_scaled_divides_by_the_largest_allowed_magnitude() -> None:
    s = np.array([2.0, -4.0, 1.0, -np.inf])
    assert scaled(s).tolist() == [0.5, -1.0, 0.25, 0.0]
    assert scaled(s, np.array([True, False, True, True])).tolist() == [1.0, -2.0, 0.5, 0.0]
    assert scaled(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_contexts_are_log_scaled_and_capped() -> None:
    assert user_context(0, 0).tolist() == [0.0, 0.0]
    assert user_context(1e6, 1e12).tolist() == [1.0, 1.0]
    u = user_context(9, 86400.0 * 6)
    assert u[0] == pytest.approx(math.log(10) / math.log(101))
    assert u[1] == pytest.approx(math.log(7) / math.log(366))
    assert item_context(np.array([0, 1e9])).tolist() == [0.0, 1.0]


def test_negatives_are_distinct_and_never_the_positive() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        got = sample_negatives(rng, 3, np.arange(10), 3)
        assert len(set(got.tolist())) == 3 and 3 not in got
    assert sorted(sample_negatives(rng, 0, np.array([0, 1, 2]), 5).tolist()) == [1, 2]


def test_candidates_are_the_union_of_each_signals_best() -> None:
    allowed = np.array([True] * 5 + [False])
    cf = np.array([0.9, 0.8, 0.1, 0.0, -np.inf, 5.0])
    content = np.array([0.0, 0.0, 0.0, 0.7, 0.2, 0.9])
    got = union_of_tops([(cf, 2), (content, 2)], allowed)
    assert got.tolist() == [0, 1, 3, 4]  # item 5 is not allowed; zeros say nothing
    assert union_of_tops([], allowed).tolist() == []


def test_rank_returns_catalog_items_of_the_candidates() -> None:
    c = Candidates(np.array([10, 20, 30]), Signals(cf=np.array([0.1, 0.9, 0.5])),
                   user_context(3, 0.0), np.zeros(3))
    m = Mixer(np.eye(len(FEATURES))[0])  # cf alone
    items, scores = m.rank(c, 2)
    assert items.tolist() == [20, 30] and scores.tolist() == [0.9, 0.5]
    assert np.allclose(c.rows(np.array([1])), c.rows()[1:2])
