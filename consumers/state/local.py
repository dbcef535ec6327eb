"""The local state of a worker's partitions: a store each, a bounded cache of users, and what the
current micro-batch stages for them until its transaction commits.

Per batch: users are read through the cache (`user`: a miss decodes the user's record from its
partition's store); every changelog record the batch produces is staged here as well
(`stage_user`, `stage_record`, `stage_expiry`); once the transaction has committed, `commit`
writes each partition's staged records to its store with the changelog offset after them as the
checkpoint, in one atomic write, and trims the cache. After an abort, `abort` evicts the batch's
users: the store holds their committed state, so nothing needs undoing in memory.

Users and event ids are forgotten by event time (`models.expiry.Horizon` on the partition's
watermark): a user whose last event is expired is a new user at its next event (`user`), and
`inactive` lists those a sweep should tombstone; an event id is a duplicate while its first time
is not expired, whichever user of the partition it came with (`seen`).
"""

from __future__ import annotations

import binascii
import logging
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from consumers.changelog import RestoredPartition, parse_key, user_key
from consumers.state.cache import BoundedCache
from consumers.state.kv import Resources
from consumers.state.records import (
    UserEntry,
    decode_user,
    encode_user,
    index_entries,
    indexed,
    listed_of,
)
from consumers.state.store import Checkpoint, PartitionStore, StoreBatch
from models.expiry import Horizon
from models.history import UserHistory

log = logging.getLogger(__name__)

NEVER = Horizon(0.0)


