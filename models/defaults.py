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
TRENDING_HALF_LIVES = (900.0, 7200.0, 57600.0, 460800.0, 3686400.0, 29491200.0, float("inf"))
"""The ladder adaptive trending chooses from: 15 min to 341 days, x8 apart, and all-time."""
SESSION_WEIGHT = 1.0
"""Weight of the session co-visitation blend (0 turns it off)."""
SESSION_HALF_LIFE = 5.0
"""Recency half-life, in events, of the items that make a user's session."""
ANN_MIN_ITEMS = 200_000
"""Catalog size from which lists come from approximate candidates re-scored exactly (0: never):
where the exact scan of one user costs more than the index's search (README, retrieval table)."""
ANN_CANDIDATES = 100
"""Candidates per user fetched from the index before exact re-scoring."""
ANN_EF_SEARCH = 128
"""The index's search beam (graph degree 32): recall@20 0.958 at 1M ALS-like items with 100
candidates (0.969 at 160, for 22% fewer events/s batched; README, retrieval table)."""
CONTENT_TEXT_WEIGHT = 0.4
CONTENT_TAG_WEIGHT = 0.6
"""A content score is 0.4 · text cosine + 0.6 · tag Jaccard (the blend job-matching systems use)."""
