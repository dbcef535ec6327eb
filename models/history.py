"""A user's bounded recent history, blocks and consumed items, and its decayed confidences.

Memory per user is bounded: the events live in one packed numpy ring of `max_events` records of
28 bytes (item int32, weight float32, time float64, sequence int64, session int32), so 1.4 KB at the
default 50, plus about 70 bytes per blocked or consumed item, at most `max_excluded` (default 1000)
of each; the oldest are forgotten first.

Sessions are numbered per user: an event whose session id differs from the previous event's opens
a new session, and the "current session" (the one boosted) is the latest event's.

>>> h = UserHistory(max_events=3)
>>> for i, item in enumerate([7, 8, 7, 9]):
...     h.add(item, 1.0, t=100.0 + i, session_id="s1")
>>> items, conf = h.confidences(now=104.0, decay=Decay("events", half_life=1.0))
>>> items.tolist(), conf.tolist()      # item 7's first event fell out of the ring of 3
([7, 8, 9], [0.5, 0.25, 1.0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from models import kernels
from models.continuation import OPENING, Continuation
from models.feedback import UserFeedback

EVENT_DTYPE = np.dtype(
    [("item", "<i4"), ("weight", "<f4"), ("time", "<f8"), ("seq", "<i8"), ("session", "<i4")]
)
STATE_VERSION = 1
_NONE = np.zeros(0, dtype=EVENT_DTYPE)
_ITEM_KEYS = ("items", "blocked", "consumed")


@dataclass(frozen=True)
class Decay:
    """How old events fade: by the user's own event count, by time, or not at all.

    `half_life` is in events (mode "events") or seconds (mode "time"); events of the current
    session are multiplied by `session_boost`.
    """

    mode: Literal["events", "time", "none"] = "events"
    half_life: float = 5.0
    session_boost: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("events", "time", "none"):
            raise ValueError(f"unknown decay mode {self.mode!r}")
        if self.mode != "none" and not self.half_life > 0:
            raise ValueError("half_life must be positive")


class UserHistory:
    """Recent events of one user (a ring of `max_events`), plus blocked and consumed items."""

    __slots__ = (
        "_buf", "_excluded", "_n_sessions", "_positive", "_session_id", "_session_no", "blocked",
        "consumed", "continuation", "feedback", "first_time", "max_age", "max_events",
        "max_excluded", "seq",
    )

    def __init__(
        self, max_events: int = 50, max_age: float | None = None, max_excluded: int = 1000
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.max_events = max_events
        self.max_age = max_age
        self.max_excluded = max_excluded
        self._buf = np.zeros(max_events, dtype=EVENT_DTYPE)
        self.seq = 0
        """How many events this user has had in total (the next event's sequence number)."""
        self.first_time: float | None = None
        """Time of the user's first event (the account's age, when no signup time is known)."""
        self.continuation: Continuation | None = None
        """Open bookmarks and carts (`models.continuation`), made at the first of them."""
        self._session_id: str | None = None
        self._session_no = -1
        self._n_sessions = 0
        self.blocked: dict[int, None] = {}
        self.consumed: dict[int, None] = {}
        self._positive: tuple[int, int, np.ndarray] = (-1, 0, np.zeros(0, np.intp))
        """The last `positive_items` result, with the `seq` and `n` it was computed for."""
        self._excluded: tuple[tuple[int, int], np.ndarray] = ((-1, -1), np.zeros(0, np.int64))
        self.feedback: UserFeedback | None = None
        """What the user was shown and did with it (`models.feedback`); None until refold
        hears of an impression or sees the user arrive. Saved and restored with the history."""

    def __len__(self) -> int:
        return min(self.seq, self.max_events)

    @property
    def nbytes(self) -> int:
        """Memory of the event buffer (fixed: `max_events` records of `EVENT_DTYPE`)."""
        return self._buf.nbytes

    @property
    def last_time(self) -> float | None:
        return float(self._buf["time"][(self.seq - 1) % self.max_events]) if self.seq else None

    def add(
        self,
        item: int,
        weight: float,
        t: float,
        session_id: str | None = None,
        consume: bool = False,
        block: bool = False,
    ) -> None:
        """Record one event; `consume` and `block` exclude the item from recommendations."""
        if session_id is None:
            session_no = -1
        elif session_id == self._session_id:
            session_no = self._session_no
        else:
            session_no, self._n_sessions = self._n_sessions, self._n_sessions + 1
        self._session_id, self._session_no = session_id, session_no
        self._buf[self.seq % self.max_events] = (item, weight, t, self.seq, session_no)
        if self.first_time is None:
            self.first_time = t
        self.seq += 1
        if consume:
            _bounded_add(self.consumed, item, self.max_excluded)
        if block:
            _bounded_add(self.blocked, item, self.max_excluded)

    def observe(self, item: int, event_type: str, t: float) -> None:
        """Keep the user's open bookmarks and carts (`models.continuation`) up to date."""
        if self.continuation is None:
            if event_type not in OPENING:
                return
            self.continuation = Continuation()
        self.continuation.observe(item, event_type, t)

    def unblock(self, item: int) -> None:
        self.blocked.pop(item, None)

    def excluded(self) -> np.ndarray:
        """Items never to recommend to this user: blocked or consumed (int64, unsorted; cached
        until the next event or unblock)."""
        key = (self.seq, len(self.blocked))
        if self._excluded[0] != key:
            self._excluded = (key, np.fromiter([*self.blocked, *self.consumed], dtype=np.int64))
        return self._excluded[1]

    def positive_items(self, n: int) -> np.ndarray:
        """The items of the last `n` positive events in the ring, oldest first (cached until
        the next event: learning and then recommending both ask for them)."""
        seq, last_n, items = self._positive
        if seq == self.seq and last_n == n:
            return items
        items = kernels.last_positives(self._buf["item"], self._buf["weight"], self.seq,
                                       len(self), n if n > 0 else len(self))
        self._positive = (self.seq, n, items)
        return items

    def events(self) -> np.ndarray:
        """The events in the ring, oldest first (a structured array of `EVENT_DTYPE`)."""
        n, start = len(self), self.seq % self.max_events
        if not n:
            return self._buf[:0]
        return np.concatenate((self._buf[start:], self._buf[:start]))[-n:]  # np.roll, cheaper

    def ring(self) -> tuple[np.ndarray, int, int]:
        """The ring itself (not a copy: read only), the user's event count and the events it
        holds: event s is at `s % max_events` (`models.guard` reads it in place)."""
        return self._buf, self.seq, len(self)

    def confidences(
        self, now: float, decay: Decay = Decay()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decayed weight summed per item: (items int32, weights float32), zero sums left out.

        A positive sum means preference 1 with that confidence, a negative one preference 0 with
        confidence |sum|; the fold-in multiplies both by `alpha`.
        """
        _, items, weights = confidences_many([self], [now], decay)
        return items, weights

    def to_state(self, item_ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Plain lists and numbers (JSON/msgspec friendly), oldest event first.

        Indices are local to a process: pass `item_ids` (index → id) to save ids instead.
        """
        ev = self.events()
        state = {
            "v": STATE_VERSION,
            "max_events": self.max_events,
            "max_age": self.max_age,
            "max_excluded": self.max_excluded,
            "seq": self.seq,
            "session_id": self._session_id,
            "session_no": self._session_no,
            "n_sessions": self._n_sessions,
            **{f"{name}s": ev[name].tolist() for name in EVENT_DTYPE.names or ()},
            "blocked": list(self.blocked),
            "consumed": list(self.consumed),
            "first": self.first_time,
        }
        if self.continuation:
            state["open"] = self.continuation.to_state(item_ids)
        if item_ids is not None:
            for key in _ITEM_KEYS:
                state[key] = [item_ids[i] for i in state[key]]
        if self.feedback is not None:
            ids = item_ids if item_ids is not None else _Identity()
            state["feedback"] = self.feedback.to_state(ids)  # type: ignore[arg-type]
        return state

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], index: Callable[[str], int] | None = None
    ) -> UserHistory:
        """Rebuild a history saved by `to_state`; `index` maps saved item ids back to indices."""
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"unknown user state version {state.get('v')!r}")
        if index is not None:
            state = {**state, **{key: [index(i) for i in state[key]] for key in _ITEM_KEYS}}
        h = cls(state["max_events"], state["max_age"], state["max_excluded"])
        h.seq, h._session_id = state["seq"], state["session_id"]
        h._session_no, h._n_sessions = state["session_no"], state["n_sessions"]
        n = len(state["seqs"])
        keep = slice(max(0, n - h.max_events), n)  # column by column: restores are bulk
        at = np.asarray(state["seqs"][keep], dtype=np.int64) % h.max_events
        for name in EVENT_DTYPE.names or ():
            column = state[f"{name}s"]
            if len(column) != n:
                raise ValueError(f"user state: {len(column)} {name}s for {n} events")
            h._buf[name][at] = column[keep]
        h.blocked = dict.fromkeys(state["blocked"])
        h.consumed = dict.fromkeys(state["consumed"])
        if state.get("feedback") is not None:
            h.feedback = UserFeedback.from_state(state["feedback"], index or int)
        if state.get("open"):
            h.continuation = Continuation.from_state(state["open"], index)
        # None (columns empty) for a user with no event yet, whose record exists for the
        # impressions it was shown; absent in states written before it was kept: there the
        # oldest event held stands in
        first = state.get("first")
        h.first_time = first if first is not None else (
            float(np.min(state["times"])) if len(state["times"]) else None)
        return h


