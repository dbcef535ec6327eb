from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from models.baselines import Events, Popularity, Row
from producers.datasets import InteractionLog
from producers.synth import SynthConfig, generate
from refold.evaluation import offline, search
from refold.evaluation.runner import Protocol, encode, evaluate, replay

KEYS = {"recall_at_10", "ndcg_at_10", "hit_rate_at_10", "cold_recall_at_10", "coverage",
        "diversity", "novelty", "seconds"}
PROTOCOL = Protocol(window=200, refit_every=500, oracle_every=250)


@pytest.fixture(scope="module")
def world():
    """A small world where taste dominates popularity: collaborative filtering must win."""
    log, catalog, _ = generate(SynthConfig(n_users=150, n_items=80, n_events=3000, taste=4.0,
                                           popularity=0.3, seed=1))
    return encode(log, catalog, PROTOCOL)


@pytest.fixture(scope="module")
def result(world):
    return evaluate(world, PROTOCOL, ["popularity", "refold"], progress=False)


@pytest.mark.slow
def test_result_has_every_key_per_model(result):
    assert set(result["models"]) == {"popularity", "refold"}
    for m in result["models"].values():
        assert set(m) >= KEYS
        assert m["events"] > 500 and m["violations"] == 0
    assert result["protocol"]["warmup_events"] == 600
    json.dumps(result)  # serialisable as is


@pytest.mark.slow
def test_refold_beats_popularity_on_a_world_with_latent_structure(result):
    refold, pop = result["models"]["refold"], result["models"]["popularity"]
    assert refold["recall_at_10"] > 1.5 * pop["recall_at_10"]
    assert refold["ndcg_at_10"] > 1.5 * pop["ndcg_at_10"]
    assert refold["refits"] == 1 + (3000 - 600) // 500


@pytest.mark.slow
def test_deterministic(world, result):
    again = evaluate(world, PROTOCOL, ["popularity", "refold"], progress=False)
    for name, m in result["models"].items():
        a = {k: v for k, v in m.items() if "seconds" not in k}
        b = {k: v for k, v in again["models"][name].items() if "seconds" not in k}
        assert a == b


@pytest.mark.slow
def test_a_fold_in_setting_overrides_the_model_default(world, result):
    protocol = Protocol(window=200, refit_every=500, oracle_every=250,
                        fold_in={"session_weight": 0.0})
    off = evaluate(world, protocol, ["refold"], progress=False)["models"]["refold"]
    assert off["params"]["session_weight"] == 0.0
    assert result["models"]["refold"]["params"]["session_weight"] == 1.0
    assert off["recall_at_10"] != result["models"]["refold"]["recall_at_10"]


class Peeker(Popularity):
    """Recommends the last item it learned for the user: perfect if it saw the event first."""

    def fit(self, warmup: Events) -> None:
        super().fit(warmup)
        self.last: dict[int, int] = {}
        self.calls: list[tuple[str, int]] = []

    def recommend(self, user, k, exclude, t=0.0):
        self.calls.append(("recommend", user))
        return np.array([self.last[user]]) if user in self.last else np.zeros(0, dtype=np.int64)

    def learn(self, ev: Row) -> None:
        self.calls.append(("learn", ev.user))
        self.last[ev.user] = ev.item


def _fresh_items_log() -> InteractionLog:
    """Each user sees new items only, so yesterday's item is never today's."""
    n = 40
    users = [f"u{j % 4}" for j in range(n)]
    items = [f"i{j}" for j in range(n)]
    return InteractionLog(users, items, ["rating"] * n, [4.0] * n, np.arange(n, dtype=float))


def test_an_event_is_scored_before_it_is_learned():
    data = encode(_fresh_items_log(), [], Protocol(window=5))
    peeker = Peeker()
    metrics, _, _ = replay(peeker, data, start=8, protocol=Protocol(window=5))
    assert metrics.summary()["recall_at_10"] == 0.0
    # each scored event: recommend for its user, then learn it
    scored = peeker.calls
    assert scored[0::2] == [("recommend", u) for u in data.events.users[8:].tolist()]
    assert scored[1::2] == [("learn", u) for u in data.events.users[8:].tolist()]
    # the same model learning first would have been perfect
    cheat = Peeker()
    cheat.fit(data.events[:8])
    hits = 0
    for ev in data.events[8:].rows():
        cheat.learn(ev)
        hits += ev.item in cheat.recommend(ev.user, 10, np.zeros(0, dtype=np.int64)).tolist()
    assert hits == len(data.events) - 8


