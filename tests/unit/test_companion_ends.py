"""A partition end the broker cannot tell during a restart makes the merge wait, not the worker
stop; a refusal still stops it."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from consumers.companions import UNKNOWN_END, _end

TP = TopicPartition("t.impressions", 1)


def answer(offset: int | None = None, code: int | None = None) -> Future:
    f: Future = Future()
    if code is None:
        f.set_result(SimpleNamespace(offset=offset))
    else:
        f.set_exception(KafkaException(KafkaError(code)))
    return f


def test_an_answer_is_the_end() -> None:
    assert _end(TP, answer(42)) == 42


@pytest.mark.parametrize("code", [KafkaError.FENCED_LEADER_EPOCH,
                                  KafkaError.NOT_LEADER_FOR_PARTITION,
                                  KafkaError.LEADER_NOT_AVAILABLE, KafkaError._TRANSPORT,
                                  KafkaError._TIMED_OUT])
def test_a_broker_away_or_moving_gives_an_unknown_end_that_counts_as_lagging(code: int) -> None:
    assert _end(TP, answer(code=code)) == UNKNOWN_END > 10**15


def test_a_refusal_is_raised() -> None:
    with pytest.raises(KafkaException):
        _end(TP, answer(code=KafkaError.TOPIC_AUTHORIZATION_FAILED))
