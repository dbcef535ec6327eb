"""Drift statistics: divergences, ADWIN on hits, Page-Hinkley on a scalar, churn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.drift import (
    DistributionDrift,
    HitRateDrift,
    MeanShiftDrift,
    SnapshotChurn,
    js_divergence,
    psi,
    topk_overlap,
)


def test_psi_is_zero_for_equal_histograms_and_symmetric():
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    assert psi([90, 10], [10, 90]) == pytest.approx(psi([10, 90], [90, 10]))
    assert psi([50, 50], [60, 40]) < 0.1 < psi([50, 50], [90, 10])


def test_psi_is_finite_when_a_bin_empties():
    value = psi([50, 50, 0], [0, 50, 50])
    assert math.isfinite(value) and value > 1.0


def test_js_divergence_bounds():
    assert js_divergence([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert js_divergence([5, 0], [0, 5]) == pytest.approx(1.0)
    assert 0.0 < js_divergence([6, 4], [4, 6]) < 0.1


def test_topk_overlap():
    assert topk_overlap(list("abcd"), list("dcba")) == 1.0
    assert topk_overlap(list("ab"), list("cd")) == 0.0
    assert topk_overlap([], []) == 1.0


def test_adwin_finds_a_drop_and_says_so():
    rng = np.random.default_rng(0)
    hits = np.concatenate([rng.random(3000) < 0.3, rng.random(3000) < 0.1])
    d = HitRateDrift()
    d.update_many(hits.tolist())
    assert d.drops >= 1 and d.first_detection_at >= 3000
    assert d.first_detection_at < 3600  # a 0.3 -> 0.1 drop is plain within a few hundred events
    assert d.statistic == pytest.approx(0.1, abs=0.05)


def test_adwin_calls_a_rise_a_rise():
    rng = np.random.default_rng(1)
    d = HitRateDrift()
    d.update_many((np.concatenate([rng.random(2000) < 0.1, rng.random(2000) < 0.4])).tolist())
    assert d.detections >= 1 and d.drops == 0 and d.direction == 1


def test_adwin_is_quiet_on_a_stationary_stream():
    rng = np.random.default_rng(2)
    d = HitRateDrift()
    assert d.update_many((rng.random(20_000) < 0.2).tolist()) == 0
    assert d.first_detection_at is None and d.width == 20_000


def test_page_hinkley_detects_a_mean_shift_and_exposes_its_statistic():
    rng = np.random.default_rng(3)
    d = MeanShiftDrift(threshold=20.0)
    d.update_many(rng.normal(1.0, 0.1, 300))
    quiet = d.statistic
    assert d.detections == 0 and quiet < 20.0
    d.update_many(rng.normal(2.0, 0.1, 100))
    assert d.detections == 1 and d.first_detection_at >= 300
    assert not d.update(float("nan"))  # skipped, not a crash


def test_distribution_drift_waits_for_full_windows_then_counts_a_shift_once():
    d = DistributionDrift(window=200, bins=5, threshold=0.25)
    rng = np.random.default_rng(4)
    assert d.update_many(rng.choice(["view", "click"], 300, p=[0.8, 0.2]).tolist()) == 0
    assert not d.ready
    assert d.update_many(rng.choice(["view", "click"], 200, p=[0.8, 0.2]).tolist()) == 0
    assert d.ready and d.psi < 0.1
    assert d.update_many(rng.choice(["view", "click"], 200, p=[0.2, 0.8]).tolist()) == 1
    assert d.psi > 0.25 and d.js > 0.1
    assert d.update_many(rng.choice(["view", "click"], 50, p=[0.2, 0.8]).tolist()) == 0
    assert d.detections == 1


def test_distribution_drift_sees_mass_moving_to_items_outside_the_reference_bins():
    d = DistributionDrift(window=100, bins=3)
    d.update_many(["a", "b"] * 50)
    d.update_many(["a", "b"] * 50)
    assert d.psi == pytest.approx(0.0)
    d.update_many([f"new{i}" for i in range(100)])
    ref, cur = d.histograms()
    assert ref[-1] == 0 and cur[-1] == 100 and d.detections == 1


def test_distribution_drift_rebase_starts_a_new_reference():
    d = DistributionDrift(window=10, bins=3)
    d.update_many(["a"] * 20)
    d.rebase()
    assert not d.ready and d.psi == 0.0
    d.update_many(["b"] * 20)
    assert d.ready and d.psi == pytest.approx(0.0)


def test_snapshot_churn_compares_consecutive_versions_only():
    c = SnapshotChurn(sample_size=10, threshold=0.5, min_compared=2)
    for u in ("u1", "u2", "u3"):
        c.observe(u, 1, ["a", "b"])
    assert c.statistic == 0.0 and c.transitions == 0
    assert not c.observe("u1", 2, ["x", "y"])
    assert c.observe("u2", 2, ["x", "y"])  # two users compared, churn 1.0 > 0.5
    c.observe("u2", 2, ["a", "b"])  # a second list under the same version is not compared
    assert c.compared == 2 and c.statistic == 1.0 and c.detections == 1
    c.observe("u3", 3, ["a", "b"])  # u3 had no list under version 2
    assert c.version == 3 and c.compared == 0 and c.transitions == 2


def test_snapshot_churn_keeps_its_sample_bounded():
    c = SnapshotChurn(sample_size=2)
    for u in range(5):
        c.observe(u, 1, ["a"])
    assert c.sampled == 2
