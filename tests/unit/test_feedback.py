"""The worker's side of the loop without a broker: ordering around the ranking, attribution,
conversions, replaced lists and the drawn lists."""

from __future__ import annotations

import numpy as np

from consumers.feedback import Facts, Feedback, record, slot_of
from models.foldin import ItemFactors
from models.foldin_config import FoldInConfig
from models.recommender import OnlineRecommender
from refold.core.schemas import Cause, Event, Impression, ShownItem

ITEMS = [f"i{k}" for k in range(30)]


def recommender(**config) -> OnlineRecommender:
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(30, 4)).astype(np.float32)
    return OnlineRecommender(FoldInConfig(k=5, full_events=1, **config),
                             ItemFactors(ITEMS, Y, version=1))


def event(user: str, item: str, kind: str, t: float, n: int = 0) -> Event:
    return Event(event_id=f"{user}-{item}-{kind}-{t}-{n}", user_id=user, item_id=item,
                 event_type=kind, event_time=t)


def impression(user: str, rec: str, t: float, items: list[str]) -> Impression:
    return Impression(impression_id=f"x-{rec}-{t}", rec_id=rec, user_id=user, shown_at=t,
                      source="collaborative",
                      items=[ShownItem(item_id=i, position=p) for p, i in enumerate(items, 1)])


def test_what_follows_a_users_last_event_is_applied_after_the_ranking() -> None:
    ops = [(impression("u1", "r0", 1.0, ["i1"]), 0), (event("u1", "i2", "view", 2.0), 0),
           (impression("u1", "r1", 3.0, ["i3"]), 0), (impression("u2", "r2", 1.0, ["i4"]), 1),
           (event("u3", "i5", "view", 1.0), 2)]
    before, after = Feedback.split(ops)
    assert [o[0].user_id for o in before] == ["u1", "u1", "u3"]
    assert [(o[0].user_id, o[0].rec_id) for o in after] == [("u1", "r1"), ("u2", "r2")]


def test_a_click_on_a_shown_item_is_credited_and_a_new_users_first_purchase_timed() -> None:
    rec = recommender()
    fb, facts = Feedback(rec), Facts()
    fb.apply([(event("new", "i1", "view", 100.0), 0),
              (impression("new", "r1", 110.0, ["i7", "i8"]), 0),
              (event("new", "i8", "click", 120.0), 0),
              (event("new", "i8", "purchase", 130.0), 0),
              (event("new", "i9", "purchase", 140.0), 0)], facts)
    credited = [(h.rec_id, h.position, h.event_type) for h in facts.outcomes]
    assert credited == [("r1", 2, "click"), ("r1", 2, "purchase")]
    assert facts.ttfc == [30.0]  # first event 100 s, first purchase 130 s
    assert facts.purchases == [True, False]
    assert [i.rec_id for i in facts.impressions] == ["r1"]


def test_the_same_event_draws_the_same_list_and_unanswered_items_sink() -> None:
    rec = recommender(exploration="plackett_luce", exploration_temperature=0.5,
                      exposure_min_count=2, exposure_strength=1.0)
    fb = Feedback(rec)
    ev = event("u1", "i1", "click", 10.0)
    [(_, cands)] = rec.process_batch([ev], k=fb.depth)
    assert len(cands.items) == fb.depth == 10
    a, b = fb.decide(ev, cands, Facts()), fb.decide(ev, cands, Facts())
    assert (a.items, a.propensities, a.rec_id) == (b.items, b.propensities, b.rec_id)
    assert len(a.items) == 5 and all(0 < p <= 1 for p in a.propensities)
    top = cands.items[0]
    facts = Facts()
    fb.apply([(impression("u1", a.rec_id, 11.0, [top]), 0),
              (impression("u1", a.rec_id, 12.0, [top]), 0)], facts)
    ev2 = event("u1", "i2", "view", 13.0)
    [(_, cands2)] = rec.process_batch([ev2], k=fb.depth)
    demoted = fb.decide(ev2, cands2, facts)
    assert demoted.demoted >= 1
    assert facts.replaced == [2]  # the first list was shown twice before this one


def test_none_keeps_the_ranking_and_logs_propensity_one() -> None:
    rec = recommender(exploration="none", exposure_strength=0.0)
    fb = Feedback(rec)
    ev = event("u1", "i1", "click", 10.0)
    [(_, cands)] = rec.process_batch([ev], k=fb.depth)
    d = fb.decide(ev, cands, Facts())
    assert d.items == cands.items[:5] and d.propensities == [1.0] * 5
    fields = Feedback.message_fields(d)
    assert fields["candidate_scores"] is None and fields["policy"].name == "none"
    assert [i.position for i in fields["items"]] == [1, 2, 3, 4, 5]
    cause = Cause(event_id=ev.event_id, event_time=10.0, topic="t", partition=0, offset=7)
    msg = Feedback.message(ev, cause, cands, d, 11.0, ["i1", "i9"])
    assert (msg.rec_id, msg.cause, msg.generated_at) == (d.rec_id, cause, 11.0)
    assert [(b.item_id, b.event_type) for b in msg.basis] == [("i1", "click"), ("i9", None)]


