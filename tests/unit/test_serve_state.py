"""The serve process's state: packed lists, read-time filters, fills, trending, explanations."""

from __future__ import annotations

import zlib

import pytest

from consumers.packed_lists import PackedList, UserLists
from consumers.serve_state import NotHere, ServeState

NOW = 1_000.0


def state(**kw: object) -> ServeState:
    s = ServeState(**kw)  # type: ignore[arg-type]
    for item, cats, title in [("a", ["Drama"], "Alpha"), ("b", ["Comedy"], None),
                              ("c", ["Drama", "Comedy"], None), ("d", [], None),
                              ("p1", ["Drama"], None), ("p2", ["Comedy"], None)]:
        s.set_item(item, True, cats, title)
    for item, n in [("p1", 5), ("p2", 4), ("a", 3), ("d", 1)]:
        for t in range(n):
            s.event(f"x{t}", item, "click", NOW - t, offset=t)
    s.put_list("u1", ["a", "b", "c"], [0.9, 0.8, 0.7], "collaborative", 7, NOW - 5,
               cause_offset=10, basis=[("d", "rating"), ("a", "view")])
    return s


def ids(answer: object) -> list[str]:
    return [i.item_id for i in answer.items]  # type: ignore[attr-defined]


def test_packed_list_round_trips_and_refuses_too_long_lists() -> None:
    p = PackedList("content", [1, 2], [0.5, 0.25], None, None, 3.5, [9, 4], ["purchase", None])
    assert PackedList.unpack(p.pack()) == p
    assert len(PackedList("popular", list(range(20)), [0.0] * 20, 1, 1, 1.0,
                          list(range(5)), ["view"] * 5).pack()) == 24 + 20 * 8 + 5 * 5
    with pytest.raises(ValueError):
        PackedList("popular", list(range(256)), [0.0] * 256).pack()


def test_a_user_gets_their_list_with_its_version_and_scores() -> None:
    got = state().recommend("u1", k=3, now=NOW)
    assert (got.source, got.model_version, got.generated_at) == ("collaborative", 7, NOW - 5)
    assert ids(got) == ["a", "b", "c"] and got.items[0].score == pytest.approx(0.9)
    assert [i.source for i in got.items] == ["collaborative"] * 3
    assert ids(state().recommend("u1", k=2, now=NOW)) == ["a", "b"]


def test_inactive_items_are_filtered_and_the_list_is_filled_from_popular() -> None:
    s = state()
    s.set_item("b", False, ["Comedy"])
    got = s.recommend("u1", k=4, now=NOW)
    assert ids(got) == ["a", "c", "p1", "p2"]
    assert [i.source for i in got.items] == ["collaborative"] * 2 + ["popular"] * 2
    s.set_item("p1", False, [])
    assert "p1" not in ids(s.recommend("u1", k=5, now=NOW))
    assert "p1" not in ids(s.popular(5, NOW))


def test_a_dismissal_hides_the_item_until_a_list_that_answers_it_arrives() -> None:
    s = state()
    s.event("u1", "b", "dismiss", NOW, offset=9)  # older than the list's cause: the list knows
    assert "b" in ids(s.recommend("u1", k=3, now=NOW))
    s.event("u1", "b", "dismiss", NOW, offset=11)
    assert ids(s.recommend("u1", k=3, now=NOW)) == ["a", "c", "p1"]
    s.put_list("u1", ["a", "b"], [1.0, 0.5], "collaborative", 7, NOW, cause_offset=10)
    assert "b" not in ids(s.recommend("u1", k=3, now=NOW))  # a list from before the dismissal
    s.put_list("u1", ["a", "b"], [1.0, 0.5], "collaborative", 7, NOW, cause_offset=11)
    assert s.lists.pending_users() == 0  # answered: the worker blocks it from now on


def test_a_new_user_gets_trending_minus_what_they_dismissed() -> None:
    s = state()
    got = s.recommend("new", k=3, now=NOW)
    assert (got.source, got.model_version, ids(got)) == ("popular", None, ["p1", "p2", "a"])
    s.event("new", "p1", "dismiss", NOW, offset=3)
    assert ids(s.recommend("new", k=2, now=NOW)) == ["p2", "a"]


def test_exclude_and_category_apply_to_the_list_and_to_the_fill() -> None:
    s = state()
    assert ids(s.recommend("u1", k=3, now=NOW, exclude=["a", "zz"])) == ["b", "c", "p1"]
    assert ids(s.recommend("u1", k=3, now=NOW, category="Drama")) == ["a", "c", "p1"]
    assert ids(s.recommend("u1", k=9, now=NOW, category="Nope")) == []
    assert ids(s.popular(9, NOW, category="Comedy")) == ["p2"]


