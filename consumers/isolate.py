"""Finding the one message whose handling raises, so that it goes to the dead letters instead of
stopping its partition in a crash loop.

When `handle()` raises something unexpected, the loop aborts the transaction, rolls the batch
back and reads it again. A transient fault passes on a retry; a message that always raises
would fail every batch that holds it. `PoisonIsolator` bounds that: after `retries` failures at
one batch size, the next batches are cut to half as many messages (the loop takes only `cap`),
so the failing batch shrinks around the culprit; a batch of one message that still fails
`retries` times names that message, which the processor then rejects (a dead letter with the
exception as its reason, in an ordinary transaction, so its offset and the state's move on
together). Each success doubles the cap back towards the batch size.

Per-event semantics do not depend on batch boundaries, so smaller batches change nothing but
speed, and only while a poison message is being looked for.

>>> iso = PoisonIsolator(batch_size=8, retries=2)
>>> msgs, sizes = list("abcdefgh"), []          # handling "c" raises, every time
>>> found = None
>>> while found is None:
...     batch = msgs[:iso.cap]
...     sizes.append(len(batch))
...     if "c" in batch:
...         found = iso.failed(batch)
...     else:
...         iso.succeeded(len(batch))
...         msgs = msgs[len(batch):]             # committed: the loop reads on
>>> found, sizes
('c', [8, 8, 4, 4, 2, 4, 4, 2, 2, 1, 1])
"""

from __future__ import annotations

from typing import Any


class PoisonIsolator:
    """How many messages the next batch may hold while a failing one is being isolated."""

    def __init__(self, batch_size: int, retries: int = 3) -> None:
        if retries < 1:
            raise ValueError("retries must be at least 1")
        self.batch_size = batch_size
        self.retries = retries
        self.cap = batch_size
        self._failed_at_cap = 0
        self.failures = 0
        """Failed attempts since the last message was isolated (for logs and metrics)."""

    @property
    def searching(self) -> bool:
        return self.cap < self.batch_size or self._failed_at_cap > 0

    def failed(self, batch: list[Any]) -> Any | None:
        """A batch raised: returns its only message once it is isolated, else None (and the
        next batch may be smaller)."""
        self.failures += 1
        self._failed_at_cap += 1
        if self._failed_at_cap < self.retries:
            return None
        self._failed_at_cap = 0
        if len(batch) <= 1:
            self.cap = max(self.cap, 1)
            return batch[0] if batch else None
        self.cap = max(1, len(batch) // 2)
        return None

    def succeeded(self, size: int) -> None:
        """A batch of `size` messages committed: grow the cap back."""
        self._failed_at_cap = 0
        if self.cap < self.batch_size:
            self.cap = min(self.batch_size, max(self.cap, size) * 2)

    def isolated(self) -> None:
        """The isolated message was rejected: back to full batches."""
        self.cap = self.batch_size
        self._failed_at_cap = 0
        self.failures = 0
