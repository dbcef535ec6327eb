"""`refold bench drift`: detection delay and false alarms of the hit-rate drift detector."""

from __future__ import annotations

import click

from refold.cli.bench import bench, emit


@bench.command("drift")
@click.option("--seeds", type=int, default=5, show_default=True, help="Seeds 0..N-1.")
@click.option("--events", type=int, default=24_000, show_default=True)
@click.option("--drift-at", type=int, default=16_000, show_default=True)
@click.option("--fit-events", type=int, default=8_000, show_default=True)
@click.option("--drift-share", type=float, default=1.0, show_default=True,
              help="Share of users whose tastes are redrawn at the shift.")
@click.option("--drift-trend", type=float, default=0.0, show_default=True,
              help="Pull of every user toward one category at the shift.")
@click.option("--taste", type=float, default=4.0, show_default=True,
              help="Weight of taste (vs popularity) in the synthetic users' choices.")
@click.option("--delta", type=float, default=0.002, show_default=True, help="ADWIN's delta.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_drift(seeds: int, events: int, drift_at: int, fit_events: int, drift_share: float,
                drift_trend: float, taste: float, delta: float, as_json: bool) -> None:
    """A taste shift at a known event: ADWIN's delay, and its false alarms in a control run."""
    from refold.bench import drift

    scenario = drift.Scenario(events=events, drift_at=drift_at, fit_events=fit_events,
                              drift_share=drift_share, drift_trend=drift_trend, taste=taste,
                              adwin_delta=delta)
    results = [drift.evaluate(scenario, seed) for seed in range(seeds)]
    emit(drift.as_dict(results, scenario), as_json, drift.table(results, scenario))
