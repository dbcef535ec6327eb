"""Ranking from approximate candidates: on a catalog small enough for the index to find every
item that matters, the lists are the full scan's, with exclusions, new items and sessions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models.candidates import scores as candidate_scores
from models.covisit import blend
from models.foldin import ItemFactors
from models.recommender import FoldInConfig, OnlineRecommender
from models.topk import topk

pytest.importorskip("faiss", reason="the ann extra is not installed")
N_ITEMS, K = 400, 8
IDS = [f"i{n}" for n in range(N_ITEMS)]
TYPES = ["view", "click", "add_to_cart", "purchase", "bookmark", "dismiss"]


def _factors() -> ItemFactors:
    Y = np.random.default_rng(0).normal(size=(N_ITEMS, K)).astype(np.float32)
    return ItemFactors(IDS, Y, version=1)


def _events(n: int, users: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for j in range(n):
        item = f"new{rng.integers(5)}" if rng.random() < 0.1 else IDS[int(rng.integers(N_ITEMS))]
        out.append(SimpleNamespace(
            user_id=f"u{rng.integers(users)}", item_id=item,
            event_type=TYPES[int(rng.integers(len(TYPES)))], event_time=float(j),
            value=None, weight=None, session_id=f"s{j // 7}"))
    return out


def _pair(**kw: object) -> tuple[OnlineRecommender, OnlineRecommender]:
    base = dict(alpha=5.0, regularization=0.1, k=10, full_events=3, ann_candidates=50)
    exact = OnlineRecommender(FoldInConfig(**{**base, "ann_min_items": 0}), _factors())
    approx = OnlineRecommender(FoldInConfig(**{**base, "ann_min_items": 100}), _factors())
    return exact, approx


def test_index_is_switched_on_by_catalog_size() -> None:
    exact, approx = _pair()
    assert exact.served.index is None and approx.served.index is not None
    small = OnlineRecommender(FoldInConfig(ann_min_items=N_ITEMS + 1), _factors())
    assert small.served.index is None


def test_lists_equal_the_full_scan() -> None:
    """Batches and lone users, with sessions, consumed and dismissed items, an inactive item and
    new items folded in from their users."""
    exact, approx = _pair()
    for r in (exact, approx):
        r.set_item_active(IDS[7], False)
    stream = _events(600, 40, 3)
    for lo in range(0, 600, 100):
        got = approx.process_batch(stream[lo : lo + 100])
        want = exact.process_batch(stream[lo : lo + 100])
        for (_, g), (_, w) in zip(got, want, strict=True):
            assert (g.user_id, g.items, g.source) == (w.user_id, w.items, w.source)
            assert g.scores == pytest.approx(w.scores, rel=1e-4, abs=1e-5)
            assert IDS[7] not in g.items
    sources = set()
    for u in range(40):
        g, w = approx.recommend(f"u{u}", 600.0), exact.recommend(f"u{u}", 600.0)
        assert g.items == w.items
        sources.add(g.source)
    assert "collaborative" in sources


def test_an_item_with_a_category_vector_is_recommended_at_once() -> None:
    _, approx = _pair(full_events=1)
    for i in range(5):
        approx.set_item_active(IDS[i], True, ["shoes"])
    approx.learn("u", IDS[0], "purchase", 0.0)
    approx.set_item_active("brand-new", True, ["shoes"])  # no interactions: category vector
    before = approx.served.index.pending.tolist()  # type: ignore[union-attr]
    recs = approx.recommend("u", 1.0, k=N_ITEMS)
    assert "brand-new" in recs.items
    new = approx.catalog.get("brand-new")
    assert new in before or new in approx.served.index.pending.tolist() or \
        len(approx.served.index) > N_ITEMS  # type: ignore[union-attr]


def _dense_cf_top(ranker, x, p, exclude, overlay, depth):
    """The CF list of a partly collaborative user as a full scan ranks it: the CF score of
    every catalog item (-inf where the index found nothing), blended with the session."""
    m, n, index = ranker.served.current, len(ranker.catalog), ranker.served.index
    if index is None:
        cf = m.Y[:n] @ x
    else:
        cands = index.candidates(x[None].astype(np.float32), depth + len(p.history.excluded()))
        ok = cands[0] >= 0
        cf = np.full(n, -np.inf, dtype=np.float32)
        cf[cands[0][ok]] = candidate_scores(m.Y, x[None], cands)[0][ok]
    cf[~m.has_vec[:n]] = -np.inf
    new, V, _ = ranker.served.overlay(overlay)
    if len(new):
        cf[new] = V @ x
    if p.session is not None:
        cf = blend(cf, *p.session, ranker.config.session_weight, exclude)
    return topk(cf, depth, exclude)[0]


@pytest.mark.parametrize("indexed", [False, True])
def test_a_blended_users_cf_list_is_the_full_scans(indexed: bool) -> None:
    """With an index, a partly collaborative user's CF list is ranked over the candidates and
    the new items only: the same items, in the same order, as over the whole catalog."""
    exact, approx = _pair(full_events=6)
    rec = approx if indexed else exact
    rec.set_item_active(IDS[7], False)
    seen = {"calls": 0, "sessions": 0, "new": 0}
    real = rec.ranker.cf_top

    def checked(x, p, exclude, overlay, depth):
        got = real(x, p, exclude, overlay, depth)
        assert got.tolist() == _dense_cf_top(rec.ranker, x, p, exclude, overlay, depth).tolist()
        seen["calls"] += 1
        seen["sessions"] += p.session is not None
        seen["new"] += bool(overlay)
        return got

    rec.ranker.cf_top = checked  # type: ignore[method-assign]
    stream = _events(900, 120, 5)
    for lo in range(0, 900, 150):
        rec.process_batch(stream[lo : lo + 150])
    assert seen["calls"] > 50 and seen["sessions"] > 10 and seen["new"] > 10, seen
