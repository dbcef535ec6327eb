"""Lists holding an item the catalog deactivated, published again without waiting for the user.

A user's list changes when the user acts. An item deactivated in the catalog (an `Item` with
`active` false, or deleted) would stay in the lists of idle users on the recommendations topic
until their next event: `refold serve` hides it at read time, a service reading the topic would
not. So each user's record keeps the items of their last list (`UserFeedback.list_items`, saved,
restored and undone with the user), the partition's store indexes users by them
(`consumers.state.store`; the all-in-memory state scans its users instead), and `Republisher`:

1. hears from the catalog reader, between batches, which items are inactive (`catalog_read`):
   the users of a newly inactive item in the partitions held are queued; a partition installed
   after its restore (`installed`) queues its users of every inactive item, so work that a crash
   or a rebalance lost is found again from the committed state;
2. is the worker's `inputless` work (`consumers.inputless`): while users are queued, the loop
   runs transactions with no input; each `handle`s a chunk: the users whose last list still holds
   an inactive item are ranked again from their committed state and the catalog (`now`: the
   partition's event-time watermark, or the user's last event), their lists drawn as on the
   event path (`rec_id` seeded by the item and where it was read), produced with the cause
   `item_inactive` (the catalog message), and their records (the new list's items) go to the
   changelog in the same transaction; `promote` forgets the chunk, `rollback` keeps it queued.

A queued user whose list holds no inactive item when their turn comes (an event replaced it, or
the item came back) is skipped. The cost: per event, nothing beyond keeping the list's K item ids
in the user's record and the index; per partition restored, one index seek per inactive item;
per list published again, what a list costs on the event path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import Message

from consumers.batch import Output
from consumers.feedback import Facts, Feedback, Trigger
from models.history import UserHistory
from models.recommender import OnlineRecommender, Recs
from refold.core import metrics as M
from refold.core.schemas import BasisItem, Cause, Item, Recommendation, encode

log = logging.getLogger(__name__)

CHUNK = 500
"""Users ranked again per transaction at most."""


@dataclass(frozen=True, slots=True)
class Read:
    """Where the catalog message that made an item inactive was read, and its timestamp."""

    partition: int
    offset: int
    time: float


class ListState(Protocol):
    """What `Republisher` needs of the worker's user state (`consumers.state`)."""

    def holding(self, partition: int, items: Sequence[str]) -> list[str]: ...
    def load(self, user_id: str, partition: int) -> UserHistory | None: ...
    def watermark(self, partition: int) -> float: ...
    def write(self, out: Output, users: dict[str, None], offsets: list) -> tuple[int, int]: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class Republisher:
    """The users whose last list holds an inactive item, and their new lists (see the module)."""

    def __init__(self, recommender: OnlineRecommender, state: ListState, feedback: Feedback, *,
                 recs_topic: str, items_topic: str, clock: Callable[[], float] = time.time,
                 chunk: int = CHUNK) -> None:
        self.recommender = recommender
        self.state = state
        self.feedback = feedback
        self.recs_topic = recs_topic
        self.items_topic = items_topic
        self.clock = clock
        self.chunk = chunk
        self.inactive: dict[str, Read] = {}
        """The catalog's inactive items, and where each turned inactive."""
        self.queued: dict[int, dict[str, None]] = {}
        """Per partition held, the users to look at (in the order queued)."""
        self.published = 0
        """Lists published again by committed transactions."""
        self.records = 0
        """Changelog records (users) they wrote."""
        self._chunk: list[tuple[int, str]] = []
        self._staged = (0, 0)

    # -- what is queued
    def catalog_read(self, read: Sequence[tuple[Item, Message]]) -> None:
        """A poll of the catalog, applied: note the inactive items, queue the users of those
        that turned inactive."""
        newly = []
        for item, msg in read:
            if item.active:
                self.inactive.pop(item.item_id, None)
            else:
                if item.item_id not in self.inactive:
                    newly.append(item.item_id)
                self.inactive[item.item_id] = Read(msg.partition(), msg.offset(),
                                                   msg.timestamp()[1] / 1000)
        if newly:
            self._queue(list(self.queued), newly)

    def installed(self, partitions: Sequence[int]) -> None:
        """Partitions restored and installed: queue their users of every inactive item."""
        for p in partitions:
            self.queued.setdefault(p, {})
        if self.inactive:
            t0 = time.perf_counter()
            n = self._queue(partitions, list(self.inactive))
            log.info("%d user(s) of partition(s) %s hold one of %d inactive item(s) in their "
                     "last list (looked up in %.1f ms)", n, list(partitions),
                     len(self.inactive), (time.perf_counter() - t0) * 1000)

    def revoked(self, partitions: Sequence[int]) -> None:
        for p in partitions:
            self.queued.pop(p, None)

    def _queue(self, partitions: Sequence[int], items: list[str]) -> int:
        n = 0
        for p in partitions:
            users = self.state.holding(p, items)
            self.queued.setdefault(p, {}).update(dict.fromkeys(users))
            n += len(users)
        return n

    # -- the loop's inputless work (`consumers.inputless.Inputless`)
    def due(self) -> bool:
        return any(self.queued.values())

    def partitions(self) -> list[int]:
        return sorted({p for p, _ in self._chunk})

    def handle(self, out: Output) -> int:
        """Rank a chunk of queued users again; publish the lists that held an inactive item."""
        self._chunk = self._take()
        picked: list[tuple[int, str, float, str]] = []  # partition, user, now, the item
        for p, user in self._chunk:
            h = self.state.load(user, p)
            gone = [i for i in (h.feedback.list_items if h and h.feedback else ())
                    if i in self.inactive]
            if h is not None and gone:
                picked.append((p, user, self._now(p, h, gone[0]), gone[0]))
        if not picked:
            self._staged = (0, 0)
            return 0
        ranked = self.recommender.recommend_many([u for _, u, _, _ in picked],
                                                 [t for _, _, t, _ in picked],
                                                 k=self.feedback.depth)
        for (_, user, now, item), candidates in zip(picked, ranked, strict=True):
            out.produce(self.recs_topic, encode(self._message(user, now, item, candidates)),
                        user)
        records, _ = self.state.write(out, {u: None for _, u, _, _ in picked}, [])
        self._staged = (len(picked), records)
        return len(picked)

    def promote(self) -> None:
        self.state.commit()
        self.published += self._staged[0]
        self.records += self._staged[1]
        if self._staged[0]:
            M.REPUBLISHED.inc(self._staged[0])
            log.info("published %d list(s) again: an item of theirs is inactive",
                     self._staged[0])
        self._chunk, self._staged = [], (0, 0)

    def rollback(self) -> None:
        """The transaction aborted: the state as committed, the chunk queued again."""
        self.state.abort()
        for p, user in self._chunk:
            if p in self.queued:
                self.queued[p][user] = None
        self._chunk, self._staged = [], (0, 0)

    def give_up(self) -> None:
        """The chunk's handling raised: it is dropped, not queued again by the `rollback` that
        follows (its users keep their lists until their next event; `refold serve` still hides
        the inactive items)."""
        log.error("%d user(s) whose list holds an inactive item were dropped: %s",
                  len(self._chunk), [u for _, u in self._chunk[:5]])
        self._chunk = []

    # -- internals
    def _take(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for p in sorted(self.queued):
            users = self.queued[p]
            while users and len(out) < self.chunk:
                user = next(iter(users))
                del users[user]
                out.append((p, user))
        return out

    def _now(self, partition: int, h: UserHistory, item: str) -> float:
        """The time a list is ranked at: the partition's event time (its watermark), else the
        user's last event, else when the item turned inactive."""
        known = [t for t in (self.state.watermark(partition), h.last_time)
                 if t is not None and t != float("-inf")]
        return max(known) if known else self.inactive[item].time

    def _message(self, user: str, now: float, item: str, candidates: Recs) -> Recommendation:
        read = self.inactive[item]
        trigger = Trigger(f"~inactive/{item}@{read.partition}:{read.offset}", now)
        d = self.feedback.decide(trigger, candidates, Facts())
        cause = Cause(event_id=item, event_time=read.time, topic=self.items_topic,
                      partition=read.partition, offset=read.offset, reason="item_inactive")
        return Recommendation(
            user_id=user, **Feedback.message_fields(d), model_version=candidates.model_version,
            source=candidates.source, generated_at=self.clock(), cause=cause,
            basis=[BasisItem(item_id=i) for i in self.recommender.basis(user)])
