"""The drift scenario: does ADWIN on the online hit stream see a taste shift, and only then?

A synthetic world (`producers.synth`) has its users' tastes shift at a known event index. Item
factors are fitted on a prefix that ends well before the shift; the rest of the log is replayed in
micro-batches through `OnlineRecommender` (the worker's code), each positive event judged against
its user's list from an earlier batch (`OnlineQuality`), and the hits feed `HitRateDrift`. The
same world without the shift (same seed: identical up to the shift) is the control.

Reported per seed: the hit rate before and just after the shift, the delay from the shift to the
first detected drop (in events of the log), and false alarms (drops detected before the shift in
the drifted run, and any detection at all in the control).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from models.als import csr_from, fit_als
from models.catalog import ItemIndex
from models.drift import HitRateDrift
from models.online_quality import OnlineQuality
from models.recommender import FoldInConfig, OnlineRecommender
from models.weights import EventWeights
from producers.synth import SynthConfig, generate


@dataclass(frozen=True)
class Scenario:
    """The world and the replay. The shift is strong on purpose: every user's taste is redrawn,
    and choices follow taste more than in the world's defaults. The world's default shift (30 %
    of users redrawn, a pull toward one category) costs the hit rate only 0.02 to 0.05: fold-in
    follows each user's recent events, and ADWIN mostly does not call it (4 seeds: one detection
    after 2,500 events, no false alarm)."""

    n_users: int = 1000
    n_items: int = 500
    events: int = 24_000
    fit_events: int = 8_000  # the model is fitted on events [0, fit_events)
    drift_at: int = 16_000
    drift_share: float = 1.0
    drift_trend: float = 0.0
    taste: float = 4.0
    batch: int = 200
    k: int = 20
    factors: int = 32
    adwin_delta: float = 0.002
    after_window: int = 4000  # "just after the shift": events [drift_at, drift_at + this)


@dataclass
class Run:
    """One replay: positions are event indices of the log."""

    seed: int
    drifted: bool
    judged: int
    hit_rate_before: float
    hit_rate_after: float
    detections: list[tuple[int, int]] = field(default_factory=list)  # (position, direction)


def hit_stream(scenario: Scenario, seed: int, drifted: bool) -> tuple[np.ndarray, np.ndarray]:
    """(positions, hits) of the judged events after the fitted prefix."""
    s = scenario
    world = SynthConfig(n_users=s.n_users, n_items=s.n_items, n_events=s.events, seed=seed,
                        drift_at=s.drift_at if drifted else None, drift_share=s.drift_share,
                        drift_trend=s.drift_trend, taste=s.taste)
    log, catalog, _ = generate(world)
    weights = EventWeights()
    prefix = log[: s.fit_events]
    users, u = np.unique(prefix.user_ids, return_inverse=True)
    items, i = np.unique(prefix.item_ids, return_inverse=True)
    w = [weights.weight(t, None if math.isnan(v) else v)
         for t, v in zip(prefix.event_types.tolist(), prefix.values.tolist(), strict=True)]
    factors = fit_als(csr_from(u, i, np.asarray(w), (len(users), len(items))), s.factors, 0.05,
                      2.0, 10, seed, item_ids=items.tolist(), version=1)
    index = ItemIndex()
    for item in catalog:
        index.set_item(item.item_id, item.active, item.categories)
    rec = OnlineRecommender(FoldInConfig(k=s.k), factors, index)
    for ev in prefix.iter_events("synth"):  # the users' histories up to the replay
        rec.learn_event(ev)
    quality = OnlineQuality(k=s.k)
    positions: list[int] = []
    hits: list[bool] = []
    batch: list = []
    events = log[s.fit_events :].iter_events("synth")
    for pos, ev in enumerate(events, start=s.fit_events):
        if weights.weight(ev.event_type, ev.value, ev.weight) > 0:
            rank = quality.judge(ev.user_id, ev.item_id)
            if rank is not None:
                positions.append(pos)
                hits.append(rank >= 0)
        batch.append(ev)
        if len(batch) == s.batch:
            for _, r in rec.process_batch(batch):
                quality.record(r.user_id, r.items, r.source)
            batch = []
    return np.asarray(positions, dtype=np.int64), np.asarray(hits, dtype=bool)


def run(scenario: Scenario, seed: int, drifted: bool) -> Run:
    """Replay one world and run ADWIN over its hit stream."""
    pos, hits = hit_stream(scenario, seed, drifted)
    detector = HitRateDrift(delta=scenario.adwin_delta)
    found = [(int(p), detector.direction) for p, h in zip(pos, hits, strict=True)
             if detector.update(h)]
    d = scenario.drift_at
    after = (pos >= d) & (pos < d + scenario.after_window)
    return Run(seed, drifted, len(hits), float(hits[pos < d].mean()), float(hits[after].mean()),
               found)


@dataclass
class SeedResult:
    seed: int
    hit_rate_before: float
    hit_rate_after: float
    delay_events: int | None  # first drop at or after the shift, minus the shift; None: missed
    false_alarms: int  # drops before the shift in the drifted run
    control_detections: int  # any detection in the run without a shift
    control_drops: int


def evaluate(scenario: Scenario, seed: int) -> SeedResult:
    """The drifted run and its control for one seed."""
    drifted, control = run(scenario, seed, True), run(scenario, seed, False)
    d = scenario.drift_at
    drops_after = [p for p, sign in drifted.detections if sign < 0 and p >= d]
    return SeedResult(
        seed, drifted.hit_rate_before, drifted.hit_rate_after,
        drops_after[0] - d if drops_after else None,
        sum(1 for p, sign in drifted.detections if sign < 0 and p < d),
        len(control.detections), sum(1 for _, sign in control.detections if sign < 0),
    )


def table(results: list[SeedResult], scenario: Scenario) -> str:
    """A text table, one row per seed."""
    lines = [
        f"shift at event {scenario.drift_at:,} of {scenario.events:,} (model fitted on the first "
        f"{scenario.fit_events:,}); ADWIN delta {scenario.adwin_delta}; hit rate @{scenario.k}",
        f"{'seed':>4}  {'hit before':>10}  {'hit after':>9}  {'delay (events)':>14}  "
        f"{'false alarms':>12}  {'control det.':>12}",
    ]
    for r in results:
        delay = "missed" if r.delay_events is None else f"{r.delay_events:,}"
        lines.append(f"{r.seed:>4}  {r.hit_rate_before:>10.3f}  {r.hit_rate_after:>9.3f}  "
                     f"{delay:>14}  {r.false_alarms:>12}  {r.control_detections:>12}")
    return "\n".join(lines)


def as_dict(results: list[SeedResult], scenario: Scenario) -> dict:
    return {"scenario": asdict(scenario), "seeds": [asdict(r) for r in results]}
