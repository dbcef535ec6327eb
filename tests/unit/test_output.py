"""The loop's output producer as processors see it: what it records of what was produced."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumers.batch import Output


class Refusing:
    """A producer in an error state: every produce raises the transaction's cause."""

    def produce(self, *args: object, **kwargs: object) -> None:
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                        "Unable to produce message"))

    def poll(self, timeout: float = 0.0) -> int:
        return 0


def test_a_refused_produce_still_names_its_topic() -> None:
    """A worker without WRITE on a topic can be refused at `produce` (not only in a delivery
    report): the topic must still be among those it asks the broker about."""
    out = Output(Refusing(), track_delivery=True)  # type: ignore[arg-type]
    with pytest.raises(KafkaException):
        out.produce("shop.recommendations", b"{}", "u1")
    assert out.topics == {"shop.recommendations"}
    assert out.produced == 0
