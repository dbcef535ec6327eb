"""`FoldInConfig`: the settings of `models.recommender.OnlineRecommender` that do not depend on the
item factors (decay, cold start, exclusions, the session blend, ...).

Field names are those of `refold.core.config.Settings` where both have the field, from which
`consumers.model_source.foldin_config` builds the worker's configuration; the defaults of both
come from `models.defaults`.

>>> FoldInConfig.from_mapping({"k": 10, "decay": "none"}).decay_spec().mode
'none'

Each setting is checked against its type when a configuration is made, so a bad value is
refused where it is given rather than inside a run (a whole number passes where a float is
expected, never the other way round, and a bool is not a number):

>>> FoldInConfig(session_weight="x")
Traceback (most recent call last):
    ...
models.errors.ModelError: fold-in setting session_weight='x': expected float
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from models import defaults
from models.ann import AnnConfig
from models.decision import Demotion
from models.errors import ModelError
from models.exploration import Policy
from models.feedback import FeedbackConfig
from models.guard import GuardConfig
from models.history import Decay
from models.weights import EventWeights


@dataclass(frozen=True)
class FoldInConfig:
    """Settings that do not depend on the factors; names and defaults match
    `refold.core.config.Settings` where both have them (`models.defaults`)."""

    alpha: float = defaults.ALPHA
    regularization: float = defaults.REGULARIZATION
    decay: Literal["events", "time", "none"] = defaults.DECAY  # type: ignore[assignment]
    half_life_events: float = defaults.HALF_LIFE_EVENTS
    half_life_seconds: float = defaults.HALF_LIFE_SECONDS
    session_boost: float = 1.0
    k: int = defaults.K
    history_size: int = defaults.HISTORY_SIZE
    max_age_seconds: float | None = None
    max_excluded: int = 1000
    shrink: float = 5.0
    min_events: int = 1
    full_events: int | None = 20
    blend_depth: int = 200
    content_weight: float = 0.5
    """Share of what collaborative filtering leaves that the content list gets in the
    hand-set blend (the rest goes to popularity)."""
    content_text_weight: float = defaults.CONTENT_TEXT_WEIGHT
    content_tag_weight: float = defaults.CONTENT_TAG_WEIGHT
    """A user-item content score is text_weight · text cosine + tag_weight · tag Jaccard."""
    mixer: bool = True
    """Rank with the learned mixer of the served snapshot when it has one (`models.mixer`);
    off, or without one, the hand-set blend ranks."""
    mixer_depth: int = 200
    """Candidates the mixer re-ranks from the hand-set blend ..."""
    mixer_side_depth: int = 50
    """... and from content similarity and from trending, each."""
    max_item_age_seconds: float | None = None
    """Items created longer ago than this (`Item.created_at`) are not recommended (None: no
    limit; an item leaves within the hour after it reaches the age)."""
    diversity: float = 0.0
    """Strength of the maximal-marginal-relevance re-rank (`models.diversity`), 0 (off) to 1."""
    diversity_depth: int = 50
    """Items ranked before the re-rank picks a list's k from them."""
    diversity_by: Literal["categories", "factors"] = "categories"
    continuation_seconds: float = defaults.CONTINUATION_SECONDS
    """Bookmarked or carted items not bought come back in reserved slots for this long
    (`models.continuation`; 0: off)."""
    continuation_slots: int = 1
    continuation_position: int = 0
    """First reserved slot (0: the top of the list)."""
    max_profiles: int = 1_000_000
    """Users' declared profiles kept (the least recently updated are forgotten first)."""
    exclude_types: frozenset[str] = frozenset({"purchase", "rating"})
    """Event types whose item is consumed: never recommended to that user again."""
    trending_half_life_seconds: float = defaults.TRENDING_HALF_LIFE_SECONDS
    """Half-life of the trending counts when `trending_adaptive` is off."""
    trending_adaptive: bool = True
    """Serve the half-life of `trending_half_lives` whose lists the partition's own events hit
    most often (`models.adaptive_trending`) instead of a fixed one."""
    trending_half_lives: tuple[float, ...] = defaults.TRENDING_HALF_LIVES
    max_item_users: int = 1000
    session_weight: float = defaults.SESSION_WEIGHT
    """Weight of the session co-visitation blend (`models.covisit`); 0 turns it off."""
    session_window: int = 10
    """Previous positive events of the user that an event is co-visited with."""
    session_decay: float = 0.8
    """Co-visit count of a pair g events apart: decay^g (g = 0 for adjacent events)."""
    session_items: int = 10
    session_half_life: float = defaults.SESSION_HALF_LIFE
    """The user's last `session_items` positive items make the session, weighted by a recency
    half-life in events."""
    max_neighbors: int = 256
    """Co-visited neighbours kept per item (and partition)."""
    session_refresh_events: int = 500
    """Events of a partition between applications of its buffered co-visits."""
    cold_refresh_events: int = 1
    """Events of a partition between refreshes of its new items' vectors (counted, not timed:
    results do not depend on batch boundaries)."""
    ann_min_items: int = defaults.ANN_MIN_ITEMS
    """Catalog size from which pure-CF lists come from approximate candidates (`models.ann`),
    re-scored exactly, instead of a scan of every item; 0 never (needs the `ann` extra)."""
    ann_candidates: int = defaults.ANN_CANDIDATES
    """Candidates per user before exact re-scoring (plus the user's excluded items)."""
    ann_ef_search: int = defaults.ANN_EF_SEARCH
    """Search beam of the index: recall against speed (see docs/performance.md, large catalogs)."""
    ann_ef_construction: int = defaults.ANN_EF_CONSTRUCTION
    """Build beam of the index: a better graph against a longer build (each snapshot's)."""
    ann_build_threads: int = 1
    """Threads that build each snapshot's index (off the processing thread; more only where
    the worker has cores to spare)."""
    weights: EventWeights = field(default_factory=EventWeights)
    guard: bool = True
    """Cap what one user adds to the shared trending and co-visit counts (`models.guard`)."""
    guard_repeat_seconds: float = defaults.GUARD_REPEAT_SECONDS
    guard_window_seconds: float = defaults.GUARD_WINDOW_SECONDS
    guard_max_per_window: int = 0
    guard_min_events: int = defaults.GUARD_MIN_EVENTS
    guard_max_rate_per_minute: float = 60.0
    guard_min_gap_cv: float = 0.3
    guard_regular_rate_per_minute: float = 2.0
    guard_min_breadth: float = 0.15
    guard_bot_weight: float = 0.0

    def guard_config(self) -> GuardConfig:
        """The `guard_*` settings as `models.guard` takes them."""
        return GuardConfig(
            enabled=self.guard, window_seconds=self.guard_window_seconds,
            max_per_window=self.guard_max_per_window, repeat_seconds=self.guard_repeat_seconds,
            min_events=self.guard_min_events, max_rate_per_minute=self.guard_max_rate_per_minute,
            min_gap_cv=self.guard_min_gap_cv,
            regular_rate_per_minute=self.guard_regular_rate_per_minute,
            min_breadth=self.guard_min_breadth, bot_weight=self.guard_bot_weight)

    exploration: str = defaults.EXPLORATION
    """The policy that draws each list from the ranked candidates (`models.exploration`)."""
    exploration_epsilon: float = defaults.EXPLORATION_EPSILON
    exploration_temperature: float = defaults.EXPLORATION_TEMPERATURE
    exploration_candidates: int = defaults.EXPLORATION_CANDIDATES
    exposure_min_count: int = defaults.EXPOSURE_MIN_COUNT
    exposure_strength: float = defaults.EXPOSURE_STRENGTH
    """Exposure feedback (`models.exposure`): 0 turns it off."""
    exposure_max_items: int = 100
    """Items whose unanswered impressions are counted per user (the least recent go)."""
    attribution_window_seconds: float = defaults.ATTRIBUTION_WINDOW_SECONDS
    attribution_max_slots: int = 50
    """Shown slots remembered per user for attribution (the oldest go)."""

    def __post_init__(self) -> None:
        for name, hint in _hints().items():
            value = getattr(self, name)
            if not _fits(value, hint):
                raise ModelError(f"fold-in setting {name}={value!r}: expected {_describe(hint)}")
        self.policy()  # refuse a bad exploration policy when the configuration is made
        self.demotion()
        self.ann_config()  # and bad index settings, not at a snapshot's build

    def policy(self) -> Policy:
        """The exploration policy."""
        return Policy(self.exploration, self.exploration_epsilon, self.exploration_temperature,
                      self.exploration_candidates)

    def demotion(self) -> Demotion:
        return Demotion(self.exposure_min_count, self.exposure_strength)

    def feedback(self) -> FeedbackConfig:
        return FeedbackConfig(self.attribution_window_seconds, self.attribution_max_slots,
                              self.exposure_max_items)

    def depth(self) -> int:
        """Candidates ranked per list: what the policy draws from, and room to replace
        demoted items when exposure feedback is on."""
        return max(self.policy().depth(self.k), 2 * self.k if self.demotion().on else self.k)

    def ann_config(self) -> AnnConfig | None:
        """The index settings, None when approximate retrieval is off."""
        if self.ann_min_items <= 0:
            return None
        return AnnConfig(min_items=self.ann_min_items, candidates=self.ann_candidates,
                         ef_search=max(self.ann_ef_search, self.ann_candidates),
                         ef_construction=self.ann_ef_construction,
                         build_threads=self.ann_build_threads)

    def decay_spec(self) -> Decay:
        half_life = {"events": self.half_life_events, "time": self.half_life_seconds}
        return Decay(self.decay, half_life.get(self.decay, 1.0), self.session_boost)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any], strict: bool = True) -> FoldInConfig:
        """From a config table; `strict=False` ignores unknown keys (e.g. a whole Settings)."""
        names = {f.name for f in fields(cls)}
        if strict and set(config) - names:
            raise ModelError(f"unknown fold-in setting(s): {sorted(set(config) - names)}")
        values = {key: v for key, v in config.items() if key in names}
        if isinstance(values.get("weights"), Mapping):
            values["weights"] = EventWeights.from_mapping(values["weights"])
        if "exclude_types" in values:
            values["exclude_types"] = frozenset(values["exclude_types"])
        return cls(**values)


@functools.cache
def _hints() -> dict[str, Any]:
    """`FoldInConfig`'s field types, resolved once."""
    return typing.get_type_hints(FoldInConfig)


def _fits(value: Any, hint: Any) -> bool:
    """Whether `value` is of the type `hint` (the kinds `FoldInConfig` uses)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_fits(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, frozenset):
        return isinstance(value, origin) and all(_fits(v, args[0]) for v in value)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    """`hint` as a reader would write it (`float`, `int | None`, `one of 'a', 'b'`)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return str(hint) if origin is not None else hint.__name__
