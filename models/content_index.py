"""Content similarity between users and items: text cosine and tag Jaccard, blended 0.4 / 0.6.

`ContentIndex` holds each catalog item's hashed term counts and tag set (`models.content`), keyed
by the recommender's item index, and inverted lists from term and tag to items, so a user is
scored against the whole catalog in time proportional to the postings of the user's terms, not
to the catalog's size.

**Profiles.** A user's `Profile` is their positive items' TF-IDF vectors summed with the items'
weights (recency-decayed, as the fold-in sees them), cut to the `profile_terms` heaviest terms
and scaled to unit length; and their items' tags, each weighed by the summed weight of the items
that carry it, divided by the largest. A declared profile (interests text, skills) is encoded
the same way, its tags all of weight 1; `Profile.merged` adds two.

**Scores.** s(u, i) = text_weight · cos(u, i) + tag_weight · J(u, i), where J is the weighted
Jaccard (Ruzicka) Σ min(a, b) / Σ max(a, b) of the user's tag weights a and the item's tag set b
(the plain set Jaccard when the user's tags are a set). Both terms lie in [0, 1].

**Updates.** A changed item is scored directly until the inverted lists are rebuilt, which
happens when more than `max(64, n / 16)` items wait, or when the idf changes: rebuilding is
O(postings), amortised O(1) per changed item.

>>> ci = ContentIndex()
>>> for i, (text, tags) in enumerate([("red running shoes", ["sport"]),
...                                   ("trail running shoes", ["sport", "outdoor"]),
...                                   ("red wine", ["food"])]):
...     ci.set_item(i, text, tags)
>>> p = ci.profile_of_items(np.array([0]), np.array([1.0]))
>>> ci.scores(p, 3).round(2).tolist()      # 0.4 * cosine + 0.6 * Jaccard
[1.0, 0.57, 0.16]
>>> ci.scores(ci.profile_of_user("shoes for trail running", ["outdoor"]), 3).round(2).tolist()
[0.27, 0.7, 0.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from models.content import Idf, TextEncoder, tag_set
from models.errors import ModelError
from models.topk import topk

_NO_INT = np.zeros(0, dtype=np.int64)
_NO_FLOAT = np.zeros(0)


@dataclass(frozen=True, eq=False)
class Profile:
    """Weighted terms (unit length) and weighted tags (largest 1) of a user or an item."""

    terms: np.ndarray
    weights: np.ndarray
    tags: np.ndarray
    tag_weights: np.ndarray

    @classmethod
    def empty(cls) -> Profile:
        return cls(_NO_INT, _NO_FLOAT, _NO_INT, _NO_FLOAT)

    def __bool__(self) -> bool:
        return bool(len(self.terms) or len(self.tags))

    def merged(self, other: Profile, limit: int) -> Profile:
        """Both profiles' terms (then the `limit` heaviest, unit length) and tags (summed,
        largest 1)."""
        terms, weights = _summed(np.concatenate([self.terms, other.terms]),
                                 np.concatenate([self.weights, other.weights]))
        tags, tag_weights = _summed(np.concatenate([self.tags, other.tags]),
                                    np.concatenate([self.tag_weights, other.tag_weights]))
        return Profile(*_heaviest(terms, weights, limit), *_scaled_to_max(tags, tag_weights))


@dataclass(frozen=True, eq=False)
class _Postings:
    """Inverted lists of the built items: per term its items and TF-IDF values, per tag its
    items, and each item's tag count."""

    terms: np.ndarray
    term_ptr: np.ndarray
    term_items: np.ndarray
    term_values: np.ndarray
    tags: np.ndarray
    tag_ptr: np.ndarray
    tag_items: np.ndarray
    tag_count: np.ndarray


