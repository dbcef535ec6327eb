"""`models.users.UserHistories` over the local stores: the recommender's users, bounded in memory.

The recommender asks for users by id (`get`, `get_or_create`); here a miss reads the user from
its partition's store (`LocalState.user`), and the bounded cache keeps the recently used. Users
are expired per event: `get_or_create(user, partition, t)` judges the user on the partition's
watermark *before* that event (then moves the watermark to `t`), in stream order, which is what
makes the result independent of how events fall into batches. `watermarks` are the committed
ones after `commit` and go back to them after `abort`.

>>> import tempfile
>>> from models.history import UserHistory
>>> with tempfile.TemporaryDirectory() as d:
...     local = LocalState(d, "cl", new_history=lambda: UserHistory(5), item_ids=lambda: ["a"],
...                        item_index={"a": 0}.__getitem__, user_horizon=Horizon(100.0))
...     _ = local.open(0)
...     users = StoredUsers(local)
...     users.get_or_create("u1", 0, t=10.0).add(0, 1.0, t=10.0)
...     local.stage_user("u1")[0], users.commit({0: 1}), users.watermarks
...     users.get_or_create("u1", 0, t=500.0).events()["item"].tolist()   # not expired yet
...     len(users.get_or_create("u1", 0, t=501.0))                          # expired at 500
(0, None, {0: 10.0})
[0]
0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from consumers.state.local import LocalState
from consumers.state.records import UserEntry
from models.expiry import Horizon
from models.history import UserHistory

__all__ = ["Horizon", "LocalState", "StoredUsers"]


class StoredUsers:
    """Users' histories through `LocalState`'s cache and stores (the `UserHistories` contract)."""

    def __init__(self, local: LocalState) -> None:
        self.local = local
        self.watermarks: dict[int, float] = {}
        """Per partition, the newest event time learned (committed values between batches)."""
        self._committed: dict[int, float] = {}

    def entry(self, user_id: str) -> UserEntry | None:
        """The user's entry if cached, else from whichever assigned partition's store has it."""
        entry = self.local.cache.get(user_id)
        if entry is not None:
            return entry
        for p in list(self.local.stores):
            found = self.local.user(user_id, p, self.watermark(p))
            if found is not None:
                return found
        return None

    def watermark(self, partition: int) -> float:
        return self.watermarks.get(partition, float("-inf"))

    # -- the UserHistories contract
    def get(self, user_id: str, default: UserHistory | None = None) -> UserHistory | None:
        entry = self.entry(user_id)
        return default if entry is None else entry.history

    def get_or_create(self, user_id: str, partition: int, t: float | None = None
                      ) -> UserHistory:
        w = self.watermark(partition)
        entry = self.local.user(user_id, partition, w) or self.local.new_user(user_id, partition)
        if t is not None and t > w:
            self.watermarks[partition] = t
        return entry.history

    def partition_of(self, user_id: str) -> int:
        entry = self.entry(user_id)
        return 0 if entry is None else entry.partition

    def state(self, user_id: str, ids: Sequence[str]) -> dict[str, Any] | None:
        entry = self.entry(user_id)
        return None if entry is None else entry.history.to_state(ids)

    def restore(self, user_id: str, state: Mapping[str, Any], index: Callable[[str], int],
                partition: int = 0) -> None:
        """Install a saved history (its event ids are kept if the user is cached)."""
        old = self.local.cache.peek(user_id)
        entry = UserEntry(UserHistory.from_state(state, index), {} if old is None else old.ids,
                          partition, None if old is None else old.stored_bucket,
                          stored_list=() if old is None else old.stored_list)
        self.local.cache.put(user_id, entry)

    def drop(self, user_id: str) -> None:
        self.local.cache.pop(user_id)

    def users(self) -> set[str]:
        """The cached users (the rest are on disk: ask `in` for one user)."""
        return set(self.local.cache.keys())

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self.entry(user_id) is not None

    def __len__(self) -> int:
        """Users in memory (not the users on disk)."""
        return len(self.local.cache)

    # -- batch boundaries
    def commit(self, offsets: dict[int, int]) -> None:
        """The batch committed: stores written (`LocalState.commit`), watermarks kept."""
        self.local.commit(offsets)
        self._committed = dict(self.watermarks)

    def abort(self) -> None:
        """The batch aborted: its users evicted, the watermarks back to the committed ones."""
        self.local.abort()
        self.watermarks = dict(self._committed)

    def set_watermark(self, partition: int, t: float | None) -> None:
        """A restored partition's watermark (from its meta record)."""
        if t is None:
            self.watermarks.pop(partition, None)
            self._committed.pop(partition, None)
        else:
            self.watermarks[partition] = self._committed[partition] = t
