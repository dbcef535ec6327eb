"""RecommendationsView and `refold recs`: committed lists only, latest wins, follows new ones."""

from __future__ import annotations

import time

from click.testing import CliRunner

from consumers.recs_view import RecommendationsView
from refold.core.config import Settings
from refold.core.kafka import make_producer
from refold.core.schemas import Recommendation, RecommendedItem, decode_recommendation, encode


def rec(user: str, version: int, *items: str) -> Recommendation:
    return Recommendation(user_id=user, items=[RecommendedItem(i, 1.0 / (n + 1))
                                               for n, i in enumerate(items)],
                          model_version=version, source="collaborative", generated_at=1.7e9)


class Txn:
    """A transactional producer like the worker's: lists become visible only on commit."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("recommendations")
        self.producer = make_producer(settings, {"transactional.id": f"{self.topic}-test"})
        self.producer.init_transactions(30)

    def send(self, recs: list[Recommendation | tuple[str, None]], commit: bool = True) -> None:
        self.producer.begin_transaction()
        for r in recs:
            if isinstance(r, tuple):  # a tombstone
                self.producer.produce(self.topic, None, r[0])
            else:
                self.producer.produce(self.topic, encode(r), r.user_id)
        if commit:
            self.producer.commit_transaction(30)
        else:
            self.producer.flush(30)
            self.producer.abort_transaction(30)


def test_catch_up_keeps_the_latest_committed_list_per_user(settings):
    txn = Txn(settings)
    txn.send([rec(f"u{i}", 1, "a", "b") for i in range(50)])
    txn.send([rec(f"u{i}", 2, "c") for i in range(25)] + [("u49", None)])
    txn.send([rec("u0", 3, "never-committed")], commit=False)
    with RecommendationsView(settings) as view:
        assert view.catch_up(20)
        assert len(view) == 49 and view.get("u49") is None
        assert view.get("u0") == rec("u0", 2, "c")
        assert view.get("u30") == rec("u30", 1, "a", "b")
        assert view.catch_up(5)  # already at the end: returns at once
        assert view.read == 76


def test_the_background_thread_follows_new_lists(settings):
    txn = Txn(settings)
    txn.send([rec("u1", 1, "a")])
    with RecommendationsView(settings) as view:
        assert view.catch_up(20)
        view.start(poll_interval=0.05)
        txn.send([rec("u1", 2, "b"), rec("u2", 2, "c")])
        deadline = time.monotonic() + 15
        while view.get("u2") is None or view.get("u1").model_version != 2:
            assert time.monotonic() < deadline, "the view did not follow"
            time.sleep(0.05)
        assert view.get("u1") == rec("u1", 2, "b")
        view.stop()
        assert not view.following


def test_refold_recs_prints_a_user_or_everyone(settings):
    from refold.cli import (
        cli,
        commands,  # noqa: F401
    )

    Txn(settings).send([rec("u1", 4, "x", "y"), rec("u2", 4, "z")])
    base = ["--bootstrap-servers", settings.bootstrap, "--topic-prefix", settings.topic_prefix,
            "recs"]
    runner = CliRunner()
    out = runner.invoke(cli, [*base, "u1", "--json"])
    assert out.exit_code == 0, out.output
    assert decode_recommendation(out.output.strip().encode()) == rec("u1", 4, "x", "y")
    out = runner.invoke(cli, [*base, "--all"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("u1: 2 item(s), collaborative, model v4")
    assert "u2: 1 item(s)" in out.output
    out = runner.invoke(cli, [*base, "nobody"])
    assert out.exit_code == 67, out.output  # EXIT_NOT_FOUND
    assert out.output.strip() == (
        f"refold recs: no recommendations for user 'nobody' in {settings.topic_prefix}"
        "recommendations (read to its end: 2 user(s) have one; a user gets a list with their "
        "first event)")


def test_a_poll_returns_once_a_message_has_arrived_not_when_a_batch_is_full(settings):
    """A reader that times its messages (the benchmarks' latency readers, the serve views) must
    see each one as it arrives: `consume(n, timeout)` would hold a lone message for `timeout`."""
    with RecommendationsView(settings) as view:
        assert view.catch_up(20)
        Txn(settings).send([rec("u1", 1, "a")])
        begun = time.monotonic()
        got = view.poll(timeout=30)
        while not got and time.monotonic() - begun < 30:  # (committed before this poll began)
            got = view.poll(timeout=30)
        assert got == 1 and view.get("u1") == rec("u1", 1, "a")
        assert time.monotonic() - begun < 15, "the poll waited for a full batch"
