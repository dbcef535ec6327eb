"""The pipeline bench's bookkeeping: which events an output covers, and their latency."""

from __future__ import annotations

import pytest

from refold.bench.pipeline import Coverage


def test_an_output_covers_its_cause_and_the_users_earlier_events():
    c = Coverage()
    c.expect("u1", "e1", sent=1.0)
    c.expect("u2", "e2", sent=1.5)
    c.expect("u1", "e3", sent=2.0)
    c.saw("u1", "e3", at=2.5)  # one list for u1's batch: e1 and e3
    assert (c.covered, c.outputs, c.unmatched) == (2, 1, 0)
    assert c.latencies == pytest.approx([1.5, 0.5])
    assert not c.wait(3, timeout=0.01)
    c.saw("u2", "e2", at=1.75)
    assert c.wait(3, timeout=0.01)


def test_an_output_naming_an_unknown_or_covered_event_is_unmatched():
    c = Coverage()
    c.expect("u1", "e1")
    c.saw("u2", "e1", at=1.0)  # another user's event
    c.saw("u1", "nope", at=1.0)
    c.saw("u1", "e1", at=1.0)
    c.saw("u1", "e1", at=2.0)  # already covered
    assert (c.covered, c.outputs, c.unmatched) == (1, 4, 3)
    assert c.latencies == []  # sent without a time: no latency kept
