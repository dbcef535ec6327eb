"""The fold-in benchmark compares like with like: refold's lists equal implicit's."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from models.ann import AnnConfig
from models.errors import ModelError
from models.foldin_config import FoldInConfig
from refold.bench import foldin
from refold.cli import cli
from refold.cli import commands as _commands  # noqa: F401  (registers the commands)


@pytest.mark.slow
def test_refold_top_k_equals_implicit_recalculate_user_per_event_and_batched():
    r = foldin.run(items=1500, factors=16, events=300, k=10, river_events=5)
    assert r["topk_match_rate_per_event"] == 1.0
    assert r["topk_match_rate_batched"] == 1.0
    for key in ("items", "factors", "refold_events_per_s", "implicit_events_per_s",
                "river_events_per_s", "topk_match_rate"):
        assert r[key] > 0


def test_ann_settings_reach_the_index_and_bad_ones_are_refused():
    """`--ann-setting` sets the index's build (threads, beam) and search; the results say which."""
    out = CliRunner().invoke(cli, [
        "bench", "foldin", "--items", "3000", "--factors", "8", "--events", "60", "--ann",
        "--no-baselines", "--json", "--ann-setting", "ann_build_threads=2",
        "--ann-setting", "ann_ef_construction=24", "--ann-setting", "ann_ef_search=150"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout)
    assert (r["ann_build_threads"], r["ann_ef_construction"], r["ann_ef_search"]) == (2, 24, 150)
    assert 0 < r["ann_recall_at_20"] <= 1 and r["ann_build_wall_seconds"] > 0
    for bad in ("ann_min_items=5", "ann_build_threads=0", "ann_beam=3", "ann_ef_search=x"):
        out = CliRunner().invoke(cli, ["bench", "foldin", "--items", "3000", "--ann",
                                       "--ann-setting", bad])
        assert out.exit_code == 2 and "--ann-setting" in out.output, (bad, out.output)


def test_index_settings_below_one_are_refused():
    with pytest.raises(ModelError, match="build_threads"):
        AnnConfig(build_threads=0)
    with pytest.raises(ModelError, match="ef_construction"):
        FoldInConfig(ann_ef_construction=0)  # when the configuration is made
