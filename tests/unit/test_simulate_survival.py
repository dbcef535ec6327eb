"""Time to first conversion over every new customer: Kaplan-Meier against closed forms, and the
shop's tally using it."""

from __future__ import annotations

import numpy as np
import pytest

from refold.simulate.survival import KaplanMeier, restricted_mean_interval
from refold.simulate.tally import Tally


def test_without_censoring_it_is_the_empirical_distribution() -> None:
    rng = np.random.default_rng(0)
    t = rng.exponential(100.0, 501)
    km = KaplanMeier(t, np.ones(len(t), dtype=bool))
    grid = np.linspace(0, 400, 41)
    assert km.survival(grid) == pytest.approx([np.mean(t > g) for g in grid])
    assert km.km_median() == pytest.approx(np.median(t))  # odd n: the middle one
    assert km.restricted_mean(t.max() + 1) == pytest.approx(t.mean())
    assert km.restricted_mean(50.0) == pytest.approx(np.minimum(t, 50.0).mean())


def test_censored_customers_leave_the_risk_set_without_converting() -> None:
    # 1 converts at 10; 2 is censored at 15; 3 and 4 convert at 20 and 30; 5 censored at 40
    km = KaplanMeier(np.array([10.0, 15.0, 20.0, 30.0, 40.0]),
                     np.array([True, False, True, True, False]))
    s1 = 4 / 5
    s2 = s1 * (1 - 1 / 3)
    s3 = s2 * (1 - 1 / 2)
    assert km.survival(np.array([0.0, 10.0, 19.0, 20.0, 30.0, 99.0])).tolist() == \
        pytest.approx([1.0, s1, s1, s2, s3, s3])
    assert km.km_median() == 30.0  # s2 = 0.533 > 0.5 >= s3
    assert km.restricted_mean(35.0) == pytest.approx(10 + 10 * s1 + 10 * s2 + 5 * s3)
    assert km.converted_by(35.0) == pytest.approx(1 - s3)


def test_the_median_is_none_when_fewer_than_half_are_seen_converting() -> None:
    km = KaplanMeier(np.array([5.0, 50.0, 50.0]), np.array([True, False, False]))
    assert km.km_median() is None
    assert km.restricted_mean(50.0) == pytest.approx(5 + 45 * 2 / 3)


def test_the_bootstrap_interval_holds_the_estimate() -> None:
    rng = np.random.default_rng(1)
    t = rng.exponential(100.0, 300)
    done = t < 250
    t = np.minimum(t, 250)
    low, high = restricted_mean_interval(t, done, 200.0)
    est = KaplanMeier(t, done).restricted_mean(200.0)
    assert low < est < high and high - low < 0.3 * est


def _tally(buyers: dict[int, float], customers: int) -> dict:
    t = Tally(shown=3, catalog_size=10, end=1000.0, horizon=500.0)
    for u in range(customers):
        t.arrival(u, 0.0)
    for u, at in buyers.items():
        t.conversion(u, at)
    return t.result()


def test_converting_more_customers_counts_even_when_the_buyers_median_does_not_move() -> None:
    few = _tally({0: 100.0, 1: 200.0, 2: 300.0}, customers=10)
    more = _tally({0: 100.0, 1: 200.0, 2: 300.0, 3: 200.0, 4: 200.0, 5: 50.0},
                  customers=10)
    assert few["ttfc_seconds_median"] == more["ttfc_seconds_median"] == 200
    assert more["ttfc_restricted_mean_seconds"] < few["ttfc_restricted_mean_seconds"]
    assert few["ttfc_restricted_mean_seconds"] == pytest.approx((100 + 200 + 300 + 7 * 500) / 10)
    assert more["ttfc_km_median_seconds"] == 200.0 and few["ttfc_km_median_seconds"] is None
    assert more["ttfc_converted_by_horizon"] == 0.6 and more["new_users"] == 10


def test_customers_are_censored_at_the_end_of_the_run() -> None:
    t = Tally(shown=3, catalog_size=10, end=1000.0, horizon=500.0)
    t.arrival(0, 0.0)
    t.arrival(1, 900.0)  # followed for 100 s only: censored, not a non-buyer at 500 s
    t.conversion(0, 400.0)
    r = t.result()
    assert r["ttfc_km_median_seconds"] == 400.0 and r["ttfc_converted_by_horizon"] == 1.0
    assert r["ttfc_restricted_mean_seconds"] == pytest.approx(400.0)
