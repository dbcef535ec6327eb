"""The simulated shop's variants: each one's settings are valid settings, and each differs from
the logging variant in what its name says."""

from __future__ import annotations

from refold.core.config import Settings
from refold.simulate.run import LOGGING, variants

EXPLORATION = {"exploration", "exploration_epsilon", "exploration_temperature",
               "exploration_candidates"}


def test_every_variant_is_a_valid_change_of_the_settings() -> None:
    base = Settings()
    chosen = variants(base)
    assert len({v.name for v in chosen}) == len(chosen)
    assert chosen[0].name == LOGGING and not chosen[0].settings
    for v in chosen:
        changed = base.replace(**v.settings)
        assert all(getattr(changed, k) == val for k, val in v.settings.items()), v.name


def test_candidates_differ_only_in_exploration_or_the_shops_re_ranking() -> None:
    """Off-policy estimates re-apply a candidate's exploration, and re-ranking of the logged
    candidates, to the logging run's lists."""
    chosen = variants(Settings())
    for v in chosen:
        if v.candidate:
            assert set(v.settings) <= EXPLORATION and not v.fold_in and v.shop is None, v.name
        else:
            assert v.rerank is None, v.name
    assert sum(v.rerank is not None for v in chosen if v.candidate) >= 2
    named = {v.name for v in chosen if not v.default}  # re-rankings and the blend: when named
    assert named == {v.name for v in chosen if v.rerank is not None} | {"refold-no-mixer"}


def test_the_mixer_runs_next_to_the_hand_set_blend() -> None:
    base = Settings()
    assert base.mixer and base.learn_mixer  # the logging variant ranks with the mixer
    off = {v.name: v for v in variants(base)}["refold-no-mixer"]
    changed = base.replace(**off.settings)
    assert not changed.mixer and not changed.learn_mixer
    assert set(off.settings) == {"mixer", "learn_mixer"} and not off.candidate
    assert not off.default  # one pipeline more: only when named
