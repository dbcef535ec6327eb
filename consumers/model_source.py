"""Where a worker's first item factors come from: a file, a fit at start, or nothing.

A model file is either a snapshot (`models.snapshot.Snapshot.to_bytes`, magic `RFLDSNP1`) or an
`.npz` written with `np.savez`: `item_factors` (items × factors), optionally `item_ids` (strings;
default the row numbers "0", "1", ...), `version` (default 1) and `user_factors` (gives XᵀX). An
implicit model saved with `model.save(path)` is such a file. Nothing is unpickled.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
>>> save_npz(path, ItemFactors(["a", "b"], np.eye(2, dtype=np.float32), version=7))
>>> f = load_item_factors(path)
>>> f.item_ids, f.version, f.Y.shape
(('a', 'b'), 7, (2, 2))
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from models.als import csr_from, fit_als
from models.foldin import ItemFactors
from models.recommender import FoldInConfig
from models.snapshot import MAGIC, Snapshot
from refold.core.config import Settings
from refold.core.errors import ConsumerError

log = logging.getLogger(__name__)


class ModelSourceError(ConsumerError, ValueError):
    """A model file cannot be read, or a `--fit-from` spec is not understood."""


def load_item_factors(path: str | Path) -> ItemFactors:
    """Item factors from a snapshot file or an `.npz` (see the module docstring)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelSourceError(f"model file {path}: {exc.strerror}") from exc
    if data.startswith(MAGIC):
        return Snapshot.from_bytes(data).item_factors()
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"model file {path}: not a snapshot or an .npz ({exc})") from exc
    if "item_factors" not in arrays:
        raise ModelSourceError(f"model file {path}: no 'item_factors' array")
    Y = arrays["item_factors"]
    ids = [str(i) for i in arrays.get("item_ids", np.arange(len(Y))).tolist()]
    X = arrays.get("user_factors")
    XtX = None if X is None else X.astype(np.float64).T @ X.astype(np.float64)
    return ItemFactors(ids, Y, int(arrays.get("version", 1)), XtX=XtX)


def save_npz(path: str | Path, factors: ItemFactors) -> None:
    """Write item factors in the `.npz` layout `load_item_factors` reads."""
    np.savez(path, item_ids=np.array(factors.item_ids, dtype=str), item_factors=factors.Y,
             version=np.int64(factors.version))


def foldin_config(settings: Settings, **changes: object) -> FoldInConfig:
    """The fold-in settings named in `Settings` (k, alpha, decay, the event weights, the
    cold-start ramp, the blend weights ...); the rest as defaulted."""
    values = {f: getattr(settings, f) for f in FoldInConfig.__dataclass_fields__
              if f in Settings.model_fields}
    values["weights"] = settings.event_weights.to_model()
    return FoldInConfig.from_mapping({**values, **changes})


def fit_log(events, settings: Settings, config: FoldInConfig | None = None,
            random_state: int = 0) -> ItemFactors:
    """Fit ALS item factors on an `InteractionLog` (users × items of summed event weights),
    with the event weights the fold-in uses, so served users and trained users agree."""
    config = config or foldin_config(settings)
    weight = config.weights.weight
    w = np.fromiter((weight(t, None if v != v else v) for t, v in
                     zip(events.event_types.tolist(), events.values.tolist(), strict=True)),
                    dtype=np.float32, count=len(events))
    users, u = np.unique(events.user_ids, return_inverse=True)
    items, i = np.unique(events.item_ids, return_inverse=True)
    X = csr_from(u, i, w, (len(users), len(items)))
    log.info("fitting ALS on %d events (%d users x %d items, %d factors, %d iterations)",
             len(events), len(users), len(items), settings.factors, settings.iterations)
    return fit_als(X, settings.factors, settings.regularization, settings.alpha,
                   settings.iterations, random_state, item_ids=items.tolist(), version=1)
