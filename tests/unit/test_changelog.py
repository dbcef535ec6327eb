"""The changelog's records without a broker: keys, exact round trips, the offset check."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from consumers import changelog
from consumers.changelog import ChangelogError, ChangelogReader
from models.history import UserHistory
from refold.core.config import Settings


@pytest.mark.parametrize("user", ["u1", "~p0/meta", "~~x", "~", "a/b", "é ü"])
def test_a_user_key_never_looks_like_a_partition_record(user: str) -> None:
    key = changelog.user_key(user)
    assert changelog.parse_key(key) == ("user", user)
    assert not key.startswith(b"~p")


def test_partition_records_parse_back_and_the_meta_record_comes_last() -> None:
    plain = {"events": 7, "t_ref": 12.5, "dirty": ["x"],
             "items": {"a/b": {"pop": 1.5}, "c": {"pop": 0.0, "users": [["u", 1.0]]}}}
    records = list(changelog.partition_records(4, plain, offset=42))
    assert [changelog.parse_key(k) for k, _ in records] == [
        ("item", "a/b"), ("item", "c"), ("meta", "")]
    assert records[0][0] == b"~p4/item/a/b"
    meta = msgspec.json.decode(records[-1][1])
    assert meta == {"v": 1, "offset": 42, "events": 7, "t_ref": 12.5, "dirty": ["x"]}


def test_a_user_record_restores_the_history_bit_for_bit() -> None:
    h = UserHistory(max_events=4, max_excluded=3)
    ids = ["i0", "i1", "i2", "i3", "i4"]
    for k, w in enumerate([0.1, 1 / 3, -2.0, 7.25, 0.3, 1e-7]):
        h.add(k % 5, w, t=1.7e9 + k * 0.123456789, session_id=f"s{k // 2}", consume=k == 2,
              block=k == 4)
    state = h.to_state(ids)
    value = changelog.user_value(state, ["e1", "e2"])
    data = msgspec.json.decode(value)
    again = UserHistory.from_state(changelog.unpack_history(data["history"]), ids.index)
    assert again.to_state(ids) == state
    assert data["ids"] == ["e1", "e2"]
    np.testing.assert_array_equal(again.events(), h.events())


def _reader(exact: bool) -> ChangelogReader:
    return ChangelogReader(Settings(consumer_group="g"), exact=exact)


def _meta(offset: int) -> dict[bytes, bytes]:
    plain = {"events": 0, "t_ref": None, "dirty": [], "items": {}}
    return dict(changelog.partition_records(0, plain, offset))


def test_the_state_must_stand_at_the_committed_offset() -> None:
    exact = _reader(exact=True)
    assert exact.behind({0: _meta(10)}, {0: 10}) == []
    assert exact.behind({0: _meta(8)}, {0: 10}) == [0]  # a marker not visible yet: read on
    assert exact.behind({0: {}}, {0: 10}) == [0]
    assert exact.behind({0: {}}, {0: None}) == []  # nothing committed, nothing written
    with pytest.raises(ChangelogError, match="beyond the committed"):
        exact.behind({0: _meta(12)}, {0: 10})
    with pytest.raises(ChangelogError, match="no committed offset"):
        exact.behind({0: _meta(12)}, {0: None})


def test_at_least_once_state_may_be_ahead_of_the_offsets() -> None:
    loose = _reader(exact=False)
    assert loose.behind({0: _meta(12)}, {0: 10}) == []
    assert loose.behind({0: _meta(12)}, {0: None}) == []
    assert loose.behind({0: _meta(8)}, {0: 10}) == [0]

