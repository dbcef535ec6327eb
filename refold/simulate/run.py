"""`refold simulate`: policies compared on one simulated population, and off-policy estimates of
the CTR@3 of some of them from the logs of another, next to what running them measured.

Each variant gets the same customers (`producers.population`, same seed: same tastes, visits and
random draws) and its own pipeline (`refold.simulate.pipeline`), served by `refold.simulate.shop`.
The *logging* variant (`refold`, the default settings) is the one whose impressions and events
are read back from its topics when its run ends; each *candidate* (a variant that differs from it
only in its exploration policy, or in the shop re-ranking the lists' logged candidates with
popularity, `models.rescore`) is estimated from them with IPS, SNIPS and doubly robust
(`refold.ope`), and its estimate is set next to its `truth`: the CTR@3 its own run measured.
Variants run `parallel` at a time (each waits on its pipeline most of the time).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.exploration import Policy
from models.ope import OPEError
from models.rescore import Rescore, Rescored
from producers.population import Population, ShopConfig
from refold.core.config import Settings
from refold.ope import Logs, estimate, export, join, read_topics
from refold.simulate.pipeline import Pipeline, Variant
from refold.simulate.shop import Shop
from refold.simulate.survival import paired_difference
from refold.simulate.tally import Tally

LOGGING = "refold"
BASELINE = "popularity"
"""The policy refold's targets are set against: global popularity only."""


def variants(settings: Settings) -> list[Variant]:
    """The compared policies: refold as configured, refold without exploration or exposure
    feedback, two other exploration settings, refold's candidates re-ranked by the shop with
    popularity blended in lightly, more, or alone (only when named: each is another pipeline),
    refold ranking with the hand-set blend instead of the learned mixer (none fitted, none
    served; only when named, to keep the default run near 10 minutes), `content-trending`
    (refold without collaborative filtering: its cold-start lists, trending blended with the
    content similarity of the customer's items, categories being tags, or the mixer over those
    two signals; no exploration, no exposure feedback: a personalised, category-aware baseline),
    and the shop-served ones: `popularity` (global popularity only, `refold.simulate.popular`),
    `popularity-exposure` (the same with refold's exposure feedback at its default settings),
    random, and the oracle."""
    explore = {"exploration": "epsilon", "exploration_epsilon": 0.1}
    softer = {"exploration": "plackett_luce",
              "exploration_temperature": round(settings.exploration_temperature * 2, 4)}
    return [
        Variant(LOGGING),
        Variant("refold-no-exploration", {"exploration": "none"}, candidate=True),
        Variant("refold-epsilon", explore, candidate=True),
        Variant("refold-plackett-luce-x2", softer, candidate=True),
        Variant("refold-popularity-light", rerank=Rescore(score=1.0, popularity=0.2),
                candidate=True, default=False),
        Variant("refold-popularity-blend", rerank=Rescore(score=1.0, popularity=0.5),
                candidate=True, default=False),
        Variant("refold-popularity-first", rerank=Rescore(score=0.0, popularity=1.0),
                candidate=True, default=False),
        Variant("refold-no-exposure", {"exposure_strength": 0.0}),
        Variant("refold-no-mixer", {"mixer": False, "learn_mixer": False}, default=False),
        Variant("content-trending", {"exploration": "none", "exposure_strength": 0.0},
                fold_in={"min_events": 1_000_000_000}),
        Variant("popularity", shop="popularity"),
        Variant("popularity-exposure", shop="popularity-exposure"),
        Variant("random", shop="random"),
        Variant("oracle", shop="oracle"),
    ]


def policy_of(settings: Settings) -> Policy:
    return Policy(settings.exploration, settings.exploration_epsilon,
                  settings.exploration_temperature, settings.exploration_candidates)


@dataclass
class Outcome:
    """One variant's run: the shop's figures, and (logging variant) the logs read back."""

    name: str
    figures: dict[str, Any]
    seconds: float
    policy: Policy | Rescored | None = None
    logs: Logs | None = field(default=None, repr=False)
    follow_up: tuple[Any, Any] | None = field(default=None, repr=False)
    """The new customers' times to first conversion (or to the end) and whether each bought."""


