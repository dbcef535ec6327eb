"""Exact re-scoring of retrieved candidates: the ranking's scores, exclusions, session blend and
order, on a few hundred items per user instead of the whole catalog.

An approximate index (`models.ann`) proposes each user's candidates; everything after that is
exact. A user's score for a candidate is x·y with the item's current vector (a partition's new
item vector where it has one), hidden and excluded items score -inf, and the session blend is

    f / f_max + weight · s / s_max

as in `models.covisit.blend`, with s_max over the session's shown items (all of them are
candidates: `with_columns` adds them) and f_max = max |f| over shown items, which the caller
gives (`models.ann.score_range` reads it off the index). Ties are broken by ascending item
index, so with every item as a candidate the lists equal `models.topk.topk_batch`'s.

>>> Y = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]], dtype=np.float32)
>>> X = np.array([[1.0, 0.2]], dtype=np.float32)
>>> cands = with_columns(np.array([[2, 0, -1]]), [np.array([3])])
>>> cands.tolist()
[[0, 2, 3]]
>>> idx, val = rescore(Y, X, cands, k=2, exclude=[np.array([0])])
>>> idx.tolist(), [round(v, 2) for v in val[0].tolist()]
([[2, 3]], [0.84, -1.0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_PAD = np.iinfo(np.int64).max
Session = tuple[np.ndarray, np.ndarray] | None
"""Sparse session scores as `models.covisit` gives them: (columns, terms), summed per column."""


def with_columns(cands: np.ndarray, extra: Sequence[np.ndarray | None]) -> np.ndarray:
    """Each row's candidates plus `extra[row]` (e.g. its session's columns, new items), sorted,
    unique, padded with -1 at the end: a (B, C') int64 matrix."""
    B = len(cands)
    lens = [0 if r >= len(extra) or extra[r] is None else len(extra[r])  # type: ignore[arg-type]
            for r in range(B)]
    M = np.full((B, cands.shape[1] + max(lens, default=0)), _PAD, dtype=np.int64)
    M[:, : cands.shape[1]] = np.where(cands >= 0, cands, _PAD)
    for r, n in enumerate(lens):
        if n:
            M[r, cands.shape[1] : cands.shape[1] + n] = extra[r]  # type: ignore[index]
    M.sort(axis=1)
    M[:, 1:][M[:, 1:] == M[:, :-1]] = _PAD  # repeats
    M.sort(axis=1)
    width = int((M != _PAD).sum(axis=1).max(initial=0))
    M = M[:, :width]
    M[M == _PAD] = -1
    return M


def scores(Y: np.ndarray, X: np.ndarray, cands: np.ndarray,
           overlay: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """x_b · y_c for each row's candidates (in float32 as the full scan, returned as float64;
    -inf at padding). `overlay` = (item indices, their vectors) replaces those items' rows of
    `Y`."""
    safe = np.where(cands >= 0, cands, 0)
    V = Y[safe]
    if overlay is not None and len(overlay[0]):
        order = np.argsort(overlay[0])
        new, W = overlay[0][order], overlay[1][order]
        pos = np.minimum(np.searchsorted(new, safe), len(new) - 1)
        hit = (new[pos] == safe) & (cands >= 0)
        V[hit] = W[pos[hit]]
    S = np.einsum("bck,bk->bc", V, np.asarray(X, dtype=V.dtype)).astype(np.float64)
    S[cands < 0] = -np.inf
    return S


def hide(S: np.ndarray, cands: np.ndarray, hidden: np.ndarray | None,
         exclude: Sequence[np.ndarray] | None) -> np.ndarray:
    """-inf (in place) where a candidate is `hidden` (a mask over items) or in its row's
    `exclude` (item indices); `hidden` covers every candidate index, and rows are sorted with
    their padding at the end (`with_columns`)."""
    if hidden is not None:
        S[(cands >= 0) & hidden[np.where(cands >= 0, cands, 0)]] = -np.inf
    if exclude is not None:
        n = (cands >= 0).sum(axis=1)
        for r, ex in enumerate(exclude):
            if len(ex) and n[r]:  # rows are sorted (`with_columns`): a binary search each
                row = cands[r, : n[r]]
                pos = np.minimum(np.searchsorted(row, ex), n[r] - 1)
                S[r, pos[row[pos] == ex]] = -np.inf
    return S


def blend(S: np.ndarray, cands: np.ndarray, sessions: Sequence[Session], weight: float,
          f_max: np.ndarray) -> np.ndarray:
    """The session blend of each row with a session (see the module docstring); rows without
    one, or whose session has no shown item, keep their dot products. `cands` rows are sorted
    with their padding at the end (`with_columns`). In place."""
    if weight == 0:
        return S
    for r, session in enumerate(sessions):
        if session is None or not len(session[0]):
            continue
        cols, terms = session
        row = cands[r]
        s = np.zeros(row.shape[0])
        pos = np.searchsorted(row[row >= 0], cols)
        keep = pos < int((row >= 0).sum())
        keep[keep] &= row[pos[keep]] == cols[keep]
        np.add.at(s, pos[keep], terms[keep])
        shown = np.isfinite(S[r])
        s[~shown] = 0.0
        s_max = s.max(initial=0.0)
        if s_max <= 0:
            continue
        f = float(f_max[r])
        S[r] = np.where(shown, weight * s / s_max + (S[r] / f if f > 0 else S[r]), -np.inf)
    return S


def select(S: np.ndarray, cands: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best `k` (item indices, scores), score descending then index ascending (rows
    are sorted: a stable sort keeps ties in index order); rows with fewer shown candidates are
    padded with -1 and -inf."""
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(S))[:, None]
    idx, val = cands[rows, order], S[rows, order]
    idx = np.where(np.isfinite(val), idx, -1)
    val = np.where(idx >= 0, val, -np.inf)
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        val = np.pad(val, ((0, 0), (0, pad)), constant_values=-np.inf)
    return idx, val


def rescore(Y: np.ndarray, X: np.ndarray, cands: np.ndarray, k: int,
            hidden: np.ndarray | None = None, exclude: Sequence[np.ndarray] | None = None,
            overlay: tuple[np.ndarray, np.ndarray] | None = None,
            sessions: Sequence[Session] | None = None, weight: float = 0.0,
            f_max: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The top `k` of each row's candidates (rows sorted, unique, padded at the end: as
    `with_columns` makes them), scored exactly: `scores`, `hide`, `blend`, `select`. With
    sessions, `cands` must hold their columns (`with_columns`) and `f_max` the
    rows' largest |x·y| over shown items."""
    S = hide(scores(Y, X, cands, overlay), cands, hidden, exclude)
    if sessions is not None and weight != 0:
        if f_max is None:
            raise ValueError("the session blend needs f_max (see models.ann.score_range)")
        S = blend(S, cands, sessions, weight, f_max)
    return select(S, cands, k)
