"""Per-user state of an `OnlineRecommender`: each user's `UserHistory` and home partition.

`UserHistories` is the one place that holds users; the recommender reads and writes them only
through its methods, so another implementation of the same contract (a bounded cache in front
of a local store, for example) can take its place. Histories are created with the sizes of the
recommender's `FoldInConfig`; `state` and `restore` speak item ids, never the process-local
indices, so a state saved by one process restores in another.

>>> from models.foldin_config import FoldInConfig
>>> users = UserHistories(FoldInConfig(history_size=3))
>>> h = users.get_or_create("u1", partition=2)
>>> h.add(0, 1.0, t=5.0)
>>> len(users), "u1" in users, users.partition_of("u1"), users.partition_of("u9")
(1, True, 2, 0)
>>> state = users.state("u1", ["a"])
>>> other = UserHistories(FoldInConfig(history_size=3))
>>> other.restore("u1", state, {"a": 7}.__getitem__, partition=2)
>>> other.get("u1").events()["item"].tolist()
[7]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from models.foldin_config import FoldInConfig
from models.history import UserHistory


class Users(Protocol):
    """The contract of a recommender's users (`UserHistories` is the in-memory one). `get` may
    load a user from elsewhere: callers keep a history only while they handle one batch, and
    `users()` and `len()` may count only the users held in memory."""

    def get(self, user_id: str, default: UserHistory | None = None) -> UserHistory | None: ...
    def get_or_create(self, user_id: str, partition: int, t: float | None = None
                      ) -> UserHistory: ...
    def partition_of(self, user_id: str) -> int: ...
    def state(self, user_id: str, ids: Sequence[str]) -> dict[str, Any] | None: ...
    def restore(self, user_id: str, state: Mapping[str, Any], index: Callable[[str], int],
                partition: int = 0) -> None: ...
    def drop(self, user_id: str) -> None: ...
    def users(self) -> Iterable[str]: ...
    def __contains__(self, user_id: object) -> bool: ...
    def __len__(self) -> int: ...


class UserHistories:
    """Users' histories and the events partition each user's events come from, in memory."""

    def __init__(self, config: FoldInConfig) -> None:
        self.history_size = config.history_size
        self.max_age_seconds = config.max_age_seconds
        self.max_excluded = config.max_excluded
        self._histories: dict[str, UserHistory] = {}
        self._partition: dict[str, int] = {}

    def get(self, user_id: str, default: UserHistory | None = None) -> UserHistory | None:
        """The user's history (`default` when the user is unknown)."""
        return self._histories.get(user_id, default)

    def get_or_create(self, user_id: str, partition: int, t: float | None = None
                      ) -> UserHistory:
        """The user's history, created empty if new; the user's events come from `partition`.
        `t` is the time of the event about to be learned (informative: memory keeps every
        user, and the local stores judge expiry once per message before it is applied)."""
        h = self._histories.get(user_id)
        if h is None:
            h = self._histories[user_id] = UserHistory(
                self.history_size, self.max_age_seconds, self.max_excluded)
        self._partition[user_id] = partition
        return h

    def partition_of(self, user_id: str) -> int:
        """The partition of the user's events (0 for an unknown user)."""
        return self._partition.get(user_id, 0)

    def state(self, user_id: str, ids: Sequence[str]) -> dict[str, Any] | None:
        """The user's history as plain data with item ids (`ids[index]`), None if unknown."""
        h = self._histories.get(user_id)
        return None if h is None else h.to_state(ids)

    def restore(self, user_id: str, state: Mapping[str, Any], index: Callable[[str], int],
                partition: int = 0) -> None:
        """Install a `state` (possibly saved by another process); `index` maps item ids."""
        self._histories[user_id] = UserHistory.from_state(state, index)
        self._partition[user_id] = partition

    def drop(self, user_id: str) -> None:
        """Forget the user (e.g. when its partition moves to another worker)."""
        self._histories.pop(user_id, None)
        self._partition.pop(user_id, None)

    def users(self) -> Iterable[str]:
        return self._histories.keys()

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._histories

    def __len__(self) -> int:
        return len(self._histories)
