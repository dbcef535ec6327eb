"""Asking a group who is in it: a coordinator still loading (a broker that just started) is
asked again; a group that does not exist has no members; other errors are raised."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from consumers.instances import members


class Admin:
    """Answers `describe_consumer_groups` with `answers` in turn (errors are raised)."""

    def __init__(self, *answers) -> None:
        self.answers, self.asked = list(answers), 0

    def describe_consumer_groups(self, groups, request_timeout):
        self.asked += 1
        future: Future = Future()
        answer = self.answers.pop(0)
        if isinstance(answer, KafkaError):
            future.set_exception(KafkaException(answer))
        else:
            future.set_result(SimpleNamespace(members=answer))
        return {groups[0]: future}


def test_a_loading_coordinator_is_asked_again() -> None:
    admin = Admin(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS),
                  KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE), ["m1"])
    assert members(admin, "g", sleep=lambda s: None) == ["m1"] and admin.asked == 3


def test_no_group_is_no_member_and_other_errors_are_raised() -> None:
    assert members(Admin(KafkaError(KafkaError.GROUP_ID_NOT_FOUND, "GROUP_ID_NOT_FOUND")),
                   "g") == []
    with pytest.raises(KafkaException):
        members(Admin(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)), "g")


def test_patience_runs_out() -> None:
    busy = KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    with pytest.raises(KafkaException):
        members(Admin(busy, busy, busy), "g", patience=0.0, sleep=lambda s: None)
