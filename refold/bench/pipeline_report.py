"""`refold bench pipeline`'s figures from its runs (`refold.bench.pipeline`): the best throughput
run and the calmest latency run (lowest p99) of each consumer, with what stopped that consumer
during it, the checks that make the figures trustworthy, and the table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from refold.bench.pipeline import Workload
    from refold.core.config import Settings

LATENCY_KEYS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms")
STALL_KEYS = ("gc_gen2_collections", "gc_gen2_longest_ms", "gc_pause_ms", "longest_handle_ms",
              "longest_commit_ms")
"""What stopped a consumer during its latency run (`stalls`)."""
SPLIT_KEYS = ("handle", "commit", "promote", "other", "cpu")
"""Where a throughput run's time went (`split`)."""


@dataclass(frozen=True)
class Shown:
    """One consumer as the report shows it: its kind, the prefix of its latency and stall keys
    (none for refold: `latency_p99_ms` is refold's), the prefix of its other figures, and its
    names in the table's throughput, split and latency rows."""

    kind: str
    prefix: str
    figures: str
    name: str
    short: str
    latency: str


SHOWN = (
    Shown("refold", "", "refold_", "refold (fold-in, top-K, publish, changelog; local stores)",
          "refold", "refold (event -> its recommendation)"),
    Shown("refold-memory", "memory_", "memory_",
          "refold with every user in memory (state_store=memory)",
          "refold, every user in memory", "refold, every user in memory"),
    Shown("passthrough", "passthrough_", "passthrough_", "pass-through (decode, re-produce)",
          "pass-through", "pass-through (event -> its copy)"),
)


def result(settings: Settings, workload: Workload, runs: dict[str, list[dict]],
            live: dict[str, list[dict]], rate: float, repeat: int) -> dict:
    best = {k: max(rs, key=lambda r: r["events_per_s"]) for k, rs in runs.items()}
    calm = {k: min(rs, key=lambda r: r["latency_p99_ms"]) for k, rs in live.items()}
    out = {
        "dataset": workload.name, "events": len(workload.events),
        "partitions": settings.events_partitions, "batch_size": settings.batch_size,
        "factors": settings.factors, "k": settings.k, "fold_in": workload.fold_in,
        "repeat": repeat,
        "refold_events_per_s": best["refold"]["events_per_s"],
        "passthrough_events_per_s": best["passthrough"]["events_per_s"],
        "refold_over_passthrough": (best["refold"]["events_per_s"]
                                    / best["passthrough"]["events_per_s"]),
        "memory_events_per_s": best["refold-memory"]["events_per_s"],
        "store_over_memory": (best["refold"]["events_per_s"]
                              / best["refold-memory"]["events_per_s"]),
        "rate_events_per_s": rate,
        "latency_events": calm["refold"]["latency_events"],
        "changelog_bytes_per_event": _changelog_per_event(best["refold"]),
        "live_changelog_bytes_per_event": _changelog_per_event(calm["refold"]),
    }
    for c in SHOWN:
        kind, fig = c.kind, c.figures
        out |= {f"{c.prefix}{key}": float(calm[kind][key]) for key in LATENCY_KEYS}
        out |= {f"{c.prefix}{key}": value for key, value in stalls(calm[kind]).items()}
        out |= {
            f"{fig}ms_per_1000_events": split(best[kind]),
            f"{fig}transactions": best[kind]["batches"],
            f"{fig}outputs": best[kind]["outputs"],
            f"{fig}sent_events_per_s": calm[kind]["sent_events_per_s"],
            f"{fig}runs_events_per_s": [r["events_per_s"] for r in runs[kind]],
            f"{fig}runs_latency_p50_p99_ms": [[float(r["latency_p50_ms"]),
                                               float(r["latency_p99_ms"])] for r in live[kind]],
        }
    out["checks"] = _verdict([r for rs in (*runs.values(), *live.values()) for r in rs])
    return out


def stalls(run: dict) -> dict:
    """A consumer run's full collections (count, longest pause), the total of every
    collection's pauses, and its slowest batch's handling and commit, in ms."""
    return {"gc_gen2_collections": run["gc_collections"][2],
            "gc_gen2_longest_ms": run["gc_longest_ms"][2], "gc_pause_ms": sum(run["gc_pause_ms"]),
            "longest_handle_ms": run["longest_handle_ms"],
            "longest_commit_ms": run["longest_commit_ms"]}


