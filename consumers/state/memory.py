"""A fold-in worker's per-user state all in memory (`state_store = "memory"`): every user it has
seen, restored from the whole changelog when a partition is assigned, inside the rebalance
callback, within `ChangelogReader`'s timeout. The comparison path for `consumers.state.stored`
(what the store costs or saves, side by side) and for small deployments. Same calls as
`StoreState`; an event id counts once among its user's last `dedup_window` ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import TopicPartition

from consumers import changelog, heap
from consumers.batch import Output
from consumers.undo import BatchUndo
from models.history import UserHistory
from models.recommender import OnlineRecommender
from refold.core.schemas import Event, Impression

log = logging.getLogger(__name__)


class RecentIds:
    """Each user's last `size` event ids, oldest first, to apply a re-sent event only once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.by_user: dict[str, dict[str, None]] = {}

    def seen(self, user_id: str, event_id: str) -> bool:
        """Whether `event_id` is recent for the user; if not, remember it."""
        ids = self.by_user.setdefault(user_id, {})
        if event_id in ids:
            return True
        ids[event_id] = None
        if len(ids) > self.size:
            del ids[next(iter(ids))]
        return False


class MemoryState:
    """Users in the recommender's own `UserHistories`, their recent ids and partitions here."""

    def __init__(self, recommender: OnlineRecommender, reader: changelog.ChangelogReader,
                 dedup_window: int) -> None:
        self.recommender = recommender
        self.reader = reader
        self.topic = reader.topic
        self.recent = RecentIds(dedup_window)
        self.partition_of: dict[str, int] = {}
        self.undo = BatchUndo(recommender, self.recent.by_user, self.partition_of)
        self.reports: list[changelog.RestoreReport] = []

    @property
    def users_in_state(self) -> int:
        return len(self.partition_of)

    def assign(self, partitions: list[int]) -> list[int]:
        """Restore `partitions` now (nothing waits afterwards)."""
        restored, report = self.reader.restore(partitions)
        rec = self.recommender
        for p, part in restored.items():
            for user, (history, ids) in part.users.items():
                rec.restore_user(user, history, partition=p)
                self.recent.by_user[user] = dict.fromkeys(ids)
                self.partition_of[user] = p
            plain = part.plain()
            if plain is not None:
                rec.restore_partition(p, plain)
        self.reports.append(report)
        log.info("%s", report)
        return []

    def ready(self) -> list[int]:
        return []

    def revoke(self, partitions: list[int]) -> None:
        gone = set(partitions)
        users = [u for u, p in self.partition_of.items() if p in gone]
        for user in users:
            self.recommender.drop_user(user)
            self.recent.by_user.pop(user, None)
            del self.partition_of[user]
        if users:
            log.info("dropped the state of %d user(s) of revoked partitions", len(users))

    def event_ids(self, user_id: str, partition: int) -> list[str]:
        """The user's recent event ids, oldest first (tests, debugging)."""
        return list(self.recent.by_user.get(user_id, {}))

    def holding(self, partition: int, items: Iterable[str]) -> list[str]:
        """The partition's users whose last list holds one of `items` (a scan of its users:
        the all-in-memory path keeps no index)."""
        want, users = set(items), self.recommender.users
        out = []
        for user, p in self.partition_of.items():
            h = users.get(user) if p == partition else None
            if h is not None and h.feedback is not None and \
                    not want.isdisjoint(h.feedback.list_items):
                out.append(user)
        return out

    def load(self, user_id: str, partition: int) -> UserHistory | None:
        if user_id not in self.partition_of:
            return None
        self.undo.save_user(user_id, partition)
        return self.recommender.users.get(user_id)

    def watermark(self, partition: int) -> float:
        return float("-inf")

    def admit(self, msg: Event | Impression, msg_id: str, partition: int,
              offset: int | None = None) -> bool:
        self.undo.save_user(msg.user_id, partition)
        return not self.recent.seen(msg.user_id, msg_id)

    def renew(self, user_id: str, partition: int) -> None:
        """Never asked (`admit` here never says a user expired: memory keeps every user)."""

    def reset_user(self, user_id: str, partition: int) -> tuple[bytes, bytes] | None:
        """Start the user again from an empty history (its recent ids kept); (changelog key,
        the user's record as it was, or b"" if even that raises), None for an unknown user."""
        if user_id not in self.partition_of:
            return None
        self.undo.save_user(user_id, partition)
        try:
            value = changelog.user_value(self.recommender.user_state(user_id) or {},
                                         self.recent.by_user.get(user_id, {}))
        except Exception:  # the state is what is broken
            value = b""
        self.recommender.drop_user(user_id)
        self.recommender.users.get_or_create(user_id, partition)  # empty, written at the end
        return changelog.user_key(user_id), value

    def write(self, out: Output, users: Iterable[str], offsets: list[TopicPartition],
              deleted: Iterable[tuple[int, str]] = ()) -> tuple[int, int]:
        rec, records, size = self.recommender, 0, 0
        for p, item in deleted:  # items that left the catalog
            for key in changelog.item_keys(p, item):
                out.produce(self.topic, None, key, partition=p)
                records += 1
        for user in users:
            state = rec.user_state(user)
            assert state is not None
            value = changelog.user_value(state, self.recent.by_user[user])
            out.produce(self.topic, value, changelog.user_key(user),
                        partition=self.partition_of[user])
            records, size = records + 1, size + len(value)
        for tp in offsets:
            plain = rec.partition_changes(tp.partition)
            for key, value in changelog.partition_records(tp.partition, plain, tp.offset):
                out.produce(self.topic, value, key, partition=tp.partition)
                records, size = records + 1, size + len(value)
        return records, size

    def commit(self) -> None:
        self.undo.clear()
        heap.settle(self.recommender.model_version)

    def abort(self) -> None:
        self.undo.revert()

    def close(self) -> None:
        pass
