"""The model's default hyper-parameters, in one place.

`models.foldin_config.FoldInConfig` (the fold-in and ranking), `models.refit.RefitParams` (the
refitter's training) and `refold.core.config.Settings` (what users set) take their defaults from
here, so the worker, the refitter and the evaluation agree unless told otherwise. The values were
chosen by `refold evaluate --search` on the ml-100k warm-up (the first 20% of events): re-run the
search on your own log. Plain numbers: reading them loads none of the math.
"""

K = 20
"""Items per recommendation list."""
FACTORS = 32
"""Latent factors of the implicit ALS model."""
REGULARIZATION = 5.0
"""λ of the ALS solve, in training and in the fold-in (they must agree)."""
ALPHA = 2.0
"""Confidence per unit of event weight (implicit ALS's alpha), in training and in the fold-in."""
ITERATIONS = 15
"""ALS iterations of a refit."""
DECAY = "events"
"""Recency of a user's history: by the user's own event count (`events`), `time`, or `none`."""
HALF_LIFE_EVENTS = 10.0
HALF_LIFE_SECONDS = 3600.0
"""Half-life of `decay = "time"`."""
HISTORY_SIZE = 50
"""Events kept per user."""
TRENDING_HALF_LIFE_SECONDS = 7 * 86400.0
"""Half-life of the trending (time-decayed popularity) counts, when not adaptive: a week."""
TRENDING_HALF_LIVES = (900.0, 7200.0, 57600.0, 604800.0, 2592000.0, 7776000.0, 31536000.0,
                       float("inf"))
"""The ladder adaptive trending chooses from: 15 min, 2 h, 16 h, a week, 30 days, 90 days, a
year, and all-time."""
SESSION_WEIGHT = 1.0
"""Weight of the session co-visitation blend (0 turns it off)."""
SESSION_HALF_LIFE = 5.0
"""Recency half-life, in events, of the items that make a user's session."""
ANN_MIN_ITEMS = 200_000
"""Catalog size from which lists come from approximate candidates re-scored exactly (0: never):
where the exact scan of one user costs more than the index's search (docs/performance.md, large
catalogs)."""
ANN_CANDIDATES = 100
"""Candidates per user fetched from the index before exact re-scoring."""
ANN_EF_SEARCH = 128
"""The index's search beam (graph degree 32): recall@20 0.958 at 1M ALS-like items with 100
candidates (0.969 at 160, for 22% fewer events/s batched; docs/performance.md, large catalogs)."""
ANN_EF_CONSTRUCTION = 100
"""The index's build beam: on 1M ALS-like items (graph degree 32, 500 users) 40 built in 94 CPU s
against 229 for 100, both first reached recall@20 >= 0.95 at a search beam of 192 (0.970, 0.963),
and searched 1.1-1.2x slower (docs/performance.md, large catalogs)."""
CONTENT_TEXT_WEIGHT = 0.4
CONTENT_TAG_WEIGHT = 0.6
"""A content score is 0.4 · text cosine + 0.6 · tag Jaccard (the blend job-matching systems use)."""
EXPLORATION = "plackett_luce"
"""The exploration policy of the lists (`none`, `epsilon`, `plackett_luce`). Chosen with
`refold simulate` (README, closing the loop): it gives off-policy evaluation the support to judge
other policies (SNIPS and DR within ±10% of three candidates' measured CTR@3) at a small cost."""
EXPLORATION_EPSILON = 0.1
"""`epsilon`: each slot explores with this probability."""
EXPLORATION_TEMPERATURE = 0.05
"""`plackett_luce`: the softmax temperature on scores put on [-1, 0] over the candidates. At 0.05
it cost 0.6% of CTR@3 against `none` in the simulated shop's pipeline run and 2.2-3.0% in process
(two seeds), where 0.1 cost 3.3% and 3.6-3.8% (the target: at most 3%)."""
EXPLORATION_CANDIDATES = 0
"""How deep into the ranking exploration reaches (0: twice the list length)."""
EXPOSURE_MIN_COUNT = 1
"""Impressions without any interaction after which an item is demoted for that user. A list
changes only when its user acts, so the first list after an ignored page should not show
the ignored items again: `refold simulate --in-process` measured CTR@3 17.5% against 17.05%
with 2 on the default population (README, closing the loop)."""
EXPOSURE_STRENGTH = 1.0
"""How far a demoted item sinks, in candidate score ranges per impression (0: off). With 2
impressions and strength 1, `refold simulate` measured CTR@3 16.6% against 12.8% without; with
1 impression, 17.5% against 11.7%."""
ATTRIBUTION_WINDOW_SECONDS = 3600.0
"""A click, cart or purchase of a shown item within this time counts for the list that showed it."""
LEARN_MIXER = True
"""The refitter fits the learned mixer and ships it in each snapshot (`models.mixer`)."""
MIXER_WINDOW_EVENTS = 50_000
"""Recent events the refitter replays to fit the mixer."""
MIXER_SCORED_EVENTS = 5_000
"""Positive events of a replay, at most, whose candidates become examples (1:3 negatives)."""
GUARD_REPEAT_SECONDS = 86400.0
"""The guard counts one vote per user, item and this period."""
GUARD_WINDOW_SECONDS = 3600.0
GUARD_MIN_EVENTS = 20
"""Events of a user the guard's automated-behaviour verdict looks at (fewer: no verdict)."""
CONTINUATION_SECONDS = 7 * 86400.0
"""Bookmarked or carted items not bought come back in a reserved slot for a week."""
