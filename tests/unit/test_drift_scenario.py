"""A taste shift at a known event: ADWIN on the online hit stream finds it, and nothing else."""

from __future__ import annotations

import pytest

from refold.bench.drift import Scenario, evaluate

MAX_DELAY = 2_000  # events after the shift; 8 seeds measured 290 to 750


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_adwin_detects_the_shift_quickly_and_the_control_stays_quiet(seed):
    scenario = Scenario()
    r = evaluate(scenario, seed)
    assert r.hit_rate_after < r.hit_rate_before - 0.05, "the shift should cost hit rate"
    assert r.delay_events is not None and 0 <= r.delay_events <= MAX_DELAY, r
    assert r.false_alarms == 0, r
    assert r.control_detections == 0, r
