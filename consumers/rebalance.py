"""The partitions a `TransactionalLoop` holds, and what happens when the group rebalances.

The consumer calls these callbacks inside `poll()`/`consume()` only, and no transaction spans
those calls, so when partitions are revoked every handled batch is already committed: the
processor only drops state.

A processor may answer an assignment with partitions that are not ready yet (a worker restores
their state from its local store and the changelog, on a thread, however long that takes):
they are paused, so the consumer keeps polling (and the member stays in the group) while the
other partitions go on; between batches the loop asks `resume_ready`, which resumes those the
processor's `resumable()` names. Until none is left, the process is held not ready on /ready
(`restoring`), as busy rather than stalled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from consumers.batch import Processor, names
from consumers.companions import Companions
from refold.core.probes import Probes

log = logging.getLogger(__name__)

TP = tuple[str, int]


class Assignment:
    """Assigned and paused partitions, kept up to date by the consumer's rebalance callbacks.

    `cooperative`: the consumer's assignment strategy is incremental (cooperative-sticky);
    `touched` is called on every change (the loop's idleness clock).
    """

    def __init__(self, processor: Processor, probes: Probes, *, cooperative: bool,
                 touched: Callable[[], None] = lambda: None,
                 companions: Companions | None = None) -> None:
        self.processor = processor
        self.probes = probes
        self.cooperative = cooperative
        self.touched = touched
        self.companions = companions
        """Companion topics (`consumers.companions`): assigned, paused and revoked with their
        subscribed partitions."""
        self.assigned: set[TP] = set()
        self.paused: set[TP] = set()
        """Assigned partitions whose state the processor is still restoring."""

    def subscribe(self, consumer: Consumer, topics: list[str]) -> None:
        consumer.subscribe(topics, on_assign=self.on_assign, on_revoke=self.on_revoke,
                           on_lost=self.on_lost)

    def held(self, offsets: dict[TP, int]) -> dict[TP, int]:
        """`offsets` of the partitions still assigned."""
        return {tp: off for tp, off in offsets.items() if tp in self.assigned}

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.companions is not None:  # assigned here, with the companions' partitions
            partitions = self.companions.assign(consumer, partitions)
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}
        self.touched()
        log.info("assigned %s", names(partitions))
        if partitions:
            self.probes.hold("restoring", f"taking over {len(partitions)} partition(s): "
                             "restoring their state", busy=True)
        try:
            waiting = self.processor.on_partitions_assigned(partitions)
        finally:
            self.probes.clear("joining")
        if waiting:
            self._pause(consumer, partitions, waiting)
        self._restored_all()

    def _pause(self, consumer: Consumer, partitions: list[TopicPartition],
               waiting: list[TopicPartition]) -> None:
        """Pause `waiting` (their state is being restored): the others go on meanwhile."""
        # Assigned here, not by the client after this callback: pausing a partition the client
        # has not assigned yet does nothing, and fetching would start at once.
        if self.companions is not None:  # assigned already; their companions wait with them
            waiting = self.companions.with_companions(waiting)
        elif self.cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        consumer.pause(waiting)
        self.paused |= {(tp.topic, tp.partition) for tp in waiting}
        log.info("paused %s until their state is restored", names(waiting))

    def resume_ready(self, consumer: Consumer) -> None:
        """Between batches: resume the paused partitions whose state the processor restored."""
        if not self.paused:
            return
        resumable = getattr(self.processor, "resumable", None)
        ready = [tp for tp in (resumable() if resumable else [])
                 if (tp.topic, tp.partition) in self.paused]
        if ready:
            if self.companions is not None:
                ready = self.companions.with_companions(ready)
            consumer.resume(ready)
            self.paused -= {(tp.topic, tp.partition) for tp in ready}
            log.info("resumed %s", names(ready))
            self._restored_all()
        self.touched()  # restoring is not idling

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Every handled batch was committed before consume() was called: nothing is in flight.
        if self.companions is not None:  # unassigned here, with the companions' partitions
            partitions = self.companions.revoke(consumer, partitions)
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned -= gone
        self.paused -= gone
        self.touched()
        log.info("revoked %s", names(partitions))
        self.processor.on_partitions_revoked(partitions)
        self._restored_all()

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s (session timed out): dropping their state", names(partitions))
        self.on_revoke(consumer, partitions)

    def _restored_all(self) -> None:
        if not self.paused:
            self.probes.clear("restoring")