def test_trending_counts_positive_events_only_and_decays() -> None:
    s = state(trending_half_life=1.0)
    for _ in range(10):
        s.event("y", "c", "dismiss", NOW, offset=0)
        s.event("y", "b", "rating", NOW, offset=0, value=1.0)  # negative
    assert "b" not in ids(s.popular(9, NOW)) and "c" not in ids(s.popular(9, NOW))
    s.event("y", "b", "purchase", NOW + 10, offset=1, weight=0.001)
    assert ids(s.popular(1, NOW + 10)) == ["b"]  # ten half-lives later, a tiny new event wins


def test_similar_items_leave_out_inactive_neighbours_and_unknown_items_are_none() -> None:
    s = state()
    s.set_similar("a", [("c", 0.9), ("b", 0.5), ("new", 0.1)], model_version=3)
    s.set_item("c", False, [])
    got = s.similar("a", k=5)
    assert got is not None and got.model_version == 3
    assert [(n.item_id, round(n.score, 2)) for n in got.items] == [("b", 0.5), ("new", 0.1)]
    assert s.similar("a", k=1).items[0].item_id == "b"
    assert s.similar("b", k=5).items == []  # known, no neighbours yet
    assert s.similar("never-seen", k=5) is None
    s.delete_similar("a")
    assert s.similar("a", k=5).items == []


def test_explanations_name_the_most_similar_basis_item_or_the_popularity() -> None:
    s = state()
    s.set_similar("d", [("b", 0.4), ("c", 0.2)], 1)
    s.set_similar("a", [("c", 0.6)], 1)
    s.set_similar("b", [("a", 0.9)], 1)  # b's own neighbours name basis item a
    s.set_item("b", True, ["Comedy"], "Bee")
    got = s.recommend("u1", k=4, now=NOW, explain=True)
    reasons = {i.item_id: i.reason for i in got.items}
    assert reasons["b"].item_id == "a" and reasons["b"].text == "because you viewed Alpha"
    assert reasons["c"].item_id == "a"  # 0.6 via a beats 0.2 via d
    assert reasons["a"].kind == "profile"
    s.put_list("u2", ["c"], [1.0], "collaborative", 7, NOW, basis=[("a", None)])
    assert s.recommend("u2", k=1, now=NOW, explain=True).items[0].reason.text == \
        "because you liked Alpha"
    assert reasons["p1"].kind == "popular" and reasons["p1"].text == "popular in Drama"
    new = s.recommend("new", k=1, now=NOW, explain=True, category="Drama")
    assert new.items[0].reason.category == "Drama"
    assert s.recommend("u1", k=1, now=NOW).items[0].reason is None


def test_a_replica_answers_only_for_the_partitions_it_holds() -> None:
    mine = [u for u in (f"u{n}" for n in range(50)) if zlib.crc32(u.encode()) % 4 == 1]
    other = next(u for u in (f"u{n}" for n in range(50)) if zlib.crc32(u.encode()) % 4 == 2)
    s = ServeState(partitions=4, held=[1])
    assert s.recommend(mine[0], k=1, now=NOW).source == "popular"
    with pytest.raises(NotHere) as err:
        s.recommend(other, k=1, now=NOW)
    assert err.value.partition == 2
    s.event(other, "a", "dismiss", NOW, offset=1)  # not this replica's user: not held
    assert s.lists.pending_users() == 0


def test_lists_are_bounded_and_the_least_recently_updated_go_first() -> None:
    lists = UserLists(max_users=2)
    for user in (b"a", b"b", b"a", b"c"):
        lists.put(user, PackedList("popular", [1], [1.0]))
    assert sorted(lists.users()) == [b"a", b"c"] and lists.evicted == 1
    lists.delete(b"a")
    assert lists.get(b"a") is None and len(lists) == 1


def test_the_memory_of_the_lists_is_counted_as_they_come_and_go() -> None:
    import sys

    lists = UserLists(max_users=2)
    lists.put(b"a", PackedList("popular", [1], [1.0]))
    lists.put(b"a", PackedList("popular", [1, 2], [1.0, 0.5]))
    lists.put(b"bb", PackedList("popular", [1], [1.0]))
    lists.put(b"c", PackedList("popular", [1], [1.0]))  # evicts a
    lists.delete(b"c")
    expected = sys.getsizeof(b"bb") + sys.getsizeof(PackedList("popular", [1], [1.0]).pack())
    assert lists.value_bytes == expected
    assert lists.memory_bytes() == expected + sys.getsizeof(lists._lists)
