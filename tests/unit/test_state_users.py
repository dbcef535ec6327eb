"""The store-backed users: what the recommender sees, and results independent of batching."""

from __future__ import annotations

import random

import pytest

from consumers.state.local import LocalState
from consumers.state.users import Arrival, StoredUsers
from models.expiry import Horizon
from models.history import UserHistory

ITEMS = [f"i{n}" for n in range(20)]
INDEX = {x: n for n, x in enumerate(ITEMS)}.__getitem__


def users_at(path, cache_users: int = 3) -> StoredUsers:
    local = LocalState(path, "cl", new_history=lambda: UserHistory(4), item_ids=lambda: ITEMS,
                       item_index=INDEX, cache_users=cache_users,
                       user_horizon=Horizon(1000.0, granularity=10),
                       id_horizon=Horizon(500.0, granularity=10))
    for p in (0, 1):
        local.open(p)
    return StoredUsers(local)


def run(users: StoredUsers, events: list[tuple[str, int, int, float]], sizes: list[int]) -> None:
    """Learn `events` (user, partition, item, t) in batches of `sizes`; each batch: each event
    arrives (expiry judged) and is learned, in order; stage the users, sweep the expired,
    commit."""
    at = 0
    for size in sizes:
        touched = []
        for user, p, item, t in events[at:at + size]:
            if users.arrive(user, p, t)[1] is Arrival.RENEW_BEFORE:
                users.renew(user, p)  # learned in order here: the earlier ones are applied
            users.get_or_create(user, p, t).add(item, 1.0, t)
            touched.append(user)
        for user in dict.fromkeys(touched):
            users.local.stage_user(user)
        for p in (0, 1):
            for bucket, key in users.local.inactive(p, users.watermark(p), 1000):
                users.local.stage_expiry(p, key, bucket)
        users.commit({})
        at += size


def stream(seed: int) -> list[tuple[str, int, int, float]]:
    rng, t, out = random.Random(seed), 0.0, []
    for _ in range(400):
        t += rng.expovariate(1 / 20.0) * (30 if rng.random() < 0.02 else 1)  # some long gaps
        u = rng.randrange(12)
        out.append((f"u{u}", u % 2, rng.randrange(20), t))
    return out


def contents(users: StoredUsers) -> dict:
    return {p: dict(s.records(b"")) for p, s in users.local.stores.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_state_does_not_depend_on_batch_boundaries(tmp_path, seed) -> None:
    events = stream(seed)
    one_by_one = users_at(tmp_path / "a")
    run(one_by_one, events, [1] * len(events))
    rng, sizes, left = random.Random(seed), [], len(events)
    while left:
        sizes.append(min(left, rng.randrange(1, 60)))
        left -= sizes[-1]
    batched = users_at(tmp_path / "b")
    run(batched, events, sizes)
    assert contents(batched) == contents(one_by_one)
    assert one_by_one.watermarks == batched.watermarks


def test_an_evicted_user_comes_back_from_its_store(tmp_path) -> None:
    users = users_at(tmp_path, cache_users=1)
    run(users, [("a", 0, 1, 1.0), ("b", 1, 2, 2.0), ("c", 0, 3, 3.0)], [3])
    assert len(users) == 1 and "a" in users  # evicted, but known (read from its store)
    assert users.get("a").events()["item"].tolist() == [1]
    assert users.get("zz") is None and users.partition_of("b") == 1


def test_an_abort_puts_the_watermarks_back(tmp_path) -> None:
    users = users_at(tmp_path)
    run(users, [("a", 0, 1, 10.0)], [1])
    users.arrive("a", 0, 99.0)[0].history.add(2, 1.0, 99.0)
    users.abort()
    assert users.watermarks == {0: 10.0}
    assert users.get("a").events()["item"].tolist() == [1]


def test_a_user_is_expired_by_their_own_gap_once_per_message(tmp_path) -> None:
    """One rule: expired when the last activity is older than the horizon before the
    partition's watermark as of the message, that message's own time included. Nothing else
    moved partition 0's watermark, so only the user's own gap (1,200 s > 1,000) expires them."""
    users = users_at(tmp_path)
    run(users, [("a", 0, 1, 10.0)], [1])
    entry, arrival = users.arrive("a", 0, 1210.0)
    assert arrival is Arrival.RENEWED and len(entry.history) == 0
    assert users.get_or_create("a", 0, 1210.0) is entry.history  # no second judgement
    assert users.watermarks == {0: 1210.0}


def test_within_the_horizon_the_user_is_kept(tmp_path) -> None:
    users = users_at(tmp_path)
    run(users, [("a", 0, 1, 10.0)], [1])
    entry, arrival = users.arrive("a", 0, 900.0)
    assert arrival is Arrival.KNOWN and entry.history.events()["item"].tolist() == [1]


def test_an_expiry_after_the_users_earlier_messages_of_the_batch_waits_for_them(
        tmp_path) -> None:
    users = users_at(tmp_path)
    users.arrive("a", 0, 10.0)[0].remember("e1", 10.0)  # as `StoreState.admit` does
    entry, arrival = users.arrive("a", 0, 1500.0)  # the first message is not applied yet
    assert arrival is Arrival.RENEW_BEFORE and len(entry.history) == 0
    entry.history.add(1, 1.0, 10.0)  # the caller applies it, then renews
    users.renew("a", 0)
    assert len(users.get_or_create("a", 0)) == 0
