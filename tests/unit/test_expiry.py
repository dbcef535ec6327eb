"""Expiry by event time: one formula for the lazy check and the sweep, monotone in the watermark."""

from __future__ import annotations

import random

import pytest

from models.expiry import Horizon


def test_expired_is_exactly_a_bucket_below_the_first_live_one() -> None:
    rng = random.Random(1)
    h = Horizon(86400.0)
    for _ in range(20_000):
        t = 1.7e9 + rng.uniform(0, 30 * 86400)
        w = t + rng.uniform(0, 3 * 86400)
        assert h.expired(t, w) == (h.bucket(t) < h.first_live_bucket(w))


def test_expiry_is_monotone_in_the_watermark_and_not_before_the_horizon() -> None:
    h = Horizon(3600.0, granularity=12)  # 5-minute buckets
    t = 1_700_000_123.0
    ws = [t + s for s in range(0, 3600 + 600, 7)]
    flags = [h.expired(t, w) for w in ws]
    assert flags == sorted(flags)  # once expired, expired for good
    first = ws[flags.index(True)]
    assert 3600 <= first - t <= 3600 + h.width  # within one bucket after the horizon


def test_a_zero_horizon_never_forgets_and_bad_horizons_are_refused() -> None:
    assert not Horizon(0.0).expired(0.0, 1e15)
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            Horizon(bad)


def test_expired_written_out_agrees_with_the_bucket_formula() -> None:
    """`Horizon.expired` computes `bucket(t) < first_live_bucket(watermark)` inline: the same
    answer at and around every bucket boundary (floating point included)."""
    import math

    rng = random.Random(3)
    for horizon in (Horizon(0.0), Horizon(86400.0), Horizon(90 * 86400.0), Horizon(100.0, 7)):
        for _ in range(3000):
            w = rng.uniform(8e8, 9e8)
            edge = (horizon.first_live_bucket(w) * horizon.width) if horizon.forgets else w
            t = rng.choice([edge, math.nextafter(edge, 0), math.nextafter(edge, math.inf),
                            rng.uniform(w - 2 * horizon.seconds - 1, w)])
            for mark in (w, -math.inf):
                expected = horizon.forgets and horizon.bucket(t) < horizon.first_live_bucket(mark)
                assert horizon.expired(t, mark) == expected, (horizon, t, mark)
