"""The simulated shop's report as Markdown: the policies' table, then the off-policy estimates."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.1f} h"


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def markdown(report: dict[str, Any]) -> str:
    """Three tables: per policy, time to first conversion against popularity, and per
    off-policy estimate."""
    pols = report["policies"]
    shown = report["population"]["shown"]
    lines = [f"| policy | CTR@1 | CTR@3 | CTR@{shown} | conversion | TTFC median (new users "
             "who bought) | TTFC restricted mean, all new users (converted by the horizon) | "
             "coverage | purchases from lists | explored slots (CTR) | CTR@3 on /metrics | "
             "run |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in pols.items():
        explored = (f"{_pct(p['explored_share'])} ({_pct(p['ctr_explored'])})"
                    if p.get("explored_share") else "—")
        lines.append(
            f"| {name} | {_pct(p['ctr_at_1'])} | {_pct(p['ctr_at_3'])} | "
            f"{_pct(p[f'ctr_at_{shown}'])} | {_pct(p['conversion_rate'])} | "
            f"{_minutes(p['ttfc_seconds_median'])} ({_pct(p['new_users_converted'])}) | "
            f"{_hours(p.get('ttfc_restricted_mean_seconds'))} "
            f"({_pct(p.get('ttfc_converted_by_horizon'))}) | "
            f"{_pct(p['coverage'])} | "
            f"{_pct(p['purchases_from_lists'])} | {explored} | "
            f"{_pct((p.get('metrics') or {}).get('ctr_at_3'))} | {p['seconds']:.0f} s |")
    against = report.get("ttfc_against_popularity") or {}
    if against:
        horizon = next(iter(pols.values())).get("ttfc_horizon_seconds")
        lines += ["", f"| policy | TTFC restricted mean ({_hours(horizon)}) minus popularity's "
                  "| 95% interval (paired bootstrap) |", "|---|---|---|"]
        for name, d in against.items():
            low, high = d["interval"]
            lines.append(f"| {name} | {_minutes(d['restricted_mean_difference_seconds'])} | "
                         f"[{_minutes(low)}, {_minutes(high)}] |")
    rows = report.get("ope") or []
    if rows:
        lines += ["", "| policy | estimator | CTR@3 estimate | 95% interval | ESS | truth "
                  "| error |", "|---|---|---|---|---|---|---|"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['policy']} | refused: {r['error']} | | | | "
                             f"{_pct(r['truth'])} | |")
                continue
            err = (r["estimate"] - r["truth"]) / r["truth"] if r["truth"] else float("nan")
            lines.append(
                f"| {r['policy']} | {r['estimator']} | {_pct(r['estimate'])} | "
                f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}] | {r['ess']:,.0f} | "
                f"{_pct(r['truth'])} | {100 * err:+.1f}% |")
    return "\n".join(lines)
