"""The all-in-memory state's reset of a user whose state makes handling raise: an empty history
in its place (written with the batch), its recent ids kept, and an abort puts the old one back."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec

from consumers.changelog import user_key
from consumers.state.memory import MemoryState
from models.foldin_config import FoldInConfig
from models.recommender import OnlineRecommender
from refold.core.schemas import Event


def test_a_reset_user_has_an_empty_history_until_an_abort_puts_it_back() -> None:
    rec = OnlineRecommender(FoldInConfig(k=5))
    state = MemoryState(rec, SimpleNamespace(topic="changelog"), dedup_window=10)  # type: ignore[arg-type]
    ev = Event(event_id="e1", user_id="u1", item_id="i1", event_type="click", event_time=10.0)
    assert state.admit(ev, "e1", 0)
    rec.process_batch([ev], [0])
    state.commit()
    assert state.reset_user("nobody", 0) is None
    key, value = state.reset_user("u1", 0)
    assert key == user_key("u1")
    assert msgspec.json.decode(value)["history"]["seq"] == 1  # the state as it was
    assert rec.user_state("u1")["seq"] == 0 and state.event_ids("u1", 0) == ["e1"]
    state.abort()
    assert rec.user_state("u1")["seq"] == 1
