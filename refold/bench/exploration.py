"""What drawing a list costs: each exploration policy's `decide`, side by side with the plain
top-K the worker would publish without one (`none`), on the same ranked candidates.

Candidates are the top 2·K of a catalog's dot-product scores (one ALS-like user against random
factors); each list gets its own `rec_id`, so every draw is a fresh seed, as in the worker.
"""

from __future__ import annotations

import os
import time

import numpy as np

from models.decision import Demotion, decide
from models.exploration import Policy


def _candidates(k: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    Y = rng.normal(size=(10_000, 32)).astype(np.float32)
    s = Y @ rng.normal(size=32).astype(np.float32)
    top = np.argsort(-s)[: 2 * k]
    return [f"i{i}" for i in top], s[top].astype(np.float64)


def run(lists: int = 2000, k: int = 20, seed: int = 0) -> dict:
    """Lists per second and µs per list, per policy, with and without exposure demotion."""
    rng = np.random.default_rng(seed)
    items, scores = _candidates(k, rng)
    exposure = np.zeros(len(items), dtype=np.int64)
    exposure[:3] = 3
    policies = {"none": Policy(), "epsilon 0.1": Policy("epsilon", epsilon=0.1),
                "plackett_luce T=0.05": Policy("plackett_luce", temperature=0.05),
                "plackett_luce T=0.1": Policy("plackett_luce", temperature=0.1),
                "plackett_luce T=0.3": Policy("plackett_luce", temperature=0.3)}
    out: dict = {"lists": lists, "k": k, "loadavg": os.getloadavg(), "policies": {}}
    for name, policy in policies.items():
        decide(items, scores, k, policy, "warm-up")  # compile the kernels first
        for demote in (False, True):
            t0 = time.perf_counter()
            for n in range(lists):
                decide(items, scores, k, policy, f"r{n}", exposure if demote else None,
                       Demotion(2, 1.0) if demote else None)
            us = (time.perf_counter() - t0) / lists * 1e6
            out["policies"][f"{name}{' + demotion' if demote else ''}"] = round(us, 1)
    base = out["policies"]["none"]
    out["ratio_to_none"] = {p: round(us / base, 2) for p, us in out["policies"].items()}
    return out


def table(result: dict) -> str:
    lines = [f"lists of {result['k']} from {2 * result['k']} candidates, "
             f"{result['lists']:,} each (load {result['loadavg'][0]:.1f})",
             "| policy | µs per list | × none |", "|---|---|---|"]
    for name, us in result["policies"].items():
        lines.append(f"| {name} | {us:,.1f} | {result['ratio_to_none'][name]:.1f}× |")
    return "\n".join(lines)