def run_variant(variant: Variant, shop: ShopConfig, settings: Settings, run: str,
                log_dir: Path, refit_every: float, keep_logs: bool,
                progress: Callable[[int], Any] | None = None) -> Outcome:
    """Serve one variant to a fresh copy of the population."""
    started = time.monotonic()
    population = Population(shop)
    tally = Tally.for_shop(shop)
    if variant.shop is not None:
        Shop(population, variant, tally).run(progress)
        return Outcome(variant.name, tally.result(), time.monotonic() - started,
                       follow_up=tally.follow_up()[:2])
    with Pipeline(settings, variant, run, log_dir) as pipeline:
        shop_ = Shop(population, variant, tally, pipeline, refit_every)
        shop_.run(progress)
        figures = {**tally.result(), "model_version": pipeline.version}
        pipeline.catch_up(shop_.sent)
        figures["metrics"] = pipeline.measured(figures["impressions"])
        logs = read_topics(pipeline.settings) if keep_logs else None
        policy = policy_of(pipeline.settings)
        return Outcome(variant.name, figures, time.monotonic() - started,
                       policy if variant.rerank is None else Rescored(policy, variant.rerank),
                       logs, tally.follow_up()[:2])


def simulate(shop: ShopConfig, settings: Settings, log_dir: Path, *,
             only: Sequence[str] | None = None, parallel: int = 3,
             refit_every: float = 6 * 3600.0,
             progress: Callable[[int], Any] | None = None,
             export_to: Path | None = None) -> dict[str, Any]:
    """Every variant (or those named in `only`), then the off-policy estimates; `export_to`:
    also write the logging variant's impressions and events there (JSON lines)."""
    run = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"  # two runs at once
    chosen = [v for v in variants(settings) if v.name in only] if only else \
        [v for v in variants(settings) if v.default]
    with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
        futures = [pool.submit(run_variant, v, shop, settings, run, log_dir, refit_every,
                               v.name == LOGGING, progress) for v in chosen]
        outcomes = {f.result().name: f.result() for f in futures}
    report: dict[str, Any] = {
        "policies": {name: {**o.figures, "seconds": round(o.seconds, 1)}
                     for name, o in outcomes.items()},
        "ope": off_policy(outcomes, [v.name for v in chosen if v.candidate]),
        "ttfc_against_popularity": ttfc_against(
            {name: o.follow_up for name, o in outcomes.items()}, shop),
        "population": asdict(shop),
    }
    logging = outcomes.get(LOGGING)
    if export_to is not None and logging is not None and logging.logs is not None:
        export(logging.logs, export_to)  # for `refold ope --from-file`
    return report


def ttfc_against(follow_ups: dict[str, Any], shop: ShopConfig) -> dict[str, dict[str, Any]]:
    """Per policy, its restricted mean time to first conversion minus popularity's, on the same
    new customers, with a paired 95% bootstrap interval (`refold.simulate.survival`):
    negative = its customers convert sooner (or more of them do)."""
    base = follow_ups.get(BASELINE)
    if base is None:
        return {}
    horizon = Tally.for_shop(shop).horizon or 0.0
    out = {}
    for name, f in follow_ups.items():
        if name == BASELINE or f is None:
            continue
        d, low, high = paired_difference(f, base, horizon)
        out[name] = {"restricted_mean_difference_seconds": round(d, 1),
                     "interval": [round(low, 1), round(high, 1)]}
    return out


def off_policy(outcomes: dict[str, Outcome], candidates: Sequence[str],
               positions: int = 3) -> list[dict[str, Any]]:
    """IPS, SNIPS and DR estimates of each candidate's CTR@3 from the logging run, with the
    CTR@3 its own run measured as `truth` (a candidate outside the logging policy's support
    gets a row with the refusal instead)."""
    logging = outcomes.get(LOGGING)
    if logging is None or logging.logs is None:
        return []
    lists = join(logging.logs)
    truth = {name: o.figures["ctr_at_3"] for name, o in outcomes.items()}
    out = [{**asdict(row), "truth": truth[LOGGING]} for row in estimate(lists, [], positions)]
    for name in candidates:
        o = outcomes.get(name)
        if o is None or o.policy is None:
            continue
        try:
            rows = estimate(lists, [(name, o.policy)], positions)[1:]
        except OPEError as exc:
            out.append({"policy": name, "error": str(exc), "truth": truth[name]})
            continue
        out += [{**asdict(row), "truth": truth[name]} for row in rows]
    return out
