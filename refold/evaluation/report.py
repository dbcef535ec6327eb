"""The evaluation's Markdown report and PNG plots, written from `runner.evaluate`'s result."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from refold.evaluation.contenders import BASELINES

COLUMNS = (
    ("recall_at_10", "recall@10", "{:.4f}"), ("ndcg_at_10", "NDCG@10", "{:.4f}"),
    ("hit_rate_at_10", "HR@10 (per user)", "{:.4f}"), ("cold_recall_at_10", "cold recall@10",
                                                       "{:.4f}"),
    ("coverage", "coverage", "{:.3f}"), ("diversity", "diversity", "{:.2f}"),
    ("novelty", "novelty (bits)", "{:.2f}"), ("seconds", "compute (CPU s)", "{:.1f}"),
    ("wall_seconds", "wall s", "{:.1f}"),
)
PROTOCOL_TEXT = """\
Test-then-train on the log in event-time order (ties kept in file order). The first {warmup:.0%}
of events ({warmup_events:,}) is the warm-up: every model is fitted on it and any
hyper-parameter search sees nothing else. Then for each event, in order: if it is positive
(weight > 0; here {positives}) and its item is not already consumed or dismissed by the user,
the model's top-{k} for the user at the event's time is scored against the event's item,
*before* the model learns the event; then the model learns it. refold, foldin_only, oracle and
refold_mixer are the worker's own `OnlineRecommender` (refold_mixer ranks with the learned
mixer, fitted at each refit on the candidates the served models gave the newest scored events,
1:3 negatives); refits train `models.als` on all events so far (refold: every {refit_every:,}
events, warm-started; oracle: every {oracle_every:,} events, from scratch) and are swapped in at
once. Recall@K is the per-event hit (one relevant item per event), NDCG@K 1/log2(rank+2), HR@K
the per-event hit averaged per user, cold recall is recall over events of users with 1-4 prior
events, coverage the share of the catalog shown at least once, diversity the mean number of
distinct categories per list, novelty the mean -log2 of the share of users who had interacted
with a shown item. Compute is the CPU time (every thread of the process) inside each model's
fit, recommend and learn calls, refits included, one model at a time on one process; wall-clock
seconds are shown next to it."""


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return spec.format(value)


def table(models: dict[str, dict[str, Any]]) -> str:
    """The results table (Markdown)."""
    head = "| model | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for name, m in models.items():
        cells = [fmt(m.get(key), spec) for key, _, spec in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons(models: dict[str, dict[str, Any]]) -> list[str]:
    """refold against the best baseline and against the oracle, where both were run."""
    out = []
    ref = models.get("refold")
    base = {n: m for n, m in models.items() if n in BASELINES}
    if ref and base:
        for key, label in (("recall_at_10", "recall@10"), ("ndcg_at_10", "NDCG@10"),
                           ("cold_recall_at_10", "cold recall@10")):
            best = max(base, key=lambda n: _num(base[n].get(key)))
            ratio = _num(ref[key]) / _num(base[best][key]) if _num(base[best][key]) else math.nan
            out.append(f"- {label}: refold {ref[key]:.4f}, best baseline {best} "
                       f"{base[best][key]:.4f} (× {ratio:.2f})")
    orc = models.get("oracle")
    if ref and orc:
        gap = 1 - ref["recall_at_10"] / orc["recall_at_10"] if orc["recall_at_10"] else math.nan
        wall = (f" ({_ratio(orc['wall_seconds'], ref['wall_seconds'], 2)} in wall-clock time)"
                if ref.get("wall_seconds") else "")
        out.append(f"- oracle: recall@10 {orc['recall_at_10']:.4f}; refold is {gap:.1%} below "
                   f"it with {_ratio(orc['seconds'], ref['seconds'], 2)} less compute in total"
                   f"{wall} and {_ratio(orc['refit_seconds'], ref['refit_seconds'])} less refit "
                   f"compute ({ref['refit_seconds']:.1f} vs {orc['refit_seconds']:.1f} CPU s)")
    mix = models.get("refold_mixer")
    if ref and mix:
        out.append("- learned mixer against the hand-set blend: " + ", ".join(
            f"{label} {mix[key]:.4f} vs {ref[key]:.4f} ({_change(mix[key], ref[key])})"
            for key, label in (("recall_at_10", "recall@10"), ("ndcg_at_10", "NDCG@10"),
                               ("cold_recall_at_10", "cold recall@10"))))
    return out


def _change(a: float, b: float) -> str:
    return f"{a / b - 1:+.1%}" if b else "–"


def _num(x: Any) -> float:
    return -math.inf if x is None or x != x else float(x)


def _ratio(a: float, b: float, digits: int = 1) -> str:
    return f"{a / b:.{digits}f}×" if b else "–"


def cold_table(models: dict[str, dict[str, Any]]) -> str:
    """Recall by the user's number of prior events, one column per model."""
    names = list(models)
    first = models[names[0]]["cold_curve"]
    lines = ["| prior events | events | " + " | ".join(names) + " |",
             "|---" * (len(names) + 2) + "|"]
    for b, row in enumerate(first):
        cells = [fmt(models[n]["cold_curve"][b]["recall"], "{:.3f}") for n in names]
        lines.append(f"| {row['prior']} | {row['events']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plots(result: dict[str, Any], out: Path) -> list[str]:
    """Write the PNGs into `out`; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result["models"]
    window = result["protocol"]["window"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, m in models.items():
        w = m["windowed"]
        ax.plot(w["position"], w["recall"], label=name,
                lw=2.2 if name.startswith("refold") else 1.2)
    ax.set(xlabel="event", ylabel=f"recall@10 over the last {window:,} scored events",
           title="Windowed prequential recall")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "windowed_recall.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(models)
    ax.bar(names, [models[n]["coverage"] for n in names], color="tab:blue")
    ax.set(ylabel="share of the catalog shown", title="Catalog coverage")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "coverage.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, m in models.items():
        curve = [c for c in m["cold_curve"] if c["events"]]
        ax.plot([c["prior"] for c in curve], [c["recall"] for c in curve], marker="o",
                label=name, lw=2.2 if name.startswith("refold") else 1.2)
    ax.set(xlabel="the user's prior events", ylabel="recall@10", title="Cold start")
    ax.legend(fontsize=8, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "cold_start.png", dpi=110)
    plt.close(fig)
    return ["windowed_recall.png", "coverage.png", "cold_start.png"]


def write(result: dict[str, Any], out: str | Path, search: dict[str, Any] | None = None) -> Path:
    """Write `report.md`, `result.json` and the plots into `out`; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p, models = result["protocol"], result["models"]
    pngs = plots(result, out)
    positives = ("every rating" if p["ratings_as_positive"]
                 else "weights from the event types and rating values")
    parts = [
        f"# Prequential evaluation on {p['dataset']}",
        f"{p['events']:,} events, {p['users']:,} users, {p['items']:,} items; seed {p['seed']}.",
        "## Protocol", PROTOCOL_TEXT.format(positives=positives, **p),
        "## Results", table(models), "\n".join(comparisons(models)),
        f"\nScored events per model: {next(iter(models.values()))['events']:,}; excluded items "
        f"recommended: {sum(m['violations'] for m in models.values())}.",
        "## Windowed recall", f"![windowed recall]({pngs[0]})",
        "## Coverage", f"![coverage]({pngs[1]})",
        "## Cold start", f"![cold start]({pngs[2]})", cold_table(models),
        "## Hyper-parameters",
        ("Chosen by the warm-up search below" if search else "The defaults, which came from "
         "the warm-up search (`--search`) on ml-100k") + "; ALS fits include the warm-up one.",
        "\n".join(f"- {n}: `{json.dumps(m['params'], sort_keys=True)}`" + (
            f", {m['refits']} ALS fits ({m['refit_seconds']:.1f} CPU s)" if m.get("refits") else "")
                  for n, m in models.items()),
    ]
    if search:
        parts += ["## Warm-up search", search_section(search)]
    (out / "report.md").write_text("\n\n".join(parts) + "\n")
    slim = {"models": {n: {k: v for k, v in m.items() if k not in ("windowed",)}
                       for n, m in models.items()}, "protocol": p, "search": search}
    (out / "result.json").write_text(json.dumps(slim, indent=2, default=str) + "\n")
    return out / "report.md"


def search_section(search: dict[str, Any]) -> str:
    """One line per model: the chosen parameters, then every trial with its validation recall."""
    lines = [f"Fitted on warm-up events [0, {search['fit_events']:,}), validated test-then-train "
             f"on [{search['fit_events']:,}, {search['warmup_events']:,}); coordinate search per "
             "model from its defaults (up to two passes), keeping a change only if it raises "
             "validation recall@10."]
    for name, s in search["models"].items():
        lines.append(f"\n**{name}**: chosen `{json.dumps(s['best'], sort_keys=True)}` "
                     f"(validation recall@10 {s['recall']:.4f}, {s['seconds']:.0f} s)\n")
        lines += [f"- `{json.dumps(t['params'], sort_keys=True)}`: {t['recall']:.4f}"
                  for t in s["trials"]]
    return "\n".join(lines)
