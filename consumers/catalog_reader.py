"""The catalog as a worker sees it: the compacted items topic applied to its recommender.

Every worker reads the whole items topic (all partitions, from the beginning, no group): at start
to its end, then with a short poll between batches. An item's latest message wins; a null value
(a deleted item) makes it inactive. Inactive items are never recommended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message

from consumers.tail import TopicTail
from refold.core.config import Settings
from refold.core.kafka import where
from refold.core.schemas import Item, SchemaError, decode_item

log = logging.getLogger(__name__)

ApplyItem = Callable[[Item], None]
ApplyItems = Callable[[list[Item]], None]


class CatalogReader:
    """Apply `Item` messages to `apply` (one at a time) or `apply_many` (the valid items of each
    poll at once, e.g. the recommender's `apply_items`, which hashes their texts in one call)
    as they arrive.

    A malformed item is logged with its position and skipped: every worker reads every item, so
    dead-lettering it here would file one copy per worker.
    """

    def __init__(self, settings: Settings, apply: ApplyItem | None = None,
                 apply_many: ApplyItems | None = None,
                 on_delete: Callable[[str], None] | None = None,
                 on_read: Callable[[list[tuple[Item, Message]]], None] | None = None) -> None:
        if (apply is None) == (apply_many is None):
            raise TypeError("give exactly one of apply and apply_many")
        self.tail = TopicTail(settings, settings.topic("items"))
        self.apply = apply
        self.apply_many = apply_many
        self.on_delete = on_delete
        """Called with the id of each item deleted (a tombstone), after it was applied."""
        self.on_read = on_read
        """Called with the valid items of each poll and their messages, after they were
        applied (the worker's `consumers.republish` watches items turn inactive)."""
        self.applied = 0
        self.rejected = 0

    def catch_up(self, timeout: float = 10.0) -> bool:
        """Apply the catalog up to its current end; False if that took longer than `timeout`."""
        return self.tail.catch_up(self._handle, timeout)

    def poll(self, timeout: float = 0.0) -> int:
        """Apply what arrived since the last call; returns how many messages were read."""
        messages = self.tail.poll(timeout)
        self._handle(messages)
        return len(messages)

    def _handle(self, messages: list[Message]) -> None:
        items: list[Item] = []
        read: list[tuple[Item, Message]] = []
        deleted: dict[str, None] = {}  # in order; an item back later in the poll is not deleted
        for msg in messages:
            try:
                items.append(self._decode(msg))
                read.append((items[-1], msg))
                deleted.pop(items[-1].item_id, None)
                if msg.value() is None:
                    deleted[items[-1].item_id] = None
            except SchemaError as exc:
                self.rejected += 1
                log.warning("bad catalog item %s: %s", where(msg), exc)
        if self.apply_many is not None:
            if items:
                self.apply_many(items)
        else:
            for item in items:
                self.apply(item)  # type: ignore[misc]
        self.applied += len(items)
        if self.on_delete is not None:
            for item_id in deleted:
                self.on_delete(item_id)
        if self.on_read is not None and read:
            self.on_read(read)

    @staticmethod
    def _decode(msg: Message) -> Item:
        key = (msg.key() or b"").decode("utf-8", "replace")
        if msg.value() is None:  # tombstone: the item was deleted
            if not key:
                raise SchemaError("key", "a deleted item needs its item_id as key")
            return Item(item_id=key, active=False)
        item = decode_item(msg.value())
        if key and key != item.item_id:
            raise SchemaError("key", f"key {key!r} is not the item_id {item.item_id!r}")
        return item

    def close(self) -> None:
        self.tail.close()
