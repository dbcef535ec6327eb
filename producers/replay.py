"""Replay a dataset into Kafka in event-time order: the catalog first, then the events."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tqdm import tqdm

from producers.sdk import EventProducer
from refold.core.schemas import Event, Item


@dataclass
class ReplayReport:
    """What a replay sent and how fast."""

    events: int
    items: int
    seconds: float
    first_event_time: float | None = None
    last_event_time: float | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        return (
            f"replayed {self.events:,} events and {self.items:,} catalog items in "
            f"{self.seconds:.2f} s ({self.events_per_s:,.0f} events/s, acknowledged by the broker)"
        )


def paced(
    events: Iterable[Event], speedup: float | None, rate: float | None = None
) -> Iterator[Event]:
    """Yield events no faster than their event-time gaps divided by `speedup`, and no more than
    `rate` events per wall-clock second (None: no limit)."""
    start_wall = time.monotonic()
    start_event: float | None = None
    for n, ev in enumerate(events):
        due = start_wall + n / rate if rate else 0.0
        if speedup:
            if start_event is None:
                start_event = ev.event_time
            due = max(due, start_wall + (ev.event_time - start_event) / speedup)
        delay = due - time.monotonic()
        if delay > 0.001:
            time.sleep(min(delay, 5.0))
        yield ev


def replay(
    events: Iterable[Event],
    producer: EventProducer,
    *,
    catalog: Iterable[Item] = (),
    total: int | None = None,
    speedup: float | None = None,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> ReplayReport:
    """Send `catalog` then `events` (already in event-time order) and wait for every ack."""
    t0 = time.perf_counter()
    n_items = 0
    for item in catalog:
        producer.send_item(item)
        n_items += 1
    n, first, last = 0, None, None
    total = min(total, limit) if (total is not None and limit is not None) else (limit or total)
    bar = tqdm(total=total, unit="ev", disable=not progress, desc="replay", mininterval=0.5)
    with bar:
        for ev in paced(events, speedup, rate):
            if limit is not None and n >= limit:
                break
            producer.send(ev)
            first = ev.event_time if first is None else first
            last = ev.event_time
            n += 1
            if n % 1000 == 0:
                bar.update(1000)
        bar.update(n % 1000)
    producer.flush()
    return ReplayReport(n, n_items, time.perf_counter() - t0, first, last)