def test_encode_orders_catalog_first_and_keeps_ties_in_file_order():
    log = InteractionLog(["a", "b", "a"], ["x", "y", "z"], ["rating", "rating", "view"],
                         [5.0, 1.0, float("nan")], [2.0, 1.0, 2.0])
    from refold.core.schemas import Item

    data = encode(log, [Item(item_id="z", categories=["c"])], Protocol(ratings_as_positive=False))
    assert data.names.item_ids == ["z", "y", "x"]
    assert data.names.user_ids == ["b", "a"]
    assert data.events.items.tolist() == [1, 2, 0]  # y (t=1), then x and z in file order
    assert data.events.weights.tolist() == [-1.0, 1.0, 0.1]
    assert data.excluding.tolist() == [True, True, False]  # ratings consume, views do not
    assert data.categories.tolist() == [[True], [False], [False]]


def test_search_uses_the_warm_up_only(world):
    res = search.search(world, PROTOCOL, ["trending"])
    s = res["models"]["trending"]
    assert s["best"]["half_life"] in search.GRIDS["trending"]["half_life"]
    assert len(s["trials"]) == len(search.GRIDS["trending"]["half_life"])
    assert res["warmup_events"] == 600 and res["fit_events"] == 450


@pytest.mark.slow
def test_cli_json_and_report(tmp_path):
    from refold.cli import cli, commands  # noqa: F401  (registers `evaluate`)

    out = tmp_path / "rep"
    args = ["evaluate", "--dataset", "synth", "--synth-users", "60", "--synth-items", "40",
            "--synth-events", "1500", "--models", "popularity,trending", "--window", "100",
            "--json", "--no-progress", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["models"]) == {"popularity", "trending"}
    assert set(data["models"]["trending"]) >= KEYS
    lines = (out / "report.md").read_text().splitlines()
    assert sum(line.startswith("| popularity |") for line in lines) == 1
    assert (out / "windowed_recall.png").stat().st_size > 0


def test_offline_split_and_metrics():
    users = np.repeat(np.arange(3), [4, 8, 1])
    train = offline.stratified_split(users, 0.75, seed=0)
    assert np.bincount(users[train]).tolist() == [3, 6, 1]
    from models.als import csr_from

    tr = csr_from(np.array([0]), np.array([0]), np.ones(1), (1, 5))
    te = csr_from(np.array([0, 0]), np.array([2, 4]), np.ones(2), (1, 5))
    scores = lambda u: np.array([[9.0, 5.0, 4.0, 3.0, 1.0]])  # noqa: E731
    m = offline.ranking_metrics(scores, tr, te, k=2)  # top-2 without item 0: [1, 2]
    assert m["precision_at_10"] == 0.5 and m["recall_at_10"] == 0.5
    assert m["ndcg_at_10"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert m["map"] == pytest.approx((1 / 2) / 2)


@pytest.mark.slow
def test_the_mixer_row_is_evaluated_only_when_named(world, result):
    """`refold_mixer` is refold with a mixer fitted at each refit; it is not in the default set,
    and the report compares it with the hand-set blend."""
    from refold.evaluation.contenders import MODELS
    from refold.evaluation.report import comparisons

    assert "refold_mixer" not in MODELS
    mixed = evaluate(world, PROTOCOL, ["refold_mixer"], progress=False)["models"]["refold_mixer"]
    assert mixed["params"] == result["models"]["refold"]["params"]
    assert mixed["refits"] == result["models"]["refold"]["refits"] and mixed["violations"] == 0
    lines = comparisons({"refold": result["models"]["refold"], "refold_mixer": mixed})
    assert lines[-1].startswith("- learned mixer against the hand-set blend: recall@10 ")
    with pytest.raises(ValueError, match="unknown model"):
        evaluate(world, PROTOCOL, ["refold_mixed"], progress=False)
