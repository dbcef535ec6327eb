"""Which messages of a micro-batch the fold-in worker applies: its first two steps.

`Admission.admit` goes through the batch in stream order, before anything is applied:

1. it checks each message (`consumers.deadletter`, `consumers.poison`, the model's event weights):
   a bad one becomes a dead letter in the batch's transaction and the batch goes on, rather than
   stop the partition. A message the loop isolated (`consumers.suspects`) is rejected, or handled
   on its user's reset state;
2. it hands each good one to `state.admit`, which remembers its id, so an event or impression
   sent again counts once, and judges its user's expiry. A user expired after earlier messages of
   theirs in the batch must be renewed between those and this one: the batch is cut there
   (`Cut`), and the worker applies it segment by segment.

What it admitted and what it turned away come back as `Admitted`; the worker counts the latter
with the batch's other counts, committed or dropped with it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from confluent_kafka import Message

from consumers.batch import Output
from consumers.deadletter import (
    DeadLetters,
    Limits,
    Rejected,
    check_event_message,
    check_impression_message,
)
from consumers.feedback import Op
from consumers.poison import check_numbers
from consumers.state.memory import MemoryState
from consumers.state.stored import StoreState
from consumers.state.users import Arrival
from consumers.suspects import Suspects
from models.recommender import OnlineRecommender
from refold.core.config import Settings
from refold.core.errors import ModelError
from refold.core.kafka import where
from refold.core.schemas import Event, Impression

log = logging.getLogger(__name__)

IMPRESSION_ID = "~imp/"
"""Prefix of impression ids among a user's recent ids (so they never meet an event id)."""


class Cut(NamedTuple):
    """Where the batch is cut: `user` is renewed after its first `ops` ops and `events` events
    are applied (`user` None: the batch's end, nobody to renew)."""

    ops: int
    events: int
    user: str | None
    partition: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """What `Admission.admit` let through, in stream order, and what it turned away."""

    ops: list[Op]
    """Every admitted event and impression, with its partition."""
    events: list[tuple[Event, Message]]
    """The admitted events, with the message each was read from."""
    cuts: list[Cut]
    """Users to renew mid-batch, in order."""
    dead_letters: list[str]
    """The error class of each dead letter sent (`bad_state` for a user's reset state)."""
    counts: Counter[str]
    """`duplicates` skipped and `users_reset`, for the worker's totals."""


class Admission:
    """Checks and de-duplicates a batch's messages for `FoldInWorker`."""

    def __init__(self, settings: Settings, recommender: OnlineRecommender,
                 state: StoreState | MemoryState, suspects: Suspects,
                 dead_letters: DeadLetters) -> None:
        self.settings = settings
        self.recommender = recommender
        self.state = state
        self.suspects = suspects
        self.dead_letters = dead_letters
        self.limits = Limits.of(settings)
        self.impressions_topic = settings.topic("impressions")

    def admit(self, messages: list[Message], out: Output, now: float) -> Admitted:
        """Steps 1-2 for `messages`; dead letters go to `out`."""
        ops: list[Op] = []
        events: list[tuple[Event, Message]] = []
        cuts: list[Cut] = []
        dead: list[str] = []
        counts: Counter[str] = Counter()
        for msg in messages:
            try:
                item = self.check(msg, now)
                if self.suspects and self.suspects.meet(item.user_id, msg, out, now):
                    dead.append("bad_state")  # and the user starts again
                    counts["users_reset"] += 1
            except Rejected as err:
                self.dead_letters.send(out, msg, err, now)
                dead.append(err.error_class)
                continue
            offset = msg.offset() if isinstance(item, Event) else None
            admitted = self.state.admit(item, id_of(item), msg.partition(), offset)
            if not admitted:
                log.info("duplicate %s at %s: skipped", id_of(item), where(msg))
                counts["duplicates"] += 1
                continue
            if admitted is Arrival.RENEW_BEFORE:  # expired after earlier messages of theirs
                cuts.append(Cut(len(ops), len(events), item.user_id, msg.partition()))
            ops.append((item, msg.partition()))
            if isinstance(item, Event):
                events.append((item, msg))
        return Admitted(ops, events, cuts, dead, counts)

    def check(self, msg: Message, now: float) -> Event | Impression:
        """The message decoded, or `Rejected` with the reason it is a dead letter."""
        reason = self.suspects.reject((msg.topic(), msg.partition(), msg.offset())) \
            if self.suspects else None
        if reason is not None:
            raise Rejected("", f"handling it raised {reason}", "exception")
        if msg.topic() == self.impressions_topic:
            return check_impression_message(msg.key(), msg.value(), self.limits, now)
        event = check_event_message(msg.key(), msg.value(), self.limits, now)
        check_numbers(event, self.settings.max_abs_weight)
        try:  # the model's own rules (e.g. event weights) are part of "usable"
            self.recommender.config.weights.weight(event.event_type, event.value, event.weight)
        except ModelError as exc:
            raise Rejected("", str(exc), "model") from None
        return event


def id_of(item: Event | Impression) -> str:
    """The id a message is de-duplicated by."""
    return item.event_id if isinstance(item, Event) else IMPRESSION_ID + item.impression_id
