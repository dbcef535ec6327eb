"""Users' declared profiles (interests, skills, signup time), bounded, ready for content scores.

A profile from the users topic is kept hashed (`models.content.TextEncoder`: the interests'
term counts) with its tag set and signup time; `models.content_index.ContentIndex` turns it into
a `Profile` under the current idf when the user is scored. At most `capacity` users are kept,
the least recently updated forgotten first (a forgotten user is served as one without a
profile until their profile is published again), so memory is bounded by the setting: about
200 bytes plus 16 per distinct term and 60 per tag a user.

>>> profiles = DeclaredProfiles(capacity=2)
>>> profiles.set_many([("u1", "stream processing", ["Kafka"], None, 1.7e9),
...                    ("u2", None, ["go"], {"city": "Berlin"}, None),
...                    ("u3", "recommender systems", [], None, None)])
>>> profiles.get("u1") is None, sorted(profiles.get("u2").tags), len(profiles)
(True, ['city=berlin', 'go'], 2)
>>> profiles.get("u3").terms.size
2
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from models.content import TextEncoder, tag_set
from models.errors import ModelError

DeclaredUser = tuple[str, str | None, Iterable[str], Mapping[str, object] | None, float | None]
"""(user id, interests, skills, attributes, signup time), as a `User` message carries them."""


@dataclass(frozen=True, slots=True)
class Declared:
    """One user's declared profile: hashed interest terms and counts, tags, signup time."""

    terms: np.ndarray
    counts: np.ndarray
    tags: frozenset[str]
    signup_at: float | None


class DeclaredProfiles:
    """User id -> `Declared`, the `capacity` most recently updated users."""

    def __init__(self, capacity: int = 1_000_000, encoder: TextEncoder | None = None) -> None:
        if capacity < 1:
            raise ModelError("capacity must be at least 1")
        self.capacity = capacity
        self.encoder = encoder or TextEncoder()
        self._by_user: OrderedDict[str, Declared] = OrderedDict()
        self.version = 0
        """Bumped on every change."""

    def __len__(self) -> int:
        return len(self._by_user)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._by_user

    def get(self, user_id: str) -> Declared | None:
        return self._by_user.get(user_id)

    def set_many(self, users: Iterable[DeclaredUser]) -> None:
        """Install profiles (a later one of the same user wins); texts hashed in one call."""
        users = list(users)
        counts = self.encoder.counts([u[1] or "" for u in users])
        counts.sort_indices()
        for r, (user_id, _, skills, attributes, signup_at) in enumerate(users):
            lo, hi = counts.indptr[r], counts.indptr[r + 1]
            self._by_user.pop(user_id, None)
            self._by_user[user_id] = Declared(
                counts.indices[lo:hi].astype(np.int64), counts.data[lo:hi].astype(np.float64),
                tag_set(skills, (), attributes), None if signup_at is None else float(signup_at))
        while len(self._by_user) > self.capacity:
            self._by_user.popitem(last=False)
        self.version += 1

    def drop(self, user_id: str) -> None:
        """Forget a user's profile (a deleted profile: a null message on the topic)."""
        if self._by_user.pop(user_id, None) is not None:
            self.version += 1
