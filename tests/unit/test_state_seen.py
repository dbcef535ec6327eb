"""The refitter's de-duplication: across partitions, within a horizon, re-reads are not dups."""

from __future__ import annotations

from consumers.state.seen import SeenIds
from models.expiry import Horizon

DAY = 86400.0


def test_an_id_is_a_duplicate_from_any_partition_until_its_horizon(tmp_path) -> None:
    with SeenIds(tmp_path, Horizon(DAY), "topic-1", batch=3) as seen:
        assert not seen.duplicate("e1", 10 * DAY, 0, 1)
        assert seen.duplicate("e1", 10 * DAY + 5, 4, 9)  # another partition, another user
        for n in range(10):  # past the batch: the first id is now on disk
            assert not seen.duplicate(f"x{n}", 10 * DAY + n, 1, n)
        assert seen.duplicate("e1", 10.5 * DAY, 2, 2)
        assert not seen.duplicate("e1", 12.5 * DAY, 2, 3)  # expired: a new event
        assert seen.duplicates == 2


def test_a_restarted_refitter_rereading_the_same_messages_is_not_fooled(tmp_path) -> None:
    with SeenIds(tmp_path, Horizon(DAY), "topic-1") as seen:
        for n in range(100):
            seen.duplicate(f"e{n}", 100.0 + n, n % 3, n)
    with SeenIds(tmp_path, Horizon(DAY), "topic-1") as seen:  # from an older checkpoint
        assert not any(seen.duplicate(f"e{n}", 100.0 + n, n % 3, n) for n in range(100))
        assert seen.duplicate("e5", 200.0, 1, 500)


def test_ids_of_another_incarnation_of_the_topic_are_forgotten(tmp_path) -> None:
    with SeenIds(tmp_path, Horizon(DAY), "topic-1") as seen:
        seen.duplicate("e1", 1.0, 0, 0)
    with SeenIds(tmp_path, Horizon(DAY), "topic-2") as seen:
        assert not seen.duplicate("e1", 1.0, 0, 5)


def test_prune_forgets_ids_a_horizon_older_than_any_would_look_for(tmp_path) -> None:
    with SeenIds(tmp_path, Horizon(DAY, granularity=24), "t") as seen:
        for n in range(72):
            seen.duplicate(f"e{n}", n * 3600.0, 0, n)  # one an hour for three days
        # the newest is at 71 h: a partition read behind may still look a day before 47 h
        assert seen.prune() == 23  # hours 0..22
        assert not seen.duplicate("e0", 23 * 3600.0, 0, 100)  # forgotten: a new event
        assert seen.duplicate("e30", 40 * 3600.0, 0, 101)


def test_the_horizon_is_judged_on_the_events_own_time(tmp_path) -> None:
    """A partition read late still finds its duplicates, whatever time others reached."""
    with SeenIds(tmp_path, Horizon(DAY), "t") as seen:
        assert not seen.duplicate("a", 100.0, 0, 1)
        assert not seen.duplicate("z", 10 * DAY, 1, 1)  # another partition, far ahead
        assert seen.duplicate("a", 160.0, 2, 1)
