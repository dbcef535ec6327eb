"""Content features: hashed TF-IDF term vectors of text, and normalised tag sets.

**Text.** scikit-learn's `HashingVectorizer` turns a text into term counts over 2^18 hashed
features (English stop words dropped, no vocabulary to fit or to ship: every process hashes a
new item's text the same way). A term's weight is (1 + log tf) · idf, and a vector is scaled to
unit length, so the dot product of two vectors is their cosine (scikit-learn's
`TfidfTransformer(sublinear_tf=True)`, which `Idf.fit` uses to learn the idf).

**Idf.** The refitter fits the inverse document frequencies on the catalog's texts, smooth:
idf(t) = ln((1 + n) / (1 + df(t))) + 1, and ships the features it saw; a feature no text had
gets the largest value, ln(1 + n) + 1 (a rare word is informative). Before any refit every idf
is 1 (`Idf.uniform()`): cosine of term frequencies, which already works for the ladder's content
step.

**Tags.** An item's tags, categories and textual attributes (`key=value`) become one set of
lowercase strings (`tag_set`); a user's declared interests or skills are a set the same way.

>>> enc = TextEncoder()
>>> counts = enc.counts(["red running shoes", "blue running jacket", "red wine"])
>>> idf = Idf.fit(counts)
>>> X = tfidf(counts, idf)
>>> (X @ X.T).toarray()[0].round(2).tolist()   # cosines: "red" and "running" are as common
[1.0, 0.25, 0.31]
>>> sorted(tag_set(["Trail ", "trail"], ["Shoes"], {"brand": "Acme", "size": 42}))
['brand=acme', 'shoes', 'trail']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from models.errors import ModelError

N_FEATURES = 1 << 18
"""Hashed text features: collisions are rare below ~100K distinct terms."""


class TextEncoder:
    """Text to hashed term counts (stateless: the same text gives the same counts anywhere)."""

    def __init__(self, n_features: int = N_FEATURES) -> None:
        self.n_features = n_features
        self._vectorizer = HashingVectorizer(
            n_features=n_features, alternate_sign=False, norm=None, stop_words="english",
            dtype=np.float32)

    def counts(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Term counts, one row per text (empty text: an empty row; no texts: no rows).

        >>> TextEncoder(16).counts([]).shape
        (0, 16)
        """
        texts = list(texts)
        if not texts:  # scikit-learn's hasher needs a first document
            return sp.csr_matrix((0, self.n_features), dtype=np.float32)
        return self._vectorizer.transform(texts).tocsr()


@dataclass(frozen=True, eq=False)
class Idf:
    """Inverse document frequencies of the hashed features a catalog's texts hold."""

    n_docs: int
    features: np.ndarray
    """Hashed features seen in at least one text (int64, ascending)."""
    values: np.ndarray
    """Their idf (float64)."""
    n_features: int = N_FEATURES

    @classmethod
    def uniform(cls, n_features: int = N_FEATURES) -> Idf:
        """Every idf 1: term frequencies alone (before the first refit)."""
        return cls(0, np.zeros(0, np.int64), np.zeros(0), n_features)

    @classmethod
    def fit(cls, counts: sp.spmatrix) -> Idf:
        """Smooth idf of the texts whose term counts are the rows of `counts`."""
        counts = sp.csr_matrix(counts)
        n_docs = counts.shape[0]
        if n_docs == 0:
            return cls.uniform(counts.shape[1])
        idf = TfidfTransformer(smooth_idf=True).fit(counts).idf_
        seen = np.flatnonzero(np.diff(counts.tocsc().indptr) > 0)
        return cls(n_docs, seen.astype(np.int64), idf[seen].astype(np.float64), counts.shape[1])

    @property
    def default(self) -> float:
        """The idf of a feature no text held (1 when uniform)."""
        return math.log(1 + self.n_docs) + 1.0 if self.n_docs else 1.0

    def of(self, features: np.ndarray) -> np.ndarray:
        """The idf of each of `features`."""
        features = np.asarray(features, dtype=np.int64)
        at = np.searchsorted(self.features, features)
        at = np.minimum(at, max(len(self.features) - 1, 0))
        known = (self.features[at] == features) if len(self.features) else \
            np.zeros(len(features), bool)
        return np.where(known, self.values[at] if len(self.values) else 0.0, self.default)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot (no pickles): `idf_features` int64, `idf_values` float64, and
        `idf_meta` = [n_docs, n_features]."""
        return {"idf_features": self.features, "idf_values": self.values,
                "idf_meta": np.array([self.n_docs, self.n_features], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Idf:
        n_docs, n_features = (int(x) for x in arrays["idf_meta"])
        features = np.asarray(arrays["idf_features"], dtype=np.int64)
        values = np.asarray(arrays["idf_values"], dtype=np.float64)
        if len(features) != len(values) or (len(features) and (
                features.min() < 0 or features.max() >= n_features
                or np.any(np.diff(features) <= 0))):
            raise ModelError("idf arrays are inconsistent (length, range or order)")
        if not np.isfinite(values).all():
            raise ModelError("idf values contain NaN or infinity")
        return cls(n_docs, features, values, n_features)


class DocumentFrequencies:
    """How many texts hold each hashed feature, kept as texts come and go, and the `Idf` they
    make (what `Idf.fit` computes from scratch, without hashing the catalog again)."""

    def __init__(self, n_features: int = N_FEATURES) -> None:
        self.df = np.zeros(n_features, dtype=np.int64)
        self.n_docs = 0

    def add(self, features: np.ndarray) -> None:
        """A text with these distinct features arrived."""
        self.df[features] += 1
        self.n_docs += 1

    def remove(self, features: np.ndarray) -> None:
        """A text with these features left (replaced or deleted)."""
        self.df[features] -= 1
        self.n_docs -= 1

    def idf(self) -> Idf:
        if self.n_docs == 0:
            return Idf.uniform(len(self.df))
        seen = np.flatnonzero(self.df > 0)
        values = np.log((1.0 + self.n_docs) / (1.0 + self.df[seen])) + 1.0
        return Idf(self.n_docs, seen.astype(np.int64), values, len(self.df))


def tfidf(counts: sp.spmatrix, idf: Idf) -> sp.csr_matrix:
    """Unit-length (1 + log tf) · idf rows (float64)."""
    X = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    X.data = (1.0 + np.log(X.data)) * idf.of(X.indices)
    return normalize(X, norm="l2", copy=False)


def tag_set(
    tags: Iterable[str] = (),
    categories: Iterable[str] = (),
    attributes: Mapping[str, object] | None = None,
) -> frozenset[str]:
    """Tags, categories and the textual or boolean attributes (`key=value`) as lowercase
    strings with single spaces; numbers are not tags."""
    out = {" ".join(str(t).lower().split()) for t in (*tags, *categories)}
    for key, value in (attributes or {}).items():
        if isinstance(value, str | bool):
            out.add(" ".join(f"{key}={value}".lower().split()))
    out.discard("")
    return frozenset(out)


def attribute_tags(item: Any) -> list[str]:
    """An item's textual and boolean attributes as `key=value` tags.

    >>> class It: attributes = {"brand": "acme", "new": True, "weight": 1.5}
    >>> attribute_tags(It())
    ['brand=acme', 'new=True']
    """
    attributes = getattr(item, "attributes", None) or {}
    return [f"{k}={v}" for k, v in attributes.items() if isinstance(v, str | bool)]
