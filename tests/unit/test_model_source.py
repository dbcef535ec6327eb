"""The worker's fold-in settings: what `foldin_config` builds from default `Settings` (no broker).

`FoldInConfig` and `Settings` share field names, and both carry defaults; in the worker,
`consumers.model_source.foldin_config` gives Settings' values precedence. The two sets of
defaults must agree (the evaluation and the docs use FoldInConfig's, the worker Settings'), and
the worker must run with the values the README documents.
"""

from __future__ import annotations

import dataclasses

import pytest

from consumers.model_source import foldin_config
from models.recommender import FoldInConfig
from refold.core.config import Settings

DOCUMENTED: dict[str, object] = {
    "k": 20,  # Configuration table
    "decay": "events",  # Configuration table
    "alpha": 2.0,  # "the searched values (32 factors, λ = 5, alpha 2, half-life 10 events, ...)"
    "regularization": 5.0,  # λ, ibid.
    "half_life_events": 10.0,  # ibid.
    "trending_half_life_seconds": 7 * 86400.0,  # "a week's trending half-life", ibid.
    "history_size": 50,  # "the user's bounded history ...: the last 50 events"
    "half_life_seconds": 3600.0,  # Configuration table (read by `decay = time` only)
    "ann_min_items": 200_000,  # Configuration table
    "exclude_types": frozenset({"purchase", "rating"}),  # "consumed items (purchases and ratings
    # by default)", and the Configuration table
    "full_events": 20,  # "`full_events` (20 in the worker)", and the Configuration table
    "shrink": 5.0,  # Configuration table (the cold-start ramp n / (n + shrink))
    "min_events": 1,  # Configuration table
    "session_weight": 1.0,  # "session weight 1"
    "content_weight": 0.5,  # Configuration table
    "exploration": "plackett_luce",  # Configuration table, and "Closing the loop"
    "exploration_epsilon": 0.1,  # Configuration table
    "exploration_temperature": 0.05,  # Configuration table
    "exploration_candidates": 0,  # Configuration table ("0: 2 × k")
    "exposure_min_count": 1,  # Configuration table
    "exposure_strength": 1.0,  # Configuration table ("0: off")
    "attribution_window_seconds": 3600.0,  # Configuration table
    # the hybrid ranking's knobs, Configuration table
    "trending_adaptive": True,
    "content_text_weight": 0.4,
    "content_tag_weight": 0.6,
    "mixer": True,
    "diversity": 0.0,
    "diversity_depth": 50,
    "continuation_seconds": 7 * 86400.0,
    "continuation_slots": 1,
    "continuation_position": 0,
    "max_item_age_seconds": None,
    "guard": True,
    "guard_repeat_seconds": 86400.0,
    "guard_window_seconds": 3600.0,
    "guard_max_per_window": 0,
    "guard_min_events": 20,
    "guard_bot_weight": 0.0,
}
"""The worker's fold-in defaults as the README states them."""


def shared_fields() -> set[str]:
    """The `FoldInConfig` fields that `Settings` has too, so that the worker takes from it."""
    return {f.name for f in dataclasses.fields(FoldInConfig)} & set(Settings.model_fields)


def test_every_shared_field_is_documented() -> None:
    assert shared_fields() == DOCUMENTED.keys()


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_fold_in_config_and_settings_default_alike(name: str) -> None:
    assert getattr(FoldInConfig(), name) == getattr(Settings(), name)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_the_worker_runs_with_the_documented_default(name: str) -> None:
    assert getattr(foldin_config(Settings()), name) == DOCUMENTED[name]


def test_event_weights_reach_the_fold_in() -> None:
    settings = Settings(event_weights={"view": 0.05, "dismiss": -2.0})
    weights = foldin_config(settings).weights
    assert (weights.weight("view"), weights.weight("dismiss"), weights.weight("click")) == (
        0.05, -2.0, 0.3)


def test_time_decay_needs_no_other_setting() -> None:
    config = foldin_config(Settings(decay="time"))
    assert config.decay_spec().half_life == 3600.0