class ContentIndex:
    """Term counts and tags per item index, their inverted lists, and user-item scores."""

    def __init__(
        self, text_weight: float = 0.4, tag_weight: float = 0.6, profile_terms: int = 64,
        encoder: TextEncoder | None = None,
    ) -> None:
        if text_weight < 0 or tag_weight < 0 or text_weight + tag_weight <= 0:
            raise ModelError("text_weight and tag_weight must be >= 0, not both 0")
        if profile_terms < 1:
            raise ModelError("profile_terms must be at least 1")
        self.text_weight = text_weight
        self.tag_weight = tag_weight
        self.profile_terms = profile_terms
        self.encoder = encoder or TextEncoder()
        self.idf = Idf.uniform(self.encoder.n_features)
        self._counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._tags: dict[int, np.ndarray] = {}
        self._tag_ids: dict[str, int] = {}
        self._tag_names: list[str] = []
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        """TF-IDF rows under the current idf, computed on demand."""
        self._built: _Postings | None = None
        self._pending: set[int] = set()
        self.version = 0
        """Bumped on every change (callers cache what they derive)."""

    def __len__(self) -> int:
        """One more than the largest item index with content (0 when none)."""
        keys = self._counts.keys() | self._tags.keys()
        return max(keys) + 1 if keys else 0

    def set_item(self, i: int, text: str | None, tags: Iterable[str] = ()) -> None:
        """An item's text and tags (raw: they are normalised by `tag_set`); `None` text and no
        tags remove its content."""
        self.set_items([i], [text], [tags])

    def set_items(
        self, items: Sequence[int], texts: Sequence[str | None], tags: Sequence[Iterable[str]],
    ) -> None:
        """`set_item` of many items: their texts are hashed in one call (~15 µs a text, against
        ~250 µs one by one)."""
        counts = self.encoder.counts([t or "" for t in texts])
        counts.sort_indices()
        for r, (i, item_tags) in enumerate(zip(items, tags, strict=True)):
            lo, hi = counts.indptr[r], counts.indptr[r + 1]
            if hi > lo:
                self._counts[i] = (counts.indices[lo:hi].astype(np.int64),
                                   counts.data[lo:hi].astype(np.float64))
            else:
                self._counts.pop(i, None)
            ids = sorted({self._tag_id(t) for t in tag_set(item_tags)})
            if ids:
                self._tags[i] = np.array(ids, dtype=np.int64)
            else:
                self._tags.pop(i, None)
            self._rows.pop(i, None)
            self._pending.add(i)
        self.version += 1

    def set_idf(self, idf: Idf) -> None:
        """Weigh terms with a new idf (a refit's): every row is recomputed."""
        if idf.n_features != self.encoder.n_features:
            raise ModelError(f"idf has {idf.n_features} features, the encoder "
                             f"{self.encoder.n_features}")
        self.idf = idf
        self._rows.clear()
        self._built = None
        self.version += 1

    def has_content(self, n: int) -> np.ndarray:
        """Per item index below `n`, whether it has text terms or tags."""
        out = np.zeros(n, dtype=bool)
        for keys in (self._counts, self._tags):
            idx = np.fromiter(keys, dtype=np.int64, count=len(keys))
            out[idx[idx < n]] = True
        return out

    def tag_name(self, t: int) -> str:
        """The tag behind a profile's tag id."""
        return self._tag_names[t]

    @property
    def waiting(self) -> int:
        """Changed items scored directly until the next rebuild of the inverted lists."""
        return len(self._pending)

    def rebuild(self) -> None:
        """Rebuild the inverted lists now (scoring does it when enough items changed)."""
        self._built = None
        self._postings()

    # -- profiles

    def profile_of_items(self, items: np.ndarray, weights: np.ndarray) -> Profile:
        """The profile of a user whose items (indices) carry `weights` (only positive count)."""
        terms, tw, tags, gw = [_NO_INT], [_NO_FLOAT], [_NO_INT], [_NO_FLOAT]
        for i, w in zip(np.asarray(items).tolist(), np.asarray(weights).tolist(), strict=True):
            if w <= 0:
                continue
            if i in self._counts:
                t, v = self._row(i)
                terms.append(t)
                tw.append(v * w)
            if i in self._tags:
                tags.append(self._tags[i])
                gw.append(np.full(len(self._tags[i]), float(w)))
        t, v = _summed(np.concatenate(terms), np.concatenate(tw))
        g, gv = _summed(np.concatenate(tags), np.concatenate(gw))
        return Profile(*_heaviest(t, v, self.profile_terms), *_scaled_to_max(g, gv))

    def profile_of_user(self, text: str | None, tags: Iterable[str] = ()) -> Profile:
        """The profile of a declared text (interests) and tag set (skills); tags the catalog
        has never used are left out (no item can share them)."""
        counts = self.encoder.counts([text or ""])
        counts.sort_indices()
        return self.profile_of_terms(counts.indices.astype(np.int64),
                                     counts.data.astype(np.float64), tag_set(tags))

    def profile_of_terms(self, terms: np.ndarray, counts: np.ndarray,
                         tags: Iterable[str]) -> Profile:
        """The profile of hashed term counts (`models.profiles.Declared`) and normalised
        tags, under the current idf."""
        v = (1.0 + np.log(counts)) * self.idf.of(terms)
        g = np.array(sorted({self._tag_ids[x] for x in tags if x in self._tag_ids}),
                     dtype=np.int64)
        return Profile(*_heaviest(terms, v, self.profile_terms), g, np.ones(len(g)))

    # -- scores

    def scores(self, profile: Profile, n: int) -> np.ndarray:
        """s(u, i) for item indices 0..n-1 (float64; 0 where nothing is shared)."""
        out = np.zeros(n)
        if not profile:
            return out
        built = self._postings()
        if self.text_weight and len(profile.terms):
            items, values = _gather(built.terms, built.term_ptr, profile.terms, profile.weights,
                                    built.term_items, built.term_values)
            keep = items < n
            out += self.text_weight * np.bincount(items[keep], values[keep], minlength=n)[:n]
        if self.tag_weight and len(profile.tags):
            items, values = _gather(built.tags, built.tag_ptr, profile.tags, profile.tag_weights,
                                    built.tag_items, None)
            keep = items < n
            inter = np.bincount(items[keep], values[keep], minlength=n)[:n]
            size = np.zeros(n)
            m = min(n, len(built.tag_count))
            size[:m] = built.tag_count[:m]
            union = profile.tag_weights.sum() + size - inter
            out += self.tag_weight * np.divide(inter, union, out=np.zeros(n), where=inter > 0)
        for i in self._pending:  # changed since the build: scored directly
            if i < n:
                out[i] = self._score_one(profile, i)
        return out

    def similar(self, i: int, k: int, n: int, among: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` items below `n` most similar to item `i` by content (not itself; only those
        flagged in the mask `among` when given), with their scores; none when `i` has no
        content."""
        p = self.profile_of_items(np.array([i]), np.array([1.0]))
        if not p:
            return _NO_INT, _NO_FLOAT
        s = self.scores(p, n)
        s[s <= 0] = -np.inf
        if among is not None:
            s[~among[:n]] = -np.inf
        if i < n:
            s[i] = -np.inf
        return topk(s, k)

    # -- internals

    def _tag_id(self, tag: str) -> int:
        t = self._tag_ids.get(tag)
        if t is None:
            t = self._tag_ids[tag] = len(self._tag_names)
            self._tag_names.append(tag)
        return t

    def _row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item i's TF-IDF row under the current idf: (terms ascending, unit-length values)."""
        row = self._rows.get(i)
        if row is None:
            t, c = self._counts[i]
            v = (1.0 + np.log(c)) * self.idf.of(t)
            row = self._rows[i] = (t, v / np.linalg.norm(v))
        return row

    def _score_one(self, profile: Profile, i: int) -> float:
        s = 0.0
        if i in self._counts and len(profile.terms):
            t, v = self._row(i)
            _, a, b = np.intersect1d(profile.terms, t, assume_unique=True, return_indices=True)
            s += self.text_weight * float(profile.weights[a] @ v[b])
        if i in self._tags and len(profile.tags):
            mine = np.isin(profile.tags, self._tags[i], assume_unique=True)
            inter = float(profile.tag_weights[mine].sum())
            if inter > 0:
                union = float(profile.tag_weights.sum()) + len(self._tags[i]) - inter
                s += self.tag_weight * inter / union
        return s

    def _postings(self) -> _Postings:
        """The inverted lists, rebuilt when too many items changed since the last build."""
        if self._built is not None and len(self._pending) <= max(64, len(self._counts) // 16):
            return self._built
        self._pending = set()
        items = np.fromiter(self._counts, dtype=np.int64, count=len(self._counts))
        rows = [self._row(i) for i in items.tolist()]
        lens = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        term_items = np.repeat(items, lens)
        terms = np.concatenate([r[0] for r in rows]) if rows else _NO_INT
        values = np.concatenate([r[1] for r in rows]) if rows else _NO_FLOAT
        uniq, ptr, order = _invert(terms)
        tagged = np.fromiter(self._tags, dtype=np.int64, count=len(self._tags))
        tag_lens = np.fromiter((len(self._tags[i]) for i in tagged.tolist()), dtype=np.int64,
                               count=len(tagged))
        tags = np.concatenate([self._tags[i] for i in tagged.tolist()]) if len(tagged) \
            else _NO_INT
        tag_items = np.repeat(tagged, tag_lens)
        tag_uniq, tag_ptr, tag_order = _invert(tags)
        tag_count = np.zeros(len(self), dtype=np.int64)
        tag_count[tagged] = tag_lens
        self._built = _Postings(uniq, ptr, term_items[order], values[order], tag_uniq, tag_ptr,
                                tag_items[tag_order], tag_count)
        return self._built


def _invert(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys, the start of each one's run in the stable sort of `keys` (plus the end),
    and that sort's order."""
    order = np.argsort(keys, kind="stable")
    uniq, starts = np.unique(keys[order], return_index=True)
    return uniq, np.append(starts, len(keys)).astype(np.int64), order


def _gather(
    keys: np.ndarray, ptr: np.ndarray, want: np.ndarray, weights: np.ndarray,
    items: np.ndarray, values: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The postings of the keys `want` (with `weights`): their items, and value × weight."""
    at = np.searchsorted(keys, want)
    ok = at < len(keys)
    ok[ok] = keys[at[ok]] == want[ok]
    at, w = at[ok], weights[ok]
    if not len(at):
        return _NO_INT, _NO_FLOAT
    lo, hi = ptr[at], ptr[at + 1]
    idx = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
    gain = np.repeat(w, hi - lo)
    return items[idx], gain if values is None else gain * values[idx]


def _summed(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(keys):
        return _NO_INT, _NO_FLOAT
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse, values, minlength=len(uniq))


def _heaviest(terms: np.ndarray, weights: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The `limit` heaviest terms (ascending ids), scaled to unit length."""
    keep = weights > 0
    terms, weights = terms[keep], weights[keep]
    if len(terms) > limit:
        top = np.sort(np.argpartition(-weights, limit - 1)[:limit])
        terms, weights = terms[top], weights[top]
    norm = np.linalg.norm(weights)
    return terms, weights / norm if norm > 0 else weights


def _scaled_to_max(tags: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = weights > 0
    tags, weights = tags[keep], weights[keep]
    return tags, weights / weights.max() if len(weights) else weights
