"""Ranking a user's list: scoring against the item factors, the session blend, exclusions.

`Ranker` turns a user's `Plan` (`models.plans`) and folded-in vector into `Recs`, reading
only the served model (`models.served.ServedModel`), the catalog and the configuration:

- pure collaborative filtering (w_cf = 1): one scoring product for all such users, the session
  co-visitation blend (`models.covisit`), then an exact top-K (`models.topk`; for a lone user,
  blend and top-K are one compiled pass, `models.selection.blend_topk`); new items' vectors of the
  user's partition (the *overlay*) are scored too;
- everyone else: a truncated-rank blend of CF (`Ranker.cf_top`, with the session blend),
  content similarity and popularity (`models.coldstart.blend_ranks`). Content
  (`models.content_index`: text cosine and tag Jaccard, categories being tags) compares the
  user's items and declared profile with every item that has content, in the model or not:
  with no model at all, a user with a history or a profile gets content-similar items blended
  with popularity (the cold-start ladder's second step, before matrix factorisation).

When the served model has an approximate index (`models.ann`, large catalogs), the CF scores are
computed for each user's retrieved candidates only, plus the partition's new items and the
session's items, and everything after the retrieval is exact (`models.candidates`); a blended
user's CF list is ranked over those too, never over an array the size of the catalog. A user for
whom the candidates hold fewer than K shown items (most of them excluded) is scanned in full.

Items never recommended: inactive ones, items without a vector, and each user's blocked and
consumed items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from models import coldstart, covisit, selection
from models.candidates import rescore
from models.candidates import scores as candidate_scores
from models.catalog import ItemIndex
from models.content_index import ContentIndex
from models.continuation import reserve
from models.diversity import category_rows, mmr
from models.foldin_config import FoldInConfig
from models.item_age import ItemAges
from models.mixer import (
    Candidates,
    Mixer,
    Signals,
    item_context,
    scaled,
    union_of_tops,
    user_context,
)
from models.partition import PartitionState
from models.plans import Plan
from models.profiles import DeclaredProfiles
from models.served import ServedModel
from models.topk import topk, topk_batch, topk_of_support

Source = Literal["collaborative", "content", "popular"]
SCORE_CHUNK = 128
"""Users scored per matrix product: big enough for BLAS, small enough to stay in cache."""
_NO_SESSION = (np.zeros(0, dtype=np.intp), np.zeros(0))


@dataclass(frozen=True, slots=True)
class Recs:
    """A user's list: item ids best first, their scores, which regime made it, the model."""

    user_id: str
    items: list[str]
    scores: list[float]
    source: Source
    model_version: int | None
    reasons: list[str | None] | None = None
    """Per item, why it holds a reserved slot (`continue`), None elsewhere; None: no slot."""