def confidences_many(
    histories: Sequence[UserHistory], nows: Sequence[float], decay: Decay = Decay()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`UserHistory.confidences` of many users in one pass: (offsets, items int32, weights
    float32), user b's items (ascending) at `offsets[b]:offsets[b + 1]`."""
    n = len(histories)
    if n == 1:  # the per-event path: one compiled pass
        items, sums = _confidences_one(histories[0], nows[0], decay)
        return np.array([0, len(items)]), items, sums
    lens = [len(h) for h in histories]
    # Concatenating raw bytes skips numpy's per-array structured-dtype checks (~5 µs each).
    size = EVENT_DTYPE.itemsize
    raw = [h._buf.view(np.uint8)[: m * size] for h, m in zip(histories, lens, strict=True)]
    ev = np.concatenate(raw or [_NONE.view(np.uint8)]).view(EVENT_DTYPE)
    user = np.repeat(np.arange(n, dtype=np.int64), lens)
    now = _each(nows, user)
    w = ev["weight"].astype(np.float64)
    if decay.mode == "events":
        w *= np.exp2((ev["seq"] - _each([h.seq - 1 for h in histories], user))
                     / decay.half_life)
    elif decay.mode == "time":
        w *= np.exp2(-np.maximum(now - ev["time"], 0.0) / decay.half_life)
    if decay.session_boost != 1.0:
        current = _each([h._session_no for h in histories], user)
        w[(ev["session"] == current) & (current >= 0)] *= decay.session_boost
    keys = (user << 32) | ev["item"].astype(np.int64)
    if any(h.max_age is not None for h in histories):
        ages = [np.inf if h.max_age is None else h.max_age for h in histories]
        recent = ev["time"] >= now - _each(ages, user)
        keys, w = keys[recent], w[recent]
    # One stable sort over (user, item) keys aggregates every user's items, in event order.
    order = np.argsort(keys, kind="stable")
    keys, w = keys[order], w[order]
    new_key = np.empty(len(keys), dtype=bool)
    new_key[:1], new_key[1:] = True, keys[1:] != keys[:-1]
    first = np.flatnonzero(new_key)
    sums = np.add.reduceat(w, first) if len(first) else w
    keys, sums = keys[first][sums != 0.0], sums[sums != 0.0]
    offsets = np.searchsorted(keys >> 32, np.arange(n + 1))
    return offsets, (keys & 0xFFFFFFFF).astype(np.int32), sums.astype(np.float32)


_DECAY_MODES = {"none": 0, "events": 1, "time": 2}


def _confidences_one(h: UserHistory, now: float, decay: Decay) -> tuple[np.ndarray, np.ndarray]:
    return kernels.confidences(
        h._buf[: len(h)], _DECAY_MODES[decay.mode], decay.half_life, h.seq - 1, float(now),
        decay.session_boost, h._session_no, np.inf if h.max_age is None else float(h.max_age))


def _each(values: Sequence[float], user: np.ndarray) -> np.ndarray:
    """Per-user values spread over the events."""
    return np.asarray(values)[user]


def _bounded_add(ordered: dict[int, None], item: int, cap: int) -> None:
    """Insert or refresh `item` as newest; drop the oldest beyond `cap`."""
    ordered.pop(item, None)
    ordered[item] = None
    if len(ordered) > cap:
        del ordered[next(iter(ordered))]


class _Identity:
    """`item_ids` when states keep indices: index -> itself."""

    def __getitem__(self, i: int) -> int:
        return i
