"""A fold-in worker's per-user state in local stores: what `FoldInWorker` calls, per batch and per
rebalance, when `state_store = "rocksdb"` (`consumers.state.memory` is the all-in-memory one).

- `assign` starts restoring the partitions on a thread and returns them to be paused; `ready`
  (between batches) installs each restored partition's own state (items, co-visit rows, its
  watermark) and returns it to be resumed;
- `admit` looks the user up once per event or impression and de-duplicates it by id within the
  horizon, across the partition's users, on the partition's watermark before it; then judges
  the user's expiry, once (`consumers.state.users`: `RENEW_BEFORE` asks the worker to apply the
  user's earlier messages of the batch first, then `renew` the user);
- `write` produces the batch's changelog records (users, tombstones of the users a sweep found
  expired, each partition's records with its meta last), staging each for the stores, and notes
  the changelog offsets from the delivery reports;
- `commit` (after the transaction) writes the staged records to the stores with those offsets as
  their checkpoints; `abort` evicts the batch's users, which the stores hold as committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, Message, TopicPartition

from consumers import changelog, heap
from consumers.batch import Output
from consumers.state.assign import PartitionRestores, Restored
from consumers.state.kv import Resources
from consumers.state.local import LocalState, derive_user_indexes
from consumers.state.restore import RestoreProgress, StoreRestorer
from consumers.state.users import NO_TIME, Arrival, StoredUsers
from models.expiry import Horizon
from models.history import UserHistory
from models.recommender import OnlineRecommender
from refold.core import metrics as M
from refold.core.config import Settings
from refold.core.errors import ConfigError
from refold.core.schemas import Event, Impression

log = logging.getLogger(__name__)

SWEEP_LIMIT = 1000
"""Expired users tombstoned per partition and batch at most (the rest in the next batches)."""


def horizons(settings: Settings) -> tuple[Horizon, Horizon]:
    """(users' expiry, event ids' de-duplication), checked against each other."""
    users, ids = Horizon(settings.user_expiry_seconds), Horizon(settings.dedup_horizon_seconds)
    if users.forgets and (not ids.forgets or ids.seconds > users.seconds):
        raise ConfigError("dedup_horizon_seconds must be > 0 and at most user_expiry_seconds "
                          "(an expired user's event ids go with it)")
    return users, ids


class StoreState:
    """The worker's users in local stores behind a bounded cache (see the module docstring)."""

    def __init__(self, settings: Settings, recommender: OnlineRecommender, *,
                 committed: Callable[[list[int]], dict[int, int | None]], exact: bool) -> None:
        self.recommender = recommender
        self.topic = settings.topic("changelog")
        user_horizon, id_horizon = horizons(settings)
        cfg = recommender.config
        root = settings.state_path / f"{settings.topic_prefix}{settings.consumer_group}" / \
            settings.instance_id
        self.local = LocalState(
            root, self.topic,
            new_history=lambda: UserHistory(cfg.history_size, cfg.max_age_seconds,
                                            cfg.max_excluded),
            item_ids=lambda: recommender.catalog.ids, item_index=recommender.catalog.index,
            cache_users=settings.state_cache_users, user_horizon=user_horizon,
            id_horizon=id_horizon, max_ids_per_user=settings.dedup_max_ids_per_user,
            resources=Resources.of(settings.state_cache_mb << 20))
        self.local.cache.on_evict = lambda user, _entry: recommender.drop_user(user)
        self.users = StoredUsers(self.local)
        recommender.users = self.users  # type: ignore[assignment]  # the same contract
        self.restorer = StoreRestorer(settings, self.topic,
                                      derive=derive_user_indexes(user_horizon),
                                      max_checkpoint_age=settings.state_max_checkpoint_age_seconds,
                                      chunk_records=settings.state_restore_chunk_records,
                                      on_progress=_export_progress)
        self.restores = PartitionRestores(self.local, self.restorer, committed, exact=exact,
                                          group=settings.consumer_group)
        self.reports: list[changelog.RestoreReport] = []
        self.expired = 0
        """Users tombstoned by committed batches."""
        self._expired = 0
        self._counted = (0, 0)
        self._groups: list[tuple[set[int], float, list[Restored]]] = []
        self._offsets: dict[int, int] = {}
        self._items: dict[int, int] = {}
        self._covered: dict[int, int] = {}
        """Per partition, the events offset the restored state covers (at least once, it may be
        beyond the committed one)."""

    @property
    def users_in_state(self) -> int:
        return len(self.local.cache)

    # -- rebalances
    def assign(self, partitions: list[int]) -> list[int]:
        """Start restoring `partitions`; all of them wait (paused) until `ready` names them."""
        self.restores.start(partitions)
        self._groups.append((set(partitions), time.monotonic(), []))
        return partitions

    def ready(self) -> list[int]:
        """Install the partitions restored since the last call; returns them."""
        done = self.restores.ready()
        for r in done:
            self._install(r)
        return [r.partition for r in done]

    def revoke(self, partitions: list[int]) -> None:
        self.restores.cancel(partitions)
        for p in partitions:
            self.local.close(p)
            self.users.set_watermark(p, None)
            self._covered.pop(p, None)
        for gone, _, _ in self._groups:
            gone.difference_update(partitions)

    def _install(self, r: Restored) -> None:
        p = r.partition
        part = self.local.partition_records(p)
        plain = part.plain()
        if plain is not None:
            self.recommender.restore_partition(p, plain)
        w = (part.meta or {}).get("w")
        self.users.set_watermark(p, w)
        if r.offset is not None:
            self._covered[p] = r.offset
        self._items[p] = len(part.items)
        M.STATE_RESTORE_RECORDS.labels(partition=str(p)).inc(sum(x.records for x in r.progress))
        M.STATE_RESTORE_REMAINING.labels(partition=str(p)).set(0)
        for group in self._groups:
            if p in group[0]:
                group[2].append(r)
                group[0].discard(p)
                if not group[0]:
                    self._report(group[1], group[2])
        self._groups = [g for g in self._groups if g[0]]

    def _report(self, started: float, restored: list[Restored]) -> None:
        progress = [x for r in restored for x in r.progress]
        report = changelog.RestoreReport(
            sorted(r.partition for r in restored), sum(x.users for x in progress),
            sum(self._items[r.partition] for r in restored), sum(x.records for x in progress),
            sum(x.bytes for x in progress),
            time.monotonic() - started)
        self.reports.append(report)
        M.STATE_RESTORES.observe(report.seconds)
        log.info("%s (from the local stores' checkpoints; users stay on disk)", report)

    def event_ids(self, user_id: str, partition: int) -> list[str]:
        """The user's remembered event ids, oldest first (tests, debugging)."""
        entry = self.local.load(user_id, partition)
        return [] if entry is None else list(entry.ids)

    # -- lists to publish again (`consumers.republish`)
    def holding(self, partition: int, items: Iterable[str]) -> list[str]:
        """The partition's users whose last list, as committed, holds one of `items` (the
        store's index of last lists' items)."""
        store = self.local.stores.get(partition)
        listed = store.listings(items) if store is not None else ()
        return list(dict.fromkeys(changelog.parse_key(key)[1] for _, key in listed))

    def load(self, user_id: str, partition: int) -> UserHistory | None:
        """The user's history, for a change outside any event (None: not held)."""
        entry = self.local.user(user_id, partition, self.users.watermark(partition))
        return None if entry is None else entry.history

    def watermark(self, partition: int) -> float:
        return self.users.watermark(partition)

    # -- one batch
    def admit(self, msg: Event | Impression, msg_id: str, partition: int,
              offset: int | None = None) -> bool | Arrival:
        """Whether the event or impression (de-duplicated by `msg_id`) is new (then its id is
        remembered and its user's expiry judged: `Arrival.RENEW_BEFORE` is new too, and asks
        for `renew` before it is applied); False: a duplicate. Under at-least-once the state
        may cover events beyond the committed offset (a crash between the outputs and the
        offsets): those, read again, are skipped by their `offset` in the events partition,
        whatever the horizon of their ids."""
        if offset is not None and offset < self._covered.get(partition, -1):
            return False
        w = self.users.watermark(partition)
        entry = self.local.load(msg.user_id, partition)  # the one look-up of the message
        if self.local.seen(entry, msg_id, partition, w):
            return False
        t = msg.event_time if isinstance(msg, Event) else msg.shown_at
        entry, arrival = self.users.arrive(msg.user_id, partition, t, entry)
        self.local.remember(msg.user_id, entry, msg_id, t, w)
        return arrival if arrival is Arrival.RENEW_BEFORE else True

    def renew(self, user_id: str, partition: int) -> None:
        """Start the user anew (after `admit` said `Arrival.RENEW_BEFORE`), once the batch's
        earlier messages are applied."""
        self.users.renew(user_id, partition)

    def reset_user(self, user_id: str, partition: int) -> tuple[bytes, bytes] | None:
        """Start the user again from an empty state (`LocalState.reset`); (changelog key, the
        stored record it replaces), None if the partition's store holds no record of the user.
        An abort puts the stored state back."""
        self.recommender.drop_user(user_id)
        raw = self.local.reset(user_id, partition)
        return None if raw is None else (changelog.user_key(user_id), raw)

    def write(self, out: Output, users: Iterable[str], offsets: list[TopicPartition],
              deleted: Iterable[tuple[int, str]] = ()) -> tuple[int, int]:
        """The batch's changelog records: tombstones of `deleted` items' records, users,
        expired users' tombstones, each partition's records (meta last, with the events offset
        and the watermark); (records, bytes). The checkpoint needs the offset of each
        partition's last record only: the delivery reports of the meta records give it (of
        every record in a partition without one)."""
        records = size = 0
        with_meta = {tp.partition for tp in offsets}

        def report(p: int) -> Callable[[KafkaError | None, Message], None] | None:
            return None if p in with_meta else self._delivered

        for p, item in deleted:  # items that left the catalog
            for key in changelog.item_keys(p, item):
                out.produce(self.topic, None, key, partition=p, on_delivery=report(p))
                self.local.stage_record(p, key, None)
                records += 1
        for user in users:
            p, key, value = self.local.stage_user(user)
            out.produce(self.topic, value, key, partition=p, on_delivery=report(p))
            records, size = records + 1, size + len(value)
        for tp in offsets:
            p = tp.partition
            for bucket, key in self.local.inactive(p, self.users.watermark(p), SWEEP_LIMIT):
                out.produce(self.topic, None, key, partition=p)
                self.local.stage_expiry(p, key, bucket)
                self._expired += 1
                records += 1
            w = self.users.watermark(p)
            plain = self.recommender.partition_changes(p)
            last = changelog.meta_key(p)  # written last: its offset covers the others
            stage = self.local.staged(p).put
            for key, value in changelog.partition_records(
                    p, plain, tp.offset, None if w == NO_TIME else w):
                out.produce(self.topic, value, key, partition=p,
                            on_delivery=self._delivered if key == last else None)
                stage(key, value)
                records, size = records + 1, size + len(value)
        return records, size

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            p = msg.partition()
            self._offsets[p] = max(self._offsets.get(p, 0), msg.offset() + 1)

    def commit(self) -> None:
        """The transaction committed: the staged records into the stores, checkpointed."""
        self.users.commit(self._offsets)
        self._offsets.clear()
        self.expired += self._expired
        M.EXPIRED_USERS.inc(self._expired)
        self._expired = 0
        cache = self.local.cache
        M.STATE_CACHE_LOOKUPS.labels(result="hit").inc(cache.hits - self._counted[0])
        M.STATE_CACHE_LOOKUPS.labels(result="miss").inc(cache.misses - self._counted[1])
        self._counted = (cache.hits, cache.misses)
        M.STATE_STORE_MEMORY.set(self.local.resources.usage() if self.local.resources else 0)
        heap.settle(self.recommender.model_version)  # committed users: long-lived state

    def abort(self) -> None:
        self.users.abort()
        self._offsets.clear()
        self._expired = 0

    def close(self) -> None:
        self.restores.close()
        self.restorer.close()
        self.local.close_all()


def _export_progress(progress: RestoreProgress) -> None:
    M.STATE_RESTORE_REMAINING.labels(partition=str(progress.partition)).set(progress.remaining)