class LocalState:
    """Stores of the assigned partitions, the user cache, and the batch's staged records."""

    def __init__(
        self,
        root: str | Path,
        topic: str,
        *,
        new_history: Callable[[], UserHistory],
        item_ids: Callable[[], Sequence[str]],
        item_index: Callable[[str], int],
        cache_users: int = 100_000,
        user_horizon: Horizon = NEVER,
        id_horizon: Horizon = NEVER,
        max_ids_per_user: int = 1000,
        resources: Resources | None = None,
    ) -> None:
        self.root = Path(root)
        self.topic = topic
        self.new_history = new_history
        self.item_ids = item_ids
        self.item_index = item_index
        self.user_horizon = user_horizon
        self.id_horizon = id_horizon
        self.max_ids_per_user = max_ids_per_user
        self.resources = resources
        self.stores: dict[int, PartitionStore] = {}
        self._topic_ids: dict[int, str | None] = {}
        self.cache: BoundedCache[str, UserEntry] = BoundedCache(cache_users)
        self._touched: set[str] = set()
        self._staged: dict[int, StoreBatch] = {}
        self._expired: dict[int, list[tuple[bytes, int | None]]] = {}
        self._batch_ids: dict[tuple[int, str], str] = {}
        """(partition, event id) -> user, for the ids applied in this batch (not stored yet)."""
        self._swept: dict[int, int] = {}
        """Per partition, a bucket below which the committed activity index holds nobody but
        users committed since in buckets from `_lowest` up (a sweep that found nothing to skip
        there need not scan again while the watermark stays in that bucket)."""
        self._sweeping: dict[int, int] = {}
        self._lowest: dict[int, int] = {}

    # -- partitions
    def open(self, partition: int, topic_id: str | None = None) -> PartitionStore:
        """The partition's store (opened on first use); `topic_id` goes into checkpoints."""
        store = self.stores.get(partition)
        if store is None:
            store = PartitionStore.open(self.root, self.topic, partition, self.resources)
            self.stores[partition] = store
        self._topic_ids[partition] = topic_id
        self._swept.pop(partition, None)  # a restore may index users into it
        return store

    def close(self, partition: int) -> None:
        """Forget a partition: its cached users go, its store is closed (and kept on disk)."""
        for user, entry in self.cache.items():
            if entry.partition == partition:
                self.cache.pop(user)
                if self.cache.on_evict is not None:
                    self.cache.on_evict(user, entry)
        store = self.stores.pop(partition, None)
        if store is not None:
            store.close()

    def close_all(self) -> None:
        for p in list(self.stores):
            self.close(p)

    def partition_records(self, partition: int) -> RestoredPartition:
        """The partition's own records (items, co-visit rows, meta) from its store, decoded
        (users stay on disk: they are read on demand)."""
        out = RestoredPartition(partition)
        for key, value in self.stores[partition].records(f"~p{partition}/".encode()):
            kind, name = parse_key(key)
            data = msgspec.json.decode(value)
            out.records += 1
            out.bytes += len(value)
            out.put(key, kind, name, data)
        return out

    # -- users
    def load(self, user_id: str, partition: int) -> UserEntry | None:
        """The user's entry as it is (from the cache, or decoded from the partition's store),
        None for a user the partition does not hold."""
        entry = self.cache.get(user_id)
        if entry is None:
            raw = self.stores[partition].get(user_key(user_id))
            if raw is None:
                return None
            entry = decode_user(raw, self.item_index, partition)
            entry.stored_bucket = self._bucket(entry.last_time)
            self.cache.put(user_id, entry)
        self._touched.add(user_id)
        return entry

    def user(self, user_id: str, partition: int, watermark: float) -> UserEntry | None:
        """`load`, where a user whose last activity is expired at `watermark` comes back as a
        new one (for a change outside any message; messages go through `StoredUsers.arrive`)."""
        entry = self.load(user_id, partition)
        if entry is None:
            return None
        last = entry.last_time
        if last is not None and self.user_horizon.expired(last, watermark):
            self.renew(entry, watermark)
        return entry

    def renew(self, entry: UserEntry, watermark: float) -> None:
        """Start an expired user anew in place: an empty history; the event ids within the id
        horizon at `watermark` still count (the batch may have just remembered one)."""
        entry.history = self.new_history()
        entry.forget(lambda t: not self.id_horizon.expired(t, watermark), 0)

    def reset(self, user_id: str, partition: int) -> bytes | None:
        """Give the user an empty state in place of the stored one, which made handling raise;
        returns the stored record (None: the store holds none). The user's event ids are kept
        (re-sent events stay duplicates) if the record still yields them, as a restore's index
        read it. The store keeps the old record until the batch commits the new one."""
        raw = self.stores[partition].get(user_key(user_id))
        if raw is None:
            return None
        try:
            last, ids, listed = indexed(raw)
        except (ValueError, msgspec.DecodeError, binascii.Error, struct.error):
            last, ids, listed = None, [], []
        self.cache.put(user_id, UserEntry(self.new_history(), dict(ids), partition,
                                          self._bucket(last), stored_list=tuple(listed)))
        self._touched.add(user_id)
        return raw

    def new_user(self, user_id: str, partition: int) -> UserEntry:
        entry = UserEntry(self.new_history(), {}, partition)
        self.cache.put(user_id, entry)
        self._touched.add(user_id)
        return entry

    def seen(self, entry: UserEntry | None, event_id: str, partition: int,
             watermark: float) -> bool:
        """Whether `event_id` was applied in the partition within the id horizon (by this user,
        whose entry is `entry`, or another)."""
        t = None if entry is None else entry.ids.get(event_id)
        if t is not None:
            return not self.id_horizon.expired(t, watermark)
        if (partition, event_id) in self._batch_ids:
            return True
        t = self.stores[partition].event_time(event_id)
        return t is not None and not self.id_horizon.expired(t, watermark)

    def remember(self, user_id: str, entry: UserEntry, event_id: str, t: float,
                 watermark: float) -> None:
        """Record an applied event id, and forget the user's ids beyond the horizon or cap."""
        entry.remember(event_id, t)
        self._batch_ids[(entry.partition, event_id)] = user_id
        oldest, cap, horizon = entry.oldest, self.max_ids_per_user, self.id_horizon
        # every id is kept while the oldest is within the horizon before the watermark and the
        # cap is not passed (what `forget` would find, without its cost for most events)
        if oldest is None or (cap and len(entry.ids) > cap) or (
                oldest < watermark - horizon.seconds and horizon.expired(oldest, watermark)):
            entry.forget(lambda s: not horizon.expired(s, watermark), cap)

    # -- staging (what the batch's transaction writes to the changelog) and commit
    def stage_user(self, user_id: str) -> tuple[int, bytes, bytes]:
        """(partition, changelog key, value) of a user changed by the batch, staged."""
        entry = self.cache.peek(user_id)
        assert entry is not None, user_id
        key, value = user_key(user_id), encode_user(entry, self.item_ids())
        batch = self.staged(entry.partition)
        batch.put(key, value)
        bucket = self._bucket(entry.last_time)
        batch.activity(key, entry.stored_bucket, bucket)
        batch.event_ids(key, [(i, entry.ids[i]) for i in entry.added if i in entry.ids],
                        entry.dropped)
        batch.listed(key, entry.stored_list, listed_of(entry.history))
        return entry.partition, key, value

    def stage_record(self, partition: int, key: bytes, value: bytes | None) -> None:
        """A partition's own changelog record (items, co-visit rows, meta)."""
        self.staged(partition).put(key, value)

    def stage_expiry(self, partition: int, key: bytes, bucket: int | None) -> None:
        """A user tombstoned by a sweep (its record, index entries and ids go at commit)."""
        batch = self.staged(partition)
        batch.put(key, None)
        self._expired.setdefault(partition, []).append((key, bucket))
        entry = self.cache.pop(parse_key(key)[1])
        if entry is not None:  # ids this batch indexed for it go too
            batch.event_ids(key, [], list(entry.ids))
        self._touched.discard(parse_key(key)[1])

    def inactive(self, partition: int, watermark: float, limit: int) -> list[tuple[int, bytes]]:
        """(bucket, user key) of users expired at `watermark`, for a sweep to tombstone; users
        the batch touched are judged by their entry, which is newer than the store's index.
        The index is not scanned again while it cannot hold anyone expired (`_swept`)."""
        if not self.user_horizon.forgets:
            return []
        below = self.user_horizon.first_live_bucket(watermark)
        if self._swept.get(partition) == below and self._lowest.get(partition, below) >= below:
            return []
        out = []
        found = self.stores[partition].inactive(below, limit)
        for bucket, key in found:
            entry = self.cache.peek(parse_key(key)[1])
            if entry is not None and entry.last_time is not None and \
                    not self.user_horizon.expired(entry.last_time, watermark):
                continue
            out.append((bucket, key))
        if len(found) < limit and len(out) == len(found):  # all of them go at the commit
            self._sweeping[partition] = below
        return out

    def commit(self, offsets: dict[int, int]) -> None:
        """The batch's transaction committed: write each partition's staged records, with the
        changelog offset after them (`offsets`: the next offset per changelog partition)."""
        for p, batch in self._staged.items():
            store = self.stores[p]
            for key, bucket in self._expired.get(p, ()):
                self._forget_indexed(store, key, bucket, batch)
            offset = offsets.get(p, store.checkpoint.offset if store.checkpoint else 0)
            store.commit(batch, Checkpoint(self.topic, self._topic_ids.get(p), p, offset))
        for p, below in self._sweeping.items():  # swept: only this batch's users may be below
            self._swept[p] = below
            self._lowest.pop(p, None)
        lowest = self._lowest
        for user in self._touched:
            entry = self.cache.peek(user)
            if entry is not None:
                entry.stored_bucket = bucket = self._bucket(entry.last_time)
                if bucket is not None and bucket < lowest.get(entry.partition, bucket + 1):
                    lowest[entry.partition] = bucket
                entry.stored_list = listed_of(entry.history)
                entry.added.clear()
                entry.dropped.clear()
        self._end_batch()
        self.cache.trim()

    def abort(self) -> None:
        """The batch aborted: its users leave the cache (the store has their committed state)."""
        for user in self._touched:
            self.cache.pop(user)
        self._end_batch()

    # -- internals
    def staged(self, partition: int) -> StoreBatch:
        """The batch's changes to the partition's store so far."""
        batch = self._staged.get(partition)
        if batch is None:
            batch = self._staged[partition] = StoreBatch()
        return batch

    def _bucket(self, t: float | None) -> int | None:
        return None if t is None else self.user_horizon.bucket(t)

    def _forget_indexed(self, store: PartitionStore, key: bytes, bucket: int | None,
                        batch: StoreBatch) -> None:
        raw = store.get(key)
        batch.activity(key, bucket, None)
        if raw is not None:
            _, ids, listed = indexed(raw)
            batch.event_ids(key, [], [i for i, _ in ids])
            batch.listed(key, listed, ())

    def _end_batch(self) -> None:
        self._sweeping.clear()
        self._touched.clear()
        self._staged.clear()
        self._expired.clear()
        self._batch_ids.clear()


