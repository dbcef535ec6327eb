"""Every model's compiled kernels, compiled ahead: `warm_up()`, once per process.

A kernel first used inside a worker's batch compiles there (or loads from numba's cache next to
its module), which stalls that batch for up to seconds; the recommender's constructor, the
evaluation and the demo call `warm_up` before the first event. Each module warms its own kernels
(`models.kernels`: learning, `models.selection`: a list's selection, `models.exploration`: the
draw, `models.guard`: the bot guard's check); a fresh-process test checks that nothing a
recommender runs compiles after this.
"""

from __future__ import annotations

from models import exploration, guard, kernels, selection

_warm = False


def warm_up() -> None:
    """Compile (or load) every kernel the models call, for the dtypes they pass."""
    global _warm
    if _warm:
        return
    _warm = True
    for module in (kernels, selection, exploration, guard):
        module.warm_up()
