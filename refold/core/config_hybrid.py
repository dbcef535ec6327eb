"""The settings of the hybrid ranking: content, adaptive trending, the learned mixer, the
re-ranks (diversity, continuation, item age) and the bot and shill guard.

`refold.core.config.Settings` inherits them (one flat set of settings: `REFOLD_DIVERSITY`,
`diversity = 0.3` in the file ...); they live here to keep that module short.

>>> HybridSettings(diversity=0.3).diversity
0.3
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from models import defaults
from models.foldin_config import FoldInConfig

__all__ = ["HybridSettings"]

_FOLDIN = FoldInConfig()


class HybridSettings(BaseModel):
    """The hybrid ranking's knobs (the README's configuration table, Hybrid ranking)."""

    trending_adaptive: bool = Field(_FOLDIN.trending_adaptive, description=(
        "trending serves the half-life whose lists each partition's events hit most often"))
    content_text_weight: float = Field(_FOLDIN.content_text_weight, ge=0, description=(
        "content score: weight of the text cosine"))
    content_tag_weight: float = Field(_FOLDIN.content_tag_weight, ge=0, description=(
        "content score: weight of the tag Jaccard"))
    mixer: bool = Field(_FOLDIN.mixer, description=(
        "workers rank with the snapshot's learned mixer when it has one"))
    learn_mixer: bool = Field(defaults.LEARN_MIXER, description=(
        "the refitter fits the mixer on a replay of recent events and ships it"))
    mixer_window_events: int = Field(defaults.MIXER_WINDOW_EVENTS, ge=1, description=(
        "recent events the refitter replays to fit the mixer"))
    mixer_scored_events: int = Field(defaults.MIXER_SCORED_EVENTS, ge=1, description=(
        "positive events of a replay, at most, that become mixer examples"))
    diversity: float = Field(_FOLDIN.diversity, ge=0, le=1, description=(
        "strength of the maximal-marginal-relevance re-rank over categories; 0: off"))
    diversity_depth: int = Field(_FOLDIN.diversity_depth, ge=1, description=(
        "items ranked before the diversity re-rank picks a list from them"))
    continuation_seconds: float = Field(_FOLDIN.continuation_seconds, ge=0, description=(
        "bookmarked or carted items not bought come back in reserved slots this long; 0: off"))
    continuation_slots: int = Field(_FOLDIN.continuation_slots, ge=0, description=(
        "reserved slots for bookmarked or carted items"))
    continuation_position: int = Field(_FOLDIN.continuation_position, ge=0, description=(
        "first reserved slot (0: the top)"))
    max_item_age_seconds: float | None = Field(_FOLDIN.max_item_age_seconds, gt=0, description=(
        "items created longer ago are not recommended; unset: no limit"))
    guard: bool = Field(_FOLDIN.guard, description=(
        "cap what one user adds to the shared trending and co-visit counts"))
    guard_repeat_seconds: float = Field(_FOLDIN.guard_repeat_seconds, gt=0, description=(
        "the guard counts one vote per user, item and this period"))
    guard_window_seconds: float = Field(_FOLDIN.guard_window_seconds, gt=0, description=(
        "the window of guard_max_per_window"))
    guard_max_per_window: int = Field(_FOLDIN.guard_max_per_window, ge=0, description=(
        "positive events per user and window that count for others (0: no cap)"))
    guard_min_events: int = Field(_FOLDIN.guard_min_events, ge=3, description=(
        "events the automated-behaviour verdict looks at"))
    guard_bot_weight: float = Field(_FOLDIN.guard_bot_weight, ge=0, le=1, description=(
        "share of an automated-looking user's events that counts for others"))
