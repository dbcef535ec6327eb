"""A batch's popularity updates, held per partition until a list reads the partition's counts.

`OnlineRecommender.process_batch` ranks a blending user's list on the popularity as of that
user's last event, so the batch's events are counted in order with lists drawn in between. The
counts are the same whether the events are counted one by one or in runs
(`AdaptiveTrending.update_many`, `Trending.update_many`), so the updates wait here and are
counted as one run per partition just before a list or a withdrawal needs them, and at the end
of the batch.

>>> from models.partition import Partitions
>>> from models.foldin_config import FoldInConfig
>>> parts = Partitions(FoldInConfig(trending_adaptive=False))
>>> pending = PendingPopularity(parts)
>>> pending.share(0, 3, 1.0, 10.0, ())
>>> len(parts.get(0).trending)                  # not counted yet
0
>>> pending.flush(0).trending.ranking_scores().tolist()
[0.0, 0.0, 0.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.adaptive_trending import AdaptiveTrending
from models.partition import Partitions, PartitionState


class PendingPopularity:
    """Per partition, the updates not counted yet: items, weights, times, newcomer flags."""

    def __init__(self, partitions: Partitions) -> None:
        self.partitions = partitions
        self._runs: dict[int, tuple[list[int], list[float], list[float], list[bool]]] = {}

    def share(self, partition: int, item: int, shared: float, t: float,
              back: Sequence[tuple[int, float, float]], newcomer: bool = False) -> None:
        """`PartitionState.share_popularity`, its addition held until `flush` (a withdrawal
        counts the partition's held updates first: the order stays the events')."""
        if back:
            part = self.flush(partition)
            for j, w, tj in back:
                part.withdraw_popularity(j, w, tj)
        if shared > 0:
            run = self._runs.setdefault(partition, ([], [], [], []))
            run[0].append(item)
            run[1].append(shared)
            run[2].append(t)
            run[3].append(newcomer)

    def flush(self, partition: int) -> PartitionState:
        """Count the partition's held updates; returns its state."""
        part = self.partitions.get(partition)
        run = self._runs.pop(partition, None)
        if run is not None:
            items, weights, times, newcomers = run
            if isinstance(part.trending, AdaptiveTrending):
                part.trending.update_many(items, weights, times, newcomers)
            else:
                part.trending.update_many(np.asarray(items, dtype=np.intp), np.asarray(weights),
                                          np.asarray(times))
            part.changed.update(items)
        return part

    def flush_all(self) -> None:
        for partition in sorted(self._runs):
            self.flush(partition)
