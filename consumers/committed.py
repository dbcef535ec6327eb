"""What a fold-in worker reports after each committed batch and each model swap (its
`on_commit` and `on_swap` hooks: the monitor's metrics, drift and quality, and `refold bench
swap`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.feedback import Facts
from models.recommender import Recs
from refold.core.schemas import Event


@dataclass
class CommittedBatch:
    """What a committed batch did, for `FoldInWorker.on_commit` (metrics, drift, quality)."""

    events: list[Event] = field(default_factory=list)
    """The events applied, in order (not the dead letters or duplicates)."""
    published: list[Recs] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    """The error class of each rejected message."""
    timestamps: list[float] = field(default_factory=list)
    """Each applied event's Kafka timestamp (s): commit time minus it is its freshness."""
    started: float = 0.0
    committed: float = 0.0
    model_version: int | None = None
    users_in_state: int = 0
    user_vector_norm: float | None = None
    """Mean norm of the user vectors folded in for the batch's lists (None: none)."""
    foldin_residual: float | None = None
    """Mean fold-in residual of those users (`models.foldin.residuals`; None: none)."""
    guard: dict[str, int] = field(default_factory=dict)
    """Events the guard kept out of the shared counts in this batch, by outcome."""
    guard_users: int = 0
    """Users judged automated within the last hour of event time."""
    feedback: Facts = field(default_factory=Facts)
    """Impressions, credited outcomes, conversions (`consumers.feedback`)."""


@dataclass(frozen=True)
class Swap:
    """A model version swapped in between two batches: the processing thread's pause, from the
    start of `between_batches` to its end (Unix seconds)."""

    version: int
    started: float
    ended: float
