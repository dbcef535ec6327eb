"""`refold bench batch`: the worker's batch CPU without the broker, on real ml-100k events."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from refold.cli import cli
from refold.cli import commands as _commands  # noqa: F401  (registers the commands)

ML100K = Path(os.environ.get(
    "REFOLD_ML100K", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "ml-100k"))


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_bench_batch_prints_each_mode_and_the_ratio(tmp_path: Path) -> None:
    prof = tmp_path / "worker.prof"
    result = CliRunner().invoke(cli, ["bench", "batch", "--path", str(ML100K), "--events",
                                      "3000", "--rounds", "1", "--profile", str(prof),
                                      "--profile-stores", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output[result.output.index("{"):])
    assert set(r["modes"]) == {"worker", "worker, local stores", "worker, exploration none",
                               "pass-through"}
    assert r["events"] == 3000
    assert r["modes"]["worker"]["lists"] == r["modes"]["worker, exploration none"]["lists"] > 0
    assert r["modes"]["worker"]["changelog_bytes_per_event"] > 0
    # the stores publish the same lists (same exploration) and write the same users
    assert r["modes"]["worker, local stores"]["lists"] == r["modes"]["worker"]["lists"]
    assert 0 < r["stores_to_memory"] == pytest.approx(
        r["modes"]["worker, local stores"]["events_per_cpu_s"] / r["worker_events_per_cpu_s"],
        abs=6e-5)
    # the ratios are printed to four decimals: equal to the quotient within that rounding
    # (half a unit of the last decimal, and a hair more for the binary representation)
    assert 0 < r["ratio_to_passthrough"] == pytest.approx(
        r["worker_events_per_cpu_s"] / r["passthrough_events_per_cpu_s"], abs=6e-5)
    assert prof.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_bench_batch_on_a_grown_catalog_ranks_with_the_index() -> None:
    """`--items` past `ann_min_items`: the catalog grows, the worker ranks with the index (built
    once, a copy per run) and publishes as many lists as on the fitted catalog."""
    pytest.importorskip("faiss", reason="the ann extra is not installed")
    args = ["bench", "batch", "--path", str(ML100K), "--events", "2000", "--rounds", "1",
            "--json"]
    runs = {}
    for name, extra in (("grown", ["--items", "6000", "--fold-in", "ann_min_items=5000"]),
                        ("fitted", [])):
        result = CliRunner().invoke(cli, [*args, *extra])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads(result.output[result.output.index("{"):])
    grown, fitted = runs["grown"], runs["fitted"]
    assert grown["items"] == 6000 and grown["ann"] is True
    assert grown["synthetic_items"] == 6000 - fitted["items"] > 0
    assert (fitted["synthetic_items"], fitted["ann"]) == (0, False)
    assert grown["modes"]["worker"]["lists"] == fitted["modes"]["worker"]["lists"] > 0


@pytest.mark.slow
def test_bench_batch_on_the_synthetic_world_needs_no_dataset(tmp_path: Path) -> None:
    """`--dataset synth` replays the synthetic world (no ml-100k directory needed), whose users
    interleave: a list for every few events, where ml-100k's runs of one user give one for
    every few dozen."""
    result = CliRunner().invoke(cli, ["bench", "batch", "--dataset", "synth", "--path",
                                      str(tmp_path / "none"), "--events", "3000", "--rounds",
                                      "1", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.output[result.output.index("{"):])
    assert (r["dataset"], r["events"]) == ("synth", 3000)
    lists = r["modes"]["worker"]["lists"]
    assert lists == r["modes"]["worker, local stores"]["lists"]
    assert lists / r["events"] > 0.1
    assert "3,000 synth events" in CliRunner().invoke(cli, [
        "bench", "batch", "--dataset", "synth", "--events", "3000", "--rounds", "1"]).output


@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_bench_batch_refuses_to_shrink_the_catalog() -> None:
    result = CliRunner().invoke(cli, ["bench", "batch", "--path", str(ML100K), "--events",
                                      "500", "--items", "10"])
    assert result.exit_code == 2 and "below the" in result.output


def test_bench_batch_refuses_a_missing_dataset(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "batch", "--path", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "no ml-100k directory" in result.output


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"no ml-100k at {ML100K}")
def test_bench_batch_fold_in_changes_reach_every_worker_mode() -> None:
    """`--fold-in session_weight=0` runs the workers without session co-visits: none of the
    co-visit rows reach the changelog, so each mode writes fewer bytes per event."""
    def run(*extra: str) -> dict:
        result = CliRunner().invoke(cli, ["bench", "batch", "--path", str(ML100K), "--events",
                                          "3000", "--rounds", "1", "--json", *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.output[result.output.index("{"):])

    default, without = run(), run("--fold-in", "session_weight=0")
    assert default["fold_in"] == {} and without["fold_in"] == {"session_weight": 0}
    for mode in ("worker", "worker, local stores", "worker, exploration none"):
        assert (without["modes"][mode]["changelog_bytes_per_event"]
                < default["modes"][mode]["changelog_bytes_per_event"]), mode


@pytest.mark.parametrize("bad", ["nonsense=1", "exploration=bogus", "session_weight",
                                 "session_weight=x", "k=2.5"])
def test_bench_batch_refuses_a_bad_fold_in_setting_before_it_runs(tmp_path: Path, bad) -> None:
    result = CliRunner().invoke(cli, ["bench", "batch", "--path", str(tmp_path),
                                      "--fold-in", bad])
    assert result.exit_code == 2, result.output
    assert "--fold-in" in result.output