class Ranker:
    """Lists from plans: `rank_pure_cf` for all pure-CF users at once, `rank_blend` for one
    user of the other regimes."""

    def __init__(self, config: FoldInConfig, catalog: ItemIndex, served: ServedModel,
                 content: ContentIndex | None = None,
                 profiles: DeclaredProfiles | None = None, ages: ItemAges | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self.served = served
        self.content = content if content is not None else ContentIndex()
        self.profiles = profiles if profiles is not None else DeclaredProfiles()
        self.ages = ages if ages is not None else ItemAges()

    def too_old(self, now: float) -> np.ndarray:
        """Items older than `max_item_age_seconds` at `now` (`models.item_age`; none: off)."""
        return self.ages.too_old(now, self.config.max_item_age_seconds)

    def depth(self, k: int) -> int:
        """Items to rank for a list of `k`: more when the diversity re-rank picks among them."""
        return max(k, self.config.diversity_depth) if self.config.diversity > 0 else k

    def content_scores(self, p: Plan) -> np.ndarray | None:
        """Per catalog item, the user's content similarity from their items and declared
        profile; -inf where nothing is shared; None when nothing is (no content list)."""
        content = self.content
        profile = content.profile_of_items(p.items, p.weights)
        declared = self.profiles.get(p.user_id)
        if declared is not None:
            profile = profile.merged(content.profile_of_terms(
                declared.terms, declared.counts, declared.tags), content.profile_terms)
        if not profile:
            return None
        s = content.scores(profile, len(self.catalog))
        if not (s > 0).any():
            return None
        s[s <= 0] = -np.inf
        return s

    def mixer(self) -> Mixer | None:
        """The served version's learned mixer, when it has one and `config.mixer` is on."""
        m = self.served.current
        return m.factors.mixer if self.config.mixer and m is not None else None

    def rank_pure_cf(
        self, plans: list[Plan], vecs: list[np.ndarray | None],
        overlays: list[dict[int, np.ndarray]], k: int | None = None,
    ) -> list[Recs | None]:
        """The lists of the pure-CF plans, None for the others (all of them when a learned
        mixer ranks: `rank_blend` then ranks each, as of its last event). Plans are grouped by
        the new items' vectors they see (`overlays`, usually one or a few per batch)."""
        k = self.config.k if k is None else k
        out: list[Recs | None] = [None] * len(plans)
        if self.mixer() is not None:
            return out
        groups: dict[int, list[int]] = {}
        for j, p in enumerate(plans):
            if p.w_cf == 1.0 and vecs[j] is not None:  # one group per overlay and age cut-off
                key = (id(overlays[j]) if overlays[j] else 0, id(self.too_old(p.now)))
                groups.setdefault(key, []).append(j)
        for at in groups.values():
            ranked = self._rank_cf([plans[j] for j in at], vecs, at, k, overlays[at[0]])
            for j, recs in zip(at, ranked, strict=True):
                out[j] = recs
        return out

    def _rank_cf(
        self, plans: list[Plan], vecs: list[np.ndarray | None], at: list[int], k: int,
        overlay: dict[int, np.ndarray],
    ) -> list[Recs]:
        """Pure-CF users: one scoring product, one batched top-K; `overlay` are the vectors of
        new items in these users' partition."""
        m, n = self.served.current, len(self.catalog)
        assert m is not None
        Y = m.Y[:n]
        new, V, never = self.served.overlay(overlay)
        old = self.too_old(plans[0].now)  # the same for every plan of the group
        if len(old):
            never = np.union1d(never, old)
        k_list, k = k, self.depth(k)
        if self.served.index is not None:
            return self._rank_cf_ann(plans, [vecs[j] for j in at], k, new, V, never, old,
                                     k_list)
        if len(plans) == 1:  # the per-event path: a plain matrix-vector product
            exclude = np.concatenate([never, plans[0].history.excluded()])
            idx, val = self._scan(vecs[at[0]], plans[0], new, V, exclude, k)  # type: ignore[arg-type]
            return [self._recs(plans[0], idx, val, "collaborative", k_list)]
        out = []
        for lo in range(0, len(plans), SCORE_CHUNK):
            chunk = plans[lo : lo + SCORE_CHUNK]
            X = np.stack([vecs[j] for j in at[lo : lo + SCORE_CHUNK]])  # type: ignore[misc]
            S = X @ Y.T
            if len(new):
                S[:, new] = X @ V.T
            S = self._with_sessions(S, chunk, never)
            idx, val = topk_batch(S, k, [p.history.excluded() for p in chunk], never)
            ranked = zip(chunk, idx, val, strict=True)
            out += [self._recs(p, i, v, "collaborative", k_list) for p, i, v in ranked]
        return out

    def _rank_cf_ann(
        self, plans: list[Plan], vecs: list[np.ndarray | None], k: int, new: np.ndarray,
        V: np.ndarray, never: np.ndarray, old: np.ndarray, k_list: int,
    ) -> list[Recs]:
        """`_rank_cf` from retrieved candidates (see the module docstring)."""
        index, m, cfg = self.served.index, self.served.current, self.config
        assert index is not None and m is not None
        X = np.stack(vecs).astype(np.float32)  # type: ignore[arg-type]
        excluded = [p.history.excluded() for p in plans]
        n = cfg.ann_candidates + np.minimum([len(e) for e in excluded], 3 * cfg.ann_candidates)
        sessions = [p.session for p in plans]
        extra = [new if s is None else np.concatenate([new, s[0]]) for s in sessions]
        cands = index.candidates(X, n, extra)
        hidden = self.served.never_mask()
        if len(new) or len(old):  # the partition's new items with a vector can be shown
            hidden = hidden.copy()
            hidden[new[self.catalog.active[new]]] = False
            hidden[old] = True
        blend = cfg.session_weight != 0 and any(s is not None for s in sessions)
        f_max = None
        if blend:
            f_max = index.score_range(X, m.Y, hidden, excluded, found=cands)
            if len(new):  # the partition's new items, shown and not excluded
                shown = ~hidden[new]
                Sn = np.abs(X @ V[shown].T)
                for r, ex in enumerate(excluded):
                    Sn[r, np.isin(new[shown], ex)] = 0.0
                f_max = np.maximum(f_max, Sn.max(axis=1, initial=0.0))
        idx, val = rescore(m.Y, X, cands, k, hidden, excluded, (new, V),
                           sessions if blend else None, cfg.session_weight, f_max)
        short = np.flatnonzero((idx < 0).any(axis=1))
        out = [self._recs(p, i, v, "collaborative", k_list)
               for p, i, v in zip(plans, idx, val, strict=True)]
        for r in short.tolist():  # too few shown candidates: scan every item
            exclude = np.concatenate([never, excluded[r]])
            i, v = self._scan(X[r], plans[r], new, V, exclude, k)
            out[r] = self._recs(plans[r], i, v, "collaborative", k_list)
        return out

    def _scan(self, x: np.ndarray, p: Plan, new: np.ndarray, V: np.ndarray,
              exclude: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every item's CF score (new items': from `V`) blended with the session, the best `k`
        outside `exclude` (indices): a lone user's list, and the index's fallback."""
        m = self.served.current
        assert m is not None
        scores = m.Y[: len(self.catalog)] @ x
        if len(new):
            scores[new] = V @ x
        cols, terms = p.session or _NO_SESSION
        return selection.blend_topk(scores, exclude, cols, terms, self.config.session_weight, k)

    def cf_top(self, x: np.ndarray, p: Plan, exclude: np.ndarray,
               overlay: dict[int, np.ndarray], depth: int) -> np.ndarray:
        """The user's best `depth` items by CF score blended with their session: what
        `topk(covisit.blend(cf, *p.session, session_weight, exclude), depth, exclude)` over every
        catalog item gives, in one compiled pass (`selection.blend_topk`). With an index, the
        scores are those of its candidates and of the partition's new items only (every other
        item would score -inf), so the pass runs over those, not over the catalog."""
        m, index, n = self.served.current, self.served.index, len(self.catalog)
        assert m is not None
        new, V, _ = self.served.overlay(overlay)
        cols, terms = p.session or _NO_SESSION
        weight = self.config.session_weight
        if index is None:  # every item scored: the model's items with a vector, the new ones
            hidden = exclude | ~m.has_vec[:n]
            hidden[new] = exclude[new]
            return self._scan(x, p, new, V, np.flatnonzero(hidden), depth)[0]
        cands = index.candidates(x[None].astype(np.float32), depth + len(p.history.excluded()))
        ok = cands[0] >= 0
        items, scores = cands[0][ok], candidate_scores(m.Y, x[None], cands)[0][ok]
        has = m.has_vec[items]
        items, scores = items[has], scores[has]
        if len(new):  # a new item's vector is the one it is scored with
            items, scores = np.concatenate([new, items]), np.concatenate([V @ x, scores])
        items, first = np.unique(items, return_index=True)
        cf = scores[first].astype(np.float32)
        at = np.searchsorted(items, cols)
        on = at < len(items)
        on[on] = items[at[on]] == cols[on]  # session items outside these score -inf: dropped
        top, _ = selection.blend_topk(cf, np.flatnonzero(exclude[items]), at[on], terms[on],
                                      weight, depth)
        return items[top]

    def _with_sessions(self, S: np.ndarray, plans: list[Plan], never: np.ndarray) -> np.ndarray:
        """Each row of a scoring product blended with its user's session (`covisit.blend`)."""
        if any(p.session is not None for p in plans):
            S = S.astype(np.float64)
            for r, p in enumerate(plans):
                if p.session is not None:
                    exclude = np.concatenate([never, p.history.excluded()])
                    S[r] = covisit.blend(S[r], *p.session, self.config.session_weight, exclude)
        return S

    def rank_blend(
        self, p: Plan, x: np.ndarray | None, k: int, part: PartitionState,
        overlay: dict[int, np.ndarray],
    ) -> Recs:
        """Popular, content and partial-CF users: truncated-rank blend of their lists, with the
        popularity and new items' vectors of their partition (every user, when a learned mixer
        ranks: `rank_mixed`)."""
        mixer = self.mixer()
        if mixer is not None:
            return self.rank_mixed(p, x, k, part, overlay, mixer)
        cfg, m, n = self.config, self.served.current, len(self.catalog)
        exclude = ~self.catalog.active
        exclude[p.history.excluded()] = True
        exclude[self.too_old(p.now)] = True
        k_list, k = k, self.depth(k)
        trending = part.trending
        trending.resize(n)
        pop = trending.ranking_scores()[:n]
        aff = self.content_scores(p)
        weights, source = coldstart.list_weights(
            p.w_cf if x is not None else 0.0, aff is not None, cfg.content_weight)
        if weights[2] == 1.0:
            idx, _ = topk_of_support(pop, trending.counted(), k, exclude)
            return self._recs(p, idx, trending.scores(p.now)[idx], "popular", k_list)
        depth = max(cfg.blend_depth, k)
        top_pop = topk_of_support(pop, trending.counted(), depth, exclude)[0]
        top_cf = top_pop  # (no model: popularity takes CF's weight, as it takes content's)
        if x is not None and m is not None and weights[0] > 0:
            top_cf = self.cf_top(x, p, exclude, overlay, depth)
        top_aff = topk(aff, depth, exclude)[0] if aff is not None and weights[1] > 0 else top_pop
        idx, val = coldstart.blend_ranks([top_cf, top_aff, top_pop], weights, k, depth)
        return self._recs(p, idx, val, source, k_list)

    def rank_mixed(
        self, p: Plan, x: np.ndarray | None, k: int, part: PartitionState,
        overlay: dict[int, np.ndarray], mixer: Mixer,
    ) -> Recs:
        """The learned mixer's list: its scores of the user's `candidates`. `source` names the
        strongest signal the user has: collaborative with a vector, else content, else
        popular."""
        c = self.candidates(p, x, part, overlay)
        idx, val = mixer.rank(c, self.depth(k))
        source = "collaborative" if c.signals.cf is not None else (
            "content" if c.signals.content is not None else "popular")
        return self._recs(p, idx, val, source, k)

    def candidates(
        self, p: Plan, x: np.ndarray | None, part: PartitionState,
        overlay: dict[int, np.ndarray],
    ) -> Candidates:
        """The items the mixer chooses from, with their signals (`models.mixer`): the union of
        the best `mixer_depth` of the hand-set blend (CF plus session, or popularity without a
        vector) and the best `mixer_side_depth` by content and by trending, among the items
        the user may be shown."""
        cfg, m, n = self.config, self.served.current, len(self.catalog)
        allowed = self.catalog.active.copy()
        allowed[p.history.excluded()] = False
        allowed[self.too_old(p.now)] = False
        cf = session = None
        if x is not None and m is not None:
            raw = (m.Y[:n] @ x).astype(np.float64)
            has = m.has_vec[:n].copy()
            new, V, _ = self.served.overlay(overlay)
            if len(new):
                raw[new], has[new] = V @ x, True
            raw[~has] = 0.0
            cf = scaled(raw, allowed & has)
        if p.session is not None:
            session = scaled(np.bincount(p.session[0], p.session[1], minlength=n)[:n], allowed)
        content = self.content_scores(p)
        if content is not None:
            content[~np.isfinite(content)] = 0.0
        part.trending.resize(n)
        trend = scaled(part.trending.ranking_scores()[:n], allowed)
        hand = trend if cf is None else cf + cfg.session_weight * (
            session if session is not None else 0.0)
        lists = [(hand, cfg.mixer_depth), (trend, cfg.mixer_side_depth)]
        if content is not None:
            lists.append((content, cfg.mixer_side_depth))
        items = union_of_tops(lists, allowed)
        declared = self.profiles.get(p.user_id)
        born = declared.signup_at if declared is not None and declared.signup_at is not None \
            else p.history.first_time
        user = user_context(p.history.seq, 0.0 if born is None else p.now - born)
        signals = Signals(cf, session, content, trend).of(items)
        return Candidates(items, signals, user, item_context(self.served.counts()[items]))

    def _recs(self, p: Plan, idx: np.ndarray, val: np.ndarray, source: str,
              k: int | None = None) -> Recs:
        """The list of `k` (default: all given) from the ranked `idx`: re-ranked for diversity
        when it is on (`models.diversity`), then with the user's reserved continuation slots
        (`models.continuation`)."""
        keep = idx >= 0
        idx, val = idx[keep], val[keep]
        k = len(idx) if k is None else k
        cfg = self.config
        if cfg.diversity > 0 and len(idx) > k:
            at = mmr(val, self._features(idx), k, cfg.diversity)
            idx, val = idx[at], val[at]
        items, scores = idx[:k].tolist(), val[:k].tolist()
        reasons = None
        opened = p.history.continuation
        if cfg.continuation_seconds > 0 and opened:
            pending = opened.pending(p.now, cfg.continuation_seconds)
            if pending:
                items, scores, marks = reserve(
                    items, scores, pending, k, cfg.continuation_slots,
                    cfg.continuation_position, self._showable(p))
                reasons = marks if any(marks) else None
        return Recs(p.user_id, list(map(self.catalog.ids.__getitem__, items)), scores,
                    source, self.served.version, reasons)  # type: ignore[arg-type]

    def _features(self, idx: np.ndarray) -> Any:
        """Rows the diversity re-rank compares items by: categories, or factor vectors."""
        m = self.served.current
        if self.config.diversity_by == "factors" and m is not None:
            return m.Y[idx]
        return category_rows([self.catalog.categories_of(i) for i in idx.tolist()])

    def _showable(self, p: Plan) -> Any:
        """Whether an item may take a reserved slot: active, not consumed or blocked, not too
        old."""
        hidden = set(p.history.excluded().tolist()) | set(self.too_old(p.now).tolist())
        active = self.catalog.active
        return lambda i: i < len(active) and bool(active[i]) and i not in hidden