def split(run: dict) -> dict[str, float]:
    """Where a throughput run's time went, in ms per 1,000 events: handling its batches,
    committing them, promoting them (the worker's stores and hooks), the rest of the loop
    (fetching, merging, between batches), and the process's CPU time (every thread, the whole
    run: more than the first four when the client's threads work beside the loop).

    >>> split({"messages": 2000, "seconds": 1.0, "handle_seconds": 0.5, "commit_seconds": 0.2,
    ...        "promote_seconds": 0.1, "cpu_seconds": 1.2})
    {'handle': 250.0, 'commit': 100.0, 'promote': 50.0, 'other': 100.0, 'cpu': 600.0}
    """
    per = 1e6 / max(run["messages"], 1)
    parts = {k: run[f"{k}_seconds"] * per for k in ("handle", "commit", "promote")}
    return {**parts, "other": max(0.0, run["seconds"] * per - sum(parts.values())),
            "cpu": run["cpu_seconds"] * per}


def _changelog_per_event(run: dict) -> float:
    """State changelog bytes the worker wrote per event it committed."""
    counts = run["counts"]
    return counts.get("changelog_bytes", 0) / max(counts.get("events", 0), 1)


def _verdict(every: list[dict]) -> dict:
    """What makes the figures trustworthy, over every run: all true on a sound pipeline."""
    return {
        "every_event_covered": all(r["covered"] == r["expected"] for r in every),
        "every_event_committed": all(r["messages"] == r["expected"] for r in every),
        "outputs_read_equal_outputs_committed": all(r["outputs_read"] == r["outputs"]
                                                    for r in every),
        "no_unmatched_outputs": all(r["unmatched_outputs"] == 0 for r in every),
        "no_aborted_transactions": all(r["aborts"] == 0 for r in every),
    }


def table(r: dict) -> str:
    n = r["repeat"]
    lines = [
        f"{r['dataset']}: {r['events']:,} events, {r['partitions']} partitions, batch "
        f"{r['batch_size']}, {r['factors']} factors, top-{r['k']}, exactly-once",
        f"{f'throughput, preloaded, first read to last commit (best of {n})':62}"
        f"{'events/s':>10}{'txns':>8}{'outputs':>10}",
    ]
    for c in SHOWN:
        lines.append(f"{'  ' + c.name:62}{r[f'{c.figures}events_per_s']:10,.0f}"
                     f"{r[f'{c.figures}transactions']:8,}{r[f'{c.figures}outputs']:10,}")
    lines += [
        f"{'  refold / pass-through':62}{r['refold_over_passthrough']:10.2f}",
        f"{'  local stores / all in memory':62}{r['store_over_memory']:10.2f}",
        f"{'  refold state changelog, bytes per event (preloaded; live)':62}"
        f"{r['changelog_bytes_per_event']:10,.0f}{r['live_changelog_bytes_per_event']:8,.0f}",
        f"{'  that run, ms per 1,000 events (other: fetch, merge, rest)':62}"
        + "".join(f"{k:>8}" for k in SPLIT_KEYS),
    ]
    for c in SHOWN:
        lines.append(f"{'    ' + c.short:62}" + "".join(
            f"{r[f'{c.figures}ms_per_1000_events'][k]:8.0f}" for k in SPLIT_KEYS))
    lines += [
        f"{f'latency, send -> read_committed output (lowest p99 of {n})':62}"
        f"{'p50':>7}{'p95':>7}{'p99':>7}{'max':>7} ms",
        f"  {r['latency_events']:,} events at {r['rate_events_per_s']:,.0f}/s "
        f"(sent at {r['refold_sent_events_per_s']:,.0f}/s, "
        f"{r['memory_sent_events_per_s']:,.0f}/s and "
        f"{r['passthrough_sent_events_per_s']:,.0f}/s)",
    ]
    for c in SHOWN:
        lines.append(f"{'  ' + c.latency:62}" + "".join(
            f"{r[f'{c.prefix}latency_{q}_ms']:7.1f}" for q in ("p50", "p95", "p99", "max")))
    lines.append(f"{'  in that run: full GCs (longest), all GC pauses; slowest batch':62}"
                 f"{'GCs':>7}{'ms':>7}{'ms':>7}{'handle':>7}{'commit':>7}")
    for c in SHOWN:
        lines.append(f"{'  ' + c.short:62}{r[f'{c.prefix}gc_gen2_collections']:7d}" + "".join(
            f"{r[c.prefix + key]:7.1f}" for key in STALL_KEYS[1:]))
    failed = [k for k, ok in r["checks"].items() if not ok]
    lines.append("checks: " + (f"FAILED {', '.join(failed)}" if failed else
                               "every event covered by an output; outputs and commits add up"))
    return "\n".join(lines)
