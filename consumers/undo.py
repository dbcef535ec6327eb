"""The undo log of one micro-batch: what the batch touched, as it was before the batch.

A fold-in worker applies a batch to its in-memory state before the transaction commits (the
recommender's users and partitions, its own recent event ids and user partitions). If the
transaction aborts, `revert` puts each touched user and partition back, so the batch, read
again, meets the state it first saw; once it commits, `clear` forgets the log.

>>> from models.recommender import OnlineRecommender
>>> rec, recent, partition_of = OnlineRecommender(), {}, {}
>>> undo = BatchUndo(rec, recent, partition_of)
>>> undo.save_user("u1", partition=3)
>>> _ = rec.learn("u1", "a", "click", t=1.0, partition=3)
>>> undo.revert(), rec.user_state("u1"), partition_of
((1, 0), None, {})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.partition import PartitionUndo
from models.recommender import OnlineRecommender

_NEW = object()
"""The user had no state before the batch (reverting forgets the user)."""


class BatchUndo:
    """Saves each user and partition the first time a batch touches it; `revert` or `clear`.

    `recent` (user -> recent event ids) and `partition_of` (user -> events partition) are the
    worker's own per-user maps, saved and put back with the recommender's state.
    """

    def __init__(self, recommender: OnlineRecommender, recent: dict[str, dict[str, None]],
                 partition_of: dict[str, int]) -> None:
        self.recommender = recommender
        self.recent = recent
        self.partition_of = partition_of
        self._users: dict[str, tuple[Any, dict[str, None] | None, int | None]] = {}
        self._partitions: dict[int, PartitionUndo] = {}

    def save_user(self, user_id: str, partition: int) -> None:
        """Before the batch first changes the user: its state; then the user is in
        `partition`."""
        if user_id in self._users:
            return
        state = self.recommender.user_state(user_id)
        ids = self.recent.get(user_id)
        self._users[user_id] = (
            _NEW if state is None else state,
            None if ids is None else dict(ids),
            self.partition_of.get(user_id),
        )
        self.partition_of[user_id] = partition

    def save_partitions(self, items: Mapping[int, Iterable[str]]) -> None:
        """Before the batch changes them: each partition's state, for the items (ids) its
        events touch."""
        for p, ids in items.items():
            self._partitions[p] = self.recommender.save_partition(p, ids)

    def revert(self) -> tuple[int, int]:
        """Put every saved user and partition back; how many of each."""
        rec = self.recommender
        for user, (state, ids, partition) in self._users.items():
            if state is _NEW:
                rec.drop_user(user)
            else:
                rec.restore_user(user, state)
            if ids is None:
                self.recent.pop(user, None)
            else:
                self.recent[user] = ids
            if partition is None:
                self.partition_of.pop(user, None)
            else:
                self.partition_of[user] = partition
        for p, undo in self._partitions.items():
            rec.revert_partition(p, undo)
        done = (len(self._users), len(self._partitions))
        self.clear()
        return done

    def clear(self) -> None:
        """The batch committed: its state is the state."""
        self._users.clear()
        self._partitions.clear()
