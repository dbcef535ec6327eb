"""`models.users.UserHistories` over the local stores: the recommender's users, bounded in memory.

The recommender asks for users by id (`get`, `get_or_create`); here a miss reads the user from
its partition's store (`LocalState.load`), and the bounded cache keeps the recently used.

Expiry is judged once per message, when it arrives (`arrive`, in stream order, before anything
applies it), by one rule: a user is expired at a message of theirs when their last activity
before it (event or impression) is older than the horizon before the partition's watermark *as
of that message* (the newest time the partition applied, that message included: the user's own
gap counts as much as the partition's progress). An expired user starts anew: an empty history
(feedback included, it lives in the history), the event ids within the id horizon kept. The
sweep at the end of a batch tombstones the users expired at the watermark then, which is only
ever what the next message of theirs would find, so the result does not depend on how messages
fall into batches. `get_or_create` and `get` only look up; `watermarks` are the committed ones
after `commit` and go back to them after `abort`.

>>> import tempfile
>>> from models.history import UserHistory
>>> with tempfile.TemporaryDirectory() as d:
...     local = LocalState(d, "cl", new_history=lambda: UserHistory(5), item_ids=lambda: ["a"],
...                        item_index={"a": 0}.__getitem__, user_horizon=Horizon(100.0))
...     _ = local.open(0)
...     users = StoredUsers(local)
...     users.arrive("u1", 0, 10.0)[0].history.add(0, 1.0, t=10.0)
...     local.stage_user("u1")[0], users.commit({0: 1}), users.watermarks
...     users.arrive("u1", 0, 110.0)[0].history.events()["item"].tolist()  # not expired yet
...     users.commit({})
...     users.arrive("u1", 0, 211.0)[1], len(users.get_or_create("u1", 0))  # 201 s after
(0, None, {0: 10.0})
[0]
(RENEWED, 0)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from consumers.state.local import LocalState
from consumers.state.records import UserEntry
from models.expiry import Horizon
from models.history import UserHistory

__all__ = ["NO_TIME", "Arrival", "Horizon", "LocalState", "StoredUsers"]


NO_TIME = float("-inf")
"""A partition's watermark before it applied any time."""


class Arrival(enum.Enum):
    """What `StoredUsers.arrive` found of the user at a message."""

    KNOWN = "known"
    """Not expired (or new)."""
    RENEWED = "renewed"
    """Expired, and started anew here."""
    RENEW_BEFORE = "renew_before"
    """Expired, after earlier messages of theirs in this batch that are not applied yet: the
    caller applies those, then `renew`s the user, then applies this message."""

    def __repr__(self) -> str:
        return self.name


class StoredUsers:
    """Users' histories through `LocalState`'s cache and stores (the `UserHistories` contract)."""

    def __init__(self, local: LocalState) -> None:
        self.local = local
        self.watermarks: dict[int, float] = {}
        """Per partition, the newest event time learned (committed values between batches)."""
        self._committed: dict[int, float] = {}
        self._arrived: set[str] = set()
        """Users with a message that arrived in this batch."""
        self._renewals: dict[str, list[float]] = {}
        """Per user, the watermarks of the `RENEW_BEFORE` arrivals not renewed yet, in order."""

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
        return self.watermarks.get(partition, NO_TIME)

    # -- the UserHistories contract
    def get(self, user_id: str, default: UserHistory | None = None) -> UserHistory | None:
        entry = self.entry(user_id)
        return default if entry is None else entry.history

    def get_or_create(self, user_id: str, partition: int, t: float | None = None
                      ) -> UserHistory:
        """The user's history (created empty if new). No expiry is judged here: `arrive`
        judged it for the message being applied; `t` is not used."""
        entry = self.local.cache.peek(user_id)  # `arrive`'s look-up counted (and ordered) it
        if entry is None:
            entry = self.local.load(user_id, partition) or self.local.new_user(user_id,
                                                                               partition)
        return entry.history

    # -- messages arriving
    def arrive(self, user_id: str, partition: int, t: float,
               entry: UserEntry | Literal[True] | None = True) -> tuple[UserEntry, Arrival]:
        """A message of the user's at time `t` arrives (before it is applied): the user's entry
        (`entry`: the one `LocalState.load` gave; True: look it up), created if new, with its
        expiry judged (see the module docstring); the partition's watermark moves to `t`."""
        if entry is True:
            entry = self.local.load(user_id, partition)
        w = self.watermark(partition)
        if t > w:
            self.watermarks[partition] = now = t
        else:
            now = w
        if entry is None:
            entry = self.local.new_user(user_id, partition)
            self._arrived.add(user_id)
            return entry, Arrival.KNOWN
        last = entry.last_time
        horizon = self.local.user_horizon
        # `last` within the horizon before `now` is never expired: the bucket test only for
        # the rest (it is the rule; this skips its cost for most messages)
        if last is None or last >= now - horizon.seconds or not horizon.expired(last, now):
            self._arrived.add(user_id)
            return entry, Arrival.KNOWN
        if user_id in self._arrived:
            self._renewals.setdefault(user_id, []).append(now)
            return entry, Arrival.RENEW_BEFORE
        self._arrived.add(user_id)
        self.local.renew(entry, now)
        return entry, Arrival.RENEWED

    def renew(self, user_id: str, partition: int) -> None:
        """Start a user `arrive` found expired (`Arrival.RENEW_BEFORE`) anew, now."""
        entry = self.local.cache.peek(user_id)
        assert entry is not None, user_id
        self.local.renew(entry, self._renewals[user_id].pop(0))  # as judged, not as now

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
        self._arrived.clear()
        self._renewals.clear()

    def abort(self) -> None:
        """The batch aborted: its users evicted, the watermarks back to the committed ones."""
        self.local.abort()
        self.watermarks = dict(self._committed)
        self._arrived.clear()
        self._renewals.clear()

    def set_watermark(self, partition: int, t: float | None) -> None:
        """A restored partition's watermark (from its meta record)."""
        if t is None:
            self.watermarks.pop(partition, None)
            self._committed.pop(partition, None)
        else:
            self.watermarks[partition] = self._committed[partition] = t
