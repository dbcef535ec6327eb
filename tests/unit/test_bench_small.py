"""Benchmarks that need no broker, run small through the CLI: each prints its figures as JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refold.cli import cli
from refold.cli import commands as _commands  # noqa: F401  (registers the commands)


def bench(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["bench", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


def test_serde_compares_libraries_on_the_same_messages() -> None:
    r = bench("serde", "--messages", "2000")
    assert r["messages"] == 2000 and r["bytes_per_message"] > 0 and len(r["libraries"]) >= 2


def test_exploration_times_every_policy_against_none() -> None:
    r = bench("exploration", "--lists", "30")
    assert r["lists"] == 30 and "none" in r["policies"]
    assert all(v > 0 for v in r["ratio_to_none"].values())


def test_similar_items_graph_against_the_exact_scan() -> None:
    r = bench("similar", "--items", "2000", "--sample", "50")
    assert r["items"] == 2000 and 0.5 < r["recall_at_k"] <= 1.0 and r["exact_s"] > 0


@pytest.mark.slow
def test_republish_with_and_without_each_users_list() -> None:
    r = bench("republish", "--users", "300", "--events", "2000", "--rank-users", "30")
    assert r["events"] == 2000 and 0 < r["ratio"] < 2
    assert r["record_bytes_with_lists"] > r["record_bytes_without_lists"] > 0
