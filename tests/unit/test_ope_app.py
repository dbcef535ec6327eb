"""`refold ope`'s reading, candidates and report, without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from models.decision import decide
from models.exploration import Policy, PolicyError
from refold.core.schemas import Event, PolicyInfo, Recommendation, RecommendedItem, impression_of
from refold.ope import Logs, OPEInputError, estimate, export, join, parse_candidate, read_file

ITEMS = [f"i{k}" for k in range(12)]
RELEVANCE = np.linspace(0.5, 0.05, 12)
EXAMINE = np.array([1.0, 0.63, 0.5])


def simulated_logs(n: int, policy: Policy) -> Logs:
    """Lists drawn by `policy` (through `decide`, as the worker does), shown 3 slots each, clicked
    by a position-based model: impressions and click events, as services would report them."""
    rng = np.random.default_rng(1)
    scores = np.linspace(1.0, 0.0, 12)
    imps, events = [], []
    for u in range(n):
        d = decide(ITEMS, scores, 6, policy, f"r{u}")
        rec = Recommendation(
            user_id=f"u{u}", model_version=1, source="collaborative", generated_at=u,
            items=[RecommendedItem(i, s, j + 1, p, r, e) for j, (i, s, p, r, e) in enumerate(
                zip(d.items, d.scores, d.propensities, d.ranks, d.explored, strict=True))],
            rec_id=d.rec_id, policy=PolicyInfo(**d.policy), candidate_scores=d.candidate_scores)
        imps.append(impression_of(rec, 3, float(u), f"x{u}"))
        for j, r in enumerate(d.ranks[:3]):
            if rng.random() < EXAMINE[j] * RELEVANCE[r]:
                events.append(Event(event_id=f"e{u}-{j}", user_id=f"u{u}", item_id=d.items[j],
                                    event_type="click", event_time=u + 1.0))
    return Logs(imps, events)


def test_candidates_parse_and_bad_ones_are_named() -> None:
    assert parse_candidate("none") == Policy()
    assert parse_candidate("epsilon:epsilon=0.05,candidates=30") == \
        Policy("epsilon", epsilon=0.05, candidates=30)
    for bad in ["greedy", "epsilon:eps=0.1", "epsilon:0.1"]:
        with pytest.raises(PolicyError):
            parse_candidate(bad)


def test_an_export_reads_back_and_estimates_the_top_k_truth(tmp_path) -> None:
    logs = simulated_logs(3000, Policy("plackett_luce", temperature=0.5))
    path = tmp_path / "logs.jsonl"
    assert export(logs, path) == len(logs.impressions) + len(logs.events)
    back = read_file(path)
    assert back == logs
    rows = estimate(join(back), [("none", Policy())])
    truth = float(np.mean(EXAMINE * RELEVANCE[:3]))
    assert rows[0].policy == "logged" and rows[0].n == 3000
    for row in rows[1:]:
        assert row.ci_low <= truth <= row.ci_high, row


def test_a_bad_line_is_named(tmp_path) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_bytes(b'\n{"v":1,"impression_id":"x","rec_id":"r","user_id":"u","shown_at":1,'
                     b'"items":[]}\n')
    with pytest.raises(OPEInputError, match=r"logs.jsonl:2: items"):
        read_file(path)
