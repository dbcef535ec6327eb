"""Users' declared profiles as a worker sees them: the compacted users topic applied to its
recommender, between batches (a side input, like the catalog).

Every worker reads the whole topic from the beginning (no group) and keeps the newest profiles,
at most `max_profiles` (`models.profiles.DeclaredProfiles`): a profile is small, and a worker
may be handed any partition at the next rebalance. A null value (a deleted profile) drops the
user's profile. A malformed message is logged with its position and skipped, as the catalog's
are: every worker reads every profile, so dead-lettering it here would file one copy per
worker. A deployment whose users topic does not exist yet (made by `refold topics create`)
runs without profiles, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from confluent_kafka import Message

from consumers.tail import TopicTail
from refold.core.config import Settings
from refold.core.errors import KafkaFatalError, SchemaError
from refold.core.kafka import where
from refold.core.schemas import User, decode_user

log = logging.getLogger(__name__)


class ProfilesReader:
    """Apply `User` messages to `apply` (e.g. the recommender's `set_profiles`, all the valid
    profiles of a poll at once) and deletions to `drop`."""

    def __init__(self, settings: Settings, apply: Callable[[Sequence[User]], None],
                 drop: Callable[[str], None]) -> None:
        self.tail: TopicTail | None = TopicTail(settings, settings.topic("users"))
        self.apply = apply
        self.drop = drop
        self.applied = self.dropped = self.rejected = 0

    def catch_up(self, timeout: float = 10.0) -> bool:
        """Apply the profiles up to the topic's current end; False if that took longer."""
        try:
            return self.tail.catch_up(self._handle, timeout) if self.tail else True
        except KafkaFatalError as exc:
            self._without(exc)
            return True

    def poll(self, timeout: float = 0.0) -> int:
        """Apply what arrived since the last call; returns how many messages were read."""
        if self.tail is None:
            return 0
        try:
            messages = self.tail.poll(timeout)
        except KafkaFatalError as exc:
            self._without(exc)
            return 0
        self._handle(messages)
        return len(messages)

    def close(self) -> None:
        if self.tail is not None:
            self.tail.close()

    def _without(self, exc: Exception) -> None:
        log.warning("users' profiles are not read: %s", exc)
        self.close()
        self.tail = None

    def _handle(self, messages: list[Message]) -> None:
        profiles = []
        for msg in messages:
            key = (msg.key() or b"").decode("utf-8", "replace")
            if msg.value() is None:  # tombstone: the profile was deleted
                if key:
                    self.drop(key)
                    self.dropped += 1
                continue
            try:
                user = decode_user(msg.value())
                if key and key != user.user_id:
                    raise SchemaError("key", f"key {key!r} is not the user_id {user.user_id!r}")
            except SchemaError as exc:
                self.rejected += 1
                log.warning("bad user profile %s: %s", where(msg), exc)
                continue
            profiles.append(user)
        if profiles:
            self.apply(profiles)
            self.applied += len(profiles)
