"""Fitting the mixer: examples from a replay of recent events, 1:3 sampled negatives.

A replay feeds events in order to a recommender that serves the model the users were shown
then (the live snapshot, never the candidate being fitted: a model scored on the events it was
trained on would teach the mixer to trust collaborative filtering far too much). Events before
`score_from` only build the users' histories and the partitions' counts; from there on, for
each positive event (a share `sample` of them, seeded), before the recommender learns it:

1. the user's `Candidates` at the event's time (`source.candidates_of`);
2. if the event's item is among them: its feature row (label 1) and those of `negatives` other
   candidates drawn uniformly (label 0) go into the `ExampleBuffer`.

The buffer keeps the newest `capacity` examples, so refits fit on recent behaviour; `fit`
fits on all it holds once it has `min_positives` positives (else there is no mixer yet, and
the hand-set blend serves).

>>> from models.mixer import Signals
>>> buf = ExampleBuffer(capacity=8)
>>> c = Candidates(np.array([4, 5, 6]), Signals(cf=np.array([1.0, 0.2, 0.1])), np.zeros(2),
...                np.zeros(3))
>>> buf.add(c, target=4, rng=np.random.default_rng(0), negatives=3)
True
>>> buf.add(c, target=9, rng=np.random.default_rng(0))      # not a candidate: nothing learned
False
>>> len(buf), buf.positives
(3, 1)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np

from models.catalog import ItemIndex
from models.mixer import Candidates, Mixer, fit


class CandidateSource(Protocol):
    """What a replay needs of a recommender (`models.recommender.OnlineRecommender`)."""

    catalog: ItemIndex

    def learn_event(self, ev: Any, partition: int = 0) -> float: ...

    def candidates_of(self, user_id: str, now: float) -> Candidates | None: ...


class ExampleBuffer:
    """The newest `capacity` feature rows and labels."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.rows: deque[np.ndarray] = deque(maxlen=capacity)
        self.labels: deque[int] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(sum(self.labels))

    def add(self, c: Candidates, target: int, rng: np.random.Generator,
            negatives: int = 3) -> bool:
        """The examples of one event on item `target`; False when it is not a candidate."""
        hit = np.flatnonzero(c.items == target)
        if not len(hit):
            return False
        others = np.flatnonzero(c.items != target)
        drawn = rng.choice(others, min(negatives, len(others)), replace=False)
        X = c.rows(np.concatenate([hit[:1], drawn]))
        self.rows.extend(X)
        self.labels.extend([1] + [0] * len(drawn))
        return True

    def fit(self, min_positives: int = 500, regularization: float = 1.0) -> Mixer | None:
        """A mixer fitted on the buffer; None with fewer than `min_positives` positives."""
        if self.positives < min_positives or self.positives == len(self):
            return None
        return fit(np.vstack(self.rows), np.fromiter(self.labels, np.int64, len(self)),
                   regularization)


def collect(
    source: CandidateSource,
    events: Iterable[Any],
    positive: Callable[[Any], bool],
    buffer: ExampleBuffer,
    score_from: int = 0,
    sample: float = 1.0,
    negatives: int = 3,
    seed: int = 0,
    partitions: Iterable[int] | None = None,
) -> dict[str, int]:
    """Replay `events` (event j of partition `partitions[j]`, default 0) into `source`,
    adding examples from event `score_from` on; returns counts: events, scored (positive and
    sampled), examples (their item was a candidate)."""
    rng = np.random.default_rng(seed)
    counts = {"events": 0, "scored": 0, "examples": 0}
    parts = iter(partitions) if partitions is not None else None
    for j, ev in enumerate(events):
        if j >= score_from and positive(ev) and (sample >= 1 or rng.random() < sample):
            counts["scored"] += 1
            c = source.candidates_of(ev.user_id, ev.event_time)
            target = source.catalog.get(ev.item_id)
            if c is not None and target >= 0 and buffer.add(c, target, rng, negatives):
                counts["examples"] += 1
        source.learn_event(ev, 0 if parts is None else next(parts))
        counts["events"] += 1
    return counts