def derive_user_indexes(user_horizon: Horizon) -> Callable[[bytes, bytes | None, bytes | None,
                                                            StoreBatch], None]:
    """The restore's `derive` for user records: move the activity index entry, the event ids and
    the items of the last list from what the store held (`old`) to what the changelog says
    (`new`)."""

    def derive(key: bytes, old: bytes | None, new: bytes | None, batch: StoreBatch) -> None:
        if key[:2] == b"~p":  # a partition's record (a user key never starts so: `user_key`)
            return
        if old is None and new is not None:  # a new user of the store (all of a new disk's)
            last, ids, times, listed = index_entries(new)
            batch.activity(key, None, None if last is None else user_horizon.bucket(last))
            batch.packed_event_ids(key, ids, times)
            batch.listed(key, (), listed)
            return
        last0, ids0, listed0 = indexed(old) if old is not None else (None, [], [])
        last1, ids1, listed1 = indexed(new) if new is not None else (None, [], [])
        batch.activity(key, None if last0 is None else user_horizon.bucket(last0),
                       None if last1 is None else user_horizon.bucket(last1))
        now = {i for i, _ in ids1}
        batch.event_ids(key, ids1, [i for i, _ in ids0 if i not in now])
        batch.listed(key, listed0, listed1)

    return derive
