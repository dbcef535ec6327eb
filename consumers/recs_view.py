"""`RecommendationsView`: the latest recommendation list of every user, for services to read.

It materialises the compacted recommendations topic into memory (read_committed: only lists whose
transaction committed, together with the offsets they cover). Use it as a context manager::

    with RecommendationsView(settings) as view:
        view.catch_up()
        rec = view.get("u1")          # a refold.core.schemas.Recommendation, or None

`start()` keeps it up to date in a background thread until `stop()` (or the end of the `with`).

Memory: about 2.9 KB a user at K = 20 (`refold bench serve` measures it). Item ids repeat across
users, so each decoded list's ids (and its cause's topic) are interned: one string per item
instead of one per list entry, about 1 KB a user less at K = 20.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

from confluent_kafka import Message

from consumers.following import Following
from consumers.tail import TopicTail
from refold.core.config import Settings
from refold.core.kafka import where
from refold.core.schemas import Recommendation, SchemaError, decode_recommendation

log = logging.getLogger(__name__)


class RecommendationsView:
    """`user_id -> Recommendation`, read from the beginning of every partition, no group."""

    def __init__(self, settings: Settings) -> None:
        self.tail = TopicTail(settings, settings.topic("recommendations"))
        self.latest: dict[str, Recommendation] = {}
        self.read = 0
        self._lock = threading.Lock()  # one reader of the consumer at a time
        self._following: Following | None = None

    def get(self, user_id: str) -> Recommendation | None:
        return self.latest.get(user_id)

    def __len__(self) -> int:
        return len(self.latest)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.latest))

    def catch_up(self, timeout: float = 10.0) -> bool:
        """Read up to the current end offsets; False if that took longer than `timeout`."""
        with self._lock:
            return self.tail.catch_up(self._apply, timeout)

    def poll(self, timeout: float = 0.0) -> int:
        """Apply what arrived since the last read; returns how many messages."""
        with self._lock:
            messages = self.tail.poll(timeout)
            self._apply(messages)
        return len(messages)

    def _apply(self, messages: list[Message]) -> None:
        for msg in messages:
            self.read += 1
            user = (msg.key() or b"").decode("utf-8", "replace")
            if msg.value() is None:  # tombstone: the user's list was deleted
                self.latest.pop(user, None)
                continue
            try:
                rec = decode_recommendation(msg.value())
            except SchemaError as exc:
                log.warning("bad recommendation %s: %s", where(msg), exc)
                continue
            self.latest[rec.user_id] = interned(rec)

    # -- background following

    def start(self, poll_interval: float = 0.2) -> RecommendationsView:
        """Follow new messages in a daemon thread until `stop()`."""
        if self._following is None:
            self._following = Following("recs-view", lambda _: self.poll(poll_interval)).start()
        return self

    @property
    def following(self) -> bool:
        """Whether the background thread of `start` is following the topic."""
        return self._following is not None

    def stop(self) -> None:
        if self._following is not None:
            self._following.stop()
            self._following = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self.tail.close()

    def __enter__(self) -> RecommendationsView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def interned(rec: Recommendation) -> Recommendation:
    """`rec` with its item ids and its cause's topic interned (shared with every other list).

    >>> from refold.core.schemas import RecommendedItem
    >>> a, b = (Recommendation(user_id=u, items=[RecommendedItem("".join(["i", "7"]), 1.0)],
    ...                        model_version=1, source="popular", generated_at=0.0)
    ...         for u in ("u1", "u2"))
    >>> interned(a).items[0].item_id is interned(b).items[0].item_id
    True
    """
    intern = sys.intern
    for item in rec.items:
        item.item_id = intern(item.item_id)
    for basis in rec.basis:
        basis.item_id = intern(basis.item_id)
    if rec.cause is not None:
        rec.cause.topic = intern(rec.cause.topic)
    return rec
