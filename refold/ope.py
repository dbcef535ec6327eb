"""`refold ope`: estimate candidate policies' CTR@n (or conversion) from logged impressions.

The logs are the impressions services reported (each with its list's policy, candidate scores
and per-item propensities, as `EventProducer.impression` copies them) and the users' events,
read from the impressions and events topics up to their current ends, or from a JSON-lines file
(`export` writes one: one impression or event per line). `models.ope_log` joins them through the
attribution rules the worker uses; `models.ope` estimates each candidate with IPS, SNIPS and DR.

A candidate is written `NAME[:KEY=VALUE,...]`, e.g. `none`, `epsilon:epsilon=0.05` or
`plackett_luce:temperature=0.2,candidates=40`: another exploration of the logged ranking. With
`score=` and/or `popularity=` it also ranks the logged candidates differently
(`models.rescore`): `none:score=0,popularity=1` shows the most popular of refold's candidates,
`plackett_luce:temperature=0.1,popularity=0.5` blends popularity into refold's scores.

>>> parse_candidate("plackett_luce:temperature=0.2,candidates=40")
Policy(name='plackett_luce', epsilon=0.1, temperature=0.2, candidates=40)
>>> parse_candidate("none:score=0,popularity=1")
Rescored(policy=Policy(name='none', epsilon=0.1, temperature=0.1, candidates=0), \
rescore=Rescore(score=0.0, popularity=1.0))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgspec

from models.exploration import Policy, PolicyError
from models.ope import Estimate, LoggedList, evaluate, on_policy
from models.ope_log import logged_lists
from models.rescore import Rescore, Rescored
from refold.core.config import Settings
from refold.core.errors import AppError
from refold.core.schemas import (
    Event,
    Impression,
    SchemaError,
    decode_event,
    decode_impression,
    encode,
)


class OPEInputError(AppError, ValueError):
    """The logs cannot be read."""


@dataclass(frozen=True)
class Logs:
    impressions: list[Impression]
    events: list[Event]


def parse_candidate(spec: str) -> Policy | Rescored:
    """`NAME[:KEY=VALUE,...]` as a `Policy`, or a `Rescored` one when it re-scores."""
    name, _, params = spec.partition(":")
    kwargs: dict[str, Any] = {}
    weights: dict[str, float] = {}
    for part in filter(None, params.split(",")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in ("epsilon", "temperature", "candidates", "score",
                                 "popularity"):
            raise PolicyError(f"candidate {spec!r}: expected NAME[:epsilon=..,temperature=.., "
                              "candidates=..,score=..,popularity=..]")
        try:
            number = int(value) if key == "candidates" else float(value)
        except ValueError:
            raise PolicyError(f"candidate {spec!r}: {key} must be a number") from None
        (weights if key in ("score", "popularity") else kwargs)[key] = number
    policy = Policy(name.strip(), **kwargs)
    return Rescored(policy, Rescore(**weights)) if weights else policy


def read_file(path: str | Path) -> Logs:
    """Impressions and events of a JSON-lines file (blank lines skipped); a bad line is an
    error naming its number."""
    impressions, events = [], []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                kind = msgspec.json.decode(line, type=dict)
                if "impression_id" in kind:
                    impressions.append(decode_impression(line))
                else:
                    events.append(decode_event(line))
            except (SchemaError, msgspec.DecodeError) as exc:
                raise OPEInputError(f"{path}:{n}: {exc}") from None
    return Logs(impressions, events)


def read_topics(settings: Settings, timeout: float = 60.0) -> Logs:
    """Every impression and outcome event up to the topics' current ends (bad messages, which
    the workers dead-letter, are skipped here)."""
    from consumers.tail import TopicTail

    out: dict[str, list[Any]] = {"impressions": [], "events": []}
    for name, decode in (("impressions", decode_impression), ("events", decode_event)):
        tail = TopicTail(settings, settings.topic(name))

        def keep(messages: list[Any], into: list[Any] = out[name], decode: Any = decode) -> None:
            for msg in messages:
                try:
                    into.append(decode(msg.value()))
                except SchemaError:
                    continue

        try:
            if not tail.catch_up(keep, timeout):
                raise OPEInputError(f"{settings.topic(name)} not read to its end in {timeout} s")
        finally:
            tail.close()
    return Logs(out["impressions"], out["events"])


def export(logs: Logs, path: str | Path) -> int:
    """Write `logs` as JSON lines (impressions, then events); returns the lines written."""
    with open(path, "wb") as fh:
        for msg in _messages(logs):
            fh.write(encode(msg) + b"\n")
    return len(logs.impressions) + len(logs.events)


def _messages(logs: Logs) -> Iterator[Any]:
    yield from logs.impressions
    yield from logs.events


@dataclass(frozen=True)
class Row:
    """One line of the report (`refold simulate --json` and `refold ope --json` use it)."""

    policy: str
    estimator: str
    estimate: float
    ci_low: float
    ci_high: float
    ess: float
    n: int

    @classmethod
    def of(cls, policy: str, est: Estimate) -> Row:
        return cls(policy, est.estimator, round(est.estimate, 5), round(est.ci_low, 5),
                   round(est.ci_high, 5), round(est.ess, 1), est.n)


def estimate(
    lists: Sequence[LoggedList], candidates: Iterable[tuple[str, Policy | Rescored]],
    positions: int = 3,
    alpha: float = 0.05,
) -> list[Row]:
    """The logging policy's own rate, then each candidate's estimates."""
    import numpy as np

    rewards = np.zeros((len(lists), positions))
    shown = np.zeros((len(lists), positions), dtype=bool)
    for i, log in enumerate(lists):
        n = min(len(log.rewards), positions)
        rewards[i, :n], shown[i, :n] = log.rewards[:n], True
    rows = [Row.of("logged", on_policy(rewards, shown, alpha))]
    for name, cand in candidates:
        policy, rescore = (cand.policy, cand.rescore) if isinstance(cand, Rescored) else \
            (cand, None)
        rows += [Row.of(name, est) for est in evaluate(lists, policy, positions, alpha=alpha,
                                                        rescore=rescore)]
    return rows


def join(logs: Logs, outcome: str = "click", window: float = 3600.0) -> list[LoggedList]:
    return logged_lists(logs.impressions, logs.events, outcome, window)


def table(rows: Sequence[Row], what: str) -> str:
    """The rows as a Markdown table."""
    lines = [f"| policy | estimator | {what} | 95% interval | ESS | lists |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.policy} | {r.estimator} | {r.estimate:.4f} | "
                     f"[{r.ci_low:.4f}, {r.ci_high:.4f}] | {r.ess:,.0f} | {r.n:,} |")
    return "\n".join(lines)


def as_json(rows: Sequence[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)
