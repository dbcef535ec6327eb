"""Messages whose handling kept raising, and what the worker does when it reads them again.

The loop isolates a message whose handling raises every time (`consumers.isolate`) and hands it
to the worker's `quarantine`. The message is not necessarily at fault: a user's stored state
that cannot be decoded, or that makes the fold-in raise, fails every message of that user. Were
the message dead-lettered, the user's next message would raise again, and the worker would
isolate and dead-letter the user's messages one by one, in a crawl of small batches. So:

1. the first time a message is isolated, it is handled again with its user's state reset to
   empty (`state.reset_user`; the user's event ids are kept, so de-duplication goes on). If
   that batch commits, the state was at fault: the stored record goes to the dead-letter topic
   (`bad_state`, its bytes as stored, the message that met it in `met_by`), the user starts
   again from an empty state (counted: `refold_state_users_reset_total`) and the message, like
   every later one of the user, is applied;
2. if it raises on an empty state too (or its user has no stored state to blame), the message
   is at fault: it is isolated again and becomes a dead letter `exception`; the reset was part
   of the aborted batch, so the user's state stays as it was.

A message is acted on only while it is being handled; it is forgotten once a batch that handled
it commits.

>>> s = Suspects(reset=lambda user, partition: None, dead_letters=None, topic="changelog")
>>> key = ("events", 0, 7)
>>> s.isolated(key, RuntimeError("boom")); s.retry(key), s.reject(key)
('RuntimeError: boom', None)
>>> s.abort(); s.isolated(key, RuntimeError("boom")); s.retry(key), s.reject(key)
(None, 'RuntimeError: boom')
>>> s.commit(); s.reject(key) is None
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message

from consumers.batch import Output
from consumers.deadletter import DeadLetters, Rejected
from consumers.poison import exception_reason
from refold.core.kafka import where

log = logging.getLogger(__name__)

Key = tuple[str, int, int]
"""(topic, partition, offset) of a message."""


class Suspects:
    """Isolated messages: to retry on a reset state (first), then to reject."""

    def __init__(self, reset: Callable[[str, int], tuple[bytes, bytes] | None],
                 dead_letters: DeadLetters | None, topic: str) -> None:
        self.reset = reset
        """`state.reset_user(user, partition)`: (changelog key, stored record) or None."""
        self.dead_letters = dead_letters
        self.topic = topic
        """The changelog (where a reset user's record was kept)."""
        self._retry: dict[Key, str] = {}
        self._reject: dict[Key, str] = {}
        self._now: list[Key] = []
        """Keys the current batch acted on (forgotten when it commits)."""
        self.reset_users: dict[str, None] = {}
        """Users the current batch reset: their records are written whatever the batch applies
        to them (the message that met the bad state may be a duplicate)."""

    def __bool__(self) -> bool:
        return bool(self._retry or self._reject)

    def isolated(self, key: Key, exc: BaseException) -> None:
        """The loop found that handling `key` raises `exc` every time."""
        reason = exception_reason(exc)
        if self._retry.pop(key, None) is None:
            self._retry[key] = reason
        else:  # it raised on an empty state too
            self._reject[key] = reason

    def retry(self, key: Key) -> str | None:
        """The reason, if `key` is to be handled on its user's reset state."""
        reason = self._retry.get(key)
        if reason is not None:
            self._now.append(key)
        return reason

    def reject(self, key: Key) -> str | None:
        """The reason, if `key` is to be a dead letter."""
        reason = self._reject.get(key)
        if reason is not None:
            self._now.append(key)
        return reason

    def meet(self, user_id: str, msg: Message, out: Output, now: float) -> bool:
        """`msg` (of `user_id`) is being handled: True if it is to be handled on the user's
        reset state (then the stored one is a dead letter, in `out`); raises `Rejected` if it is
        to be a dead letter itself (`exception`): isolated again, or its user has no stored
        state to blame."""
        key = (msg.topic(), msg.partition(), msg.offset())
        reason = self.retry(key)
        if reason is None:
            return False
        reset = self.reset(user_id, msg.partition())
        if reset is None:
            raise Rejected("", f"handling it raised {reason}", "exception")
        log.error("%s raised whenever it was handled (%s): it is handled again with the "
                  "user's state reset to empty", where(msg), reason)
        assert self.dead_letters is not None
        self.dead_letters.send_state(
            out, self.topic, msg.partition(), *reset, f"handling a message of the user raised "
            f"{reason}: the user starts again from an empty state", msg, now)
        self.reset_users[user_id] = None
        return True

    def commit(self) -> None:
        for key in self._now:
            self._retry.pop(key, None)
            self._reject.pop(key, None)
        self._now.clear()
        self.reset_users.clear()

    def abort(self) -> None:
        self._now.clear()
        self.reset_users.clear()