def test_metrics_of_a_batch() -> None:
    from prometheus_client import CollectorRegistry

    from refold.core import metrics as M

    reg = M.register(CollectorRegistry())

    def value(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    rec = recommender()
    fb, facts = Feedback(rec), Facts()
    fb.apply([(event("u9", "i1", "view", 1.0), 0), (impression("u9", "r9", 2.0, ["i3", "i4"]), 0),
              (event("u9", "i4", "click", 3.0), 0)], facts)
    slot2 = {"source": "collaborative", "slot": "2", "explored": "false"}
    before = value("refold_impression_clicks_total", **slot2), \
        value("refold_impression_slots_total", **slot2)
    record(facts)
    assert value("refold_impression_clicks_total", **slot2) - before[0] == 1
    assert value("refold_impression_slots_total", **slot2) - before[1] == 1
    assert [slot_of(p) for p in (1, 2, 3, 4, 6, 11)] == ["1", "2", "3", "4-5", "6-10", "11+"]


def test_attribution_keeps_to_its_window_and_a_named_list_is_followed() -> None:
    rec = recommender(attribution_window_seconds=60.0)
    fb, facts = Feedback(rec), Facts()
    fb.apply([(event("u5", "i1", "view", 0.0), 0),
              (impression("u5", "r5", 10.0, ["i2", "i3"]), 0),
              (event("u5", "i2", "click", 69.0), 0),     # 59 s after the impression: credited
              (event("u5", "i3", "click", 71.0), 0),     # 61 s: outside the window
              (event("u5", "i6", "purchase", 80.0, 1), 0),  # not shown, but names its list
              (event("u5", "i6", "purchase", 90.0, 2), 0)], facts)
    assert [(h.rec_id, h.position, h.event_type) for h in facts.outcomes] == [("r5", 1, "click")]
    fb.apply([(Event(event_id="named", user_id="u5", item_id="i7", event_type="purchase",
                     event_time=95.0, context={"rec_id": "r5"}), 0)], facts)
    assert facts.purchases == [False, False, True]


def test_feedback_state_survives_its_plain_form() -> None:
    rec = recommender(exposure_min_count=1, exposure_strength=1.0)
    fb, facts = Feedback(rec), Facts()
    fb.apply([(event("u7", "i1", "view", 1.0), 0),
              (impression("u7", "r7", 2.0, ["i3", "i4"]), 0)], facts)
    state = rec.user_state("u7")
    rec.drop_user("u7")
    rec.restore_user("u7", state, 0)
    facts = Facts()
    fb.apply([(event("u7", "i4", "click", 3.0), 0)], facts)
    assert [(h.rec_id, h.position) for h in facts.outcomes] == [("r7", 2)]


def test_a_reserved_item_keeps_its_reason_wherever_the_policy_draws_it() -> None:
    """A carted item not bought tops the candidates, marked; the policy draws the list from
    all candidates (every slot logs its propensity) and the item keeps its mark."""
    rec = recommender(exploration="plackett_luce", exploration_temperature=5.0)
    fb = Feedback(rec)
    rec.learn("u1", "i3", "add_to_cart", t=1.0)
    marked = 0
    for n in range(8):
        ev = event("u1", "i1", "click", 10.0 + n, n)
        [(_, cands)] = rec.process_batch([ev], k=fb.depth)
        assert cands.items[0] == "i3" and cands.reasons[0] == "continue"
        d = fb.decide(ev, cands, Facts())
        assert len(d.items) == 5 and all(p is not None for p in d.propensities)
        assert d.reasons == [("continue" if i == "i3" else None) for i in d.items]
        fields = Feedback.message_fields(d)
        assert [i.reason for i in fields["items"]] == d.reasons
        marked += "i3" in d.items
    assert marked > 0


def test_the_last_lists_items_ride_in_the_users_state() -> None:
    rec = recommender()
    fb, facts = Feedback(rec), Facts()
    ev = event("u8", "i1", "view", 1.0)
    fb.apply([(ev, 0)], facts)
    (_, candidates), = rec.process_batch([ev], [0], k=fb.depth)
    d = fb.decide(ev, candidates, facts)
    state = rec.user_state("u8")
    assert state["feedback"]["list_items"] == d.items and len(d.items) == 5
    rec.drop_user("u8")
    rec.restore_user("u8", state, 0)
    assert list(rec.users.get("u8").feedback.list_items) == d.items
    del state["feedback"]["list_items"]  # a state written before lists were kept
    rec.restore_user("u8", state, 0)
    assert rec.users.get("u8").feedback.list_items == ()


def test_without_republishing_no_list_is_kept() -> None:
    rec = recommender()
    fb = Feedback(rec, keep_lists=False)
    ev = event("u9", "i1", "view", 1.0)
    fb.apply([(ev, 0)], Facts())
    (_, candidates), = rec.process_batch([ev], [0], k=fb.depth)
    fb.decide(ev, candidates, Facts())
    assert rec.users.get("u9").feedback.list_items == ()
