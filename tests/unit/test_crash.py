"""The fault tests' kill hook: its setting is parsed strictly (a typo must not silently disable
a crash test), and it fires at its point of its batch only."""

from __future__ import annotations

import pytest

from consumers.crash import CrashPoint


@pytest.mark.parametrize("spec, point", [("after_produce:3", ("after_produce", 3)),
                                         ("after_commit:1", ("after_commit", 1)), ("", None)])
def test_the_crash_hook_is_parsed(spec: str, point: tuple | None) -> None:
    parsed = CrashPoint.parse(spec)
    assert (parsed and (parsed.point, parsed.batch)) == point


@pytest.mark.parametrize("spec", ["after_produce", "before:1", "after_commit:0", "x:y"])
def test_a_bad_crash_hook_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="REFOLD_TEST_CRASH_AT"):
        CrashPoint.parse(spec)


def test_the_hook_is_due_at_its_point_of_its_batch_only() -> None:
    hook = CrashPoint("after_offsets", 2)
    assert hook.due("after_offsets", 2)
    assert not hook.due("after_offsets", 1) and not hook.due("after_commit", 2)
