"""Isolating the message whose handling raises: found wherever it is, transient faults pass."""

from __future__ import annotations

import pytest

from consumers.isolate import PoisonIsolator


def drive(n: int, poison: set[int], batch_size: int, retries: int, transient: int = 0
          ) -> tuple[list[int], int]:
    """Run messages 0..n-1 through a loop that commits what passes; returns the rejected
    messages and the number of batches tried."""
    iso, at, rejected, tries = PoisonIsolator(batch_size, retries), 0, [], 0
    quarantined: set[int] = set()
    while at < n:
        tries += 1
        assert tries < 10_000
        batch = list(range(at, min(n, at + iso.cap)))
        if transient:
            transient -= 1
            assert iso.failed(batch) is None
            continue
        if any(m in poison and m not in quarantined for m in batch):
            found = iso.failed(batch)
            if found is not None:
                quarantined.add(found)
                rejected.append(found)
                iso.isolated()
            continue
        iso.succeeded(len(batch))
        at += len(batch)
    return rejected, tries


@pytest.mark.parametrize("poison", [{0}, {499}, {250}, {3, 4}, {10, 400}])
def test_every_poison_message_is_isolated_and_nothing_else(poison) -> None:
    rejected, tries = drive(1000, poison, batch_size=500, retries=3)
    assert sorted(rejected) == sorted(poison)
    assert tries < 100 * len(poison) + 10


def test_a_transient_failure_only_retries() -> None:
    rejected, tries = drive(1000, set(), batch_size=500, retries=3, transient=2)
    assert rejected == [] and tries == 4  # two failures, then two full batches


def test_retries_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PoisonIsolator(10, retries=0)
