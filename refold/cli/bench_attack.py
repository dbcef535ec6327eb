"""`refold bench attack`: N bot accounts hammer one item; the guard off and on, side by side."""

from __future__ import annotations

import os
import sys

import click

from refold.cli.bench import bench, emit


@bench.command("attack")
@click.option("--bots", type=int, default=50, show_default=True)
@click.option("--events-per-bot", type=int, default=200, show_default=True)
@click.option("--events", type=int, default=60_000, show_default=True,
              help="Honest events of the synthetic shop.")
@click.option("--seed", type=int, default=3, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="reports/attack.png",
              show_default=True, help="The side-by-side figure (PNG).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_attack(bots: int, events_per_bot: int, events: int, seed: int, out: str,
                 as_json: bool) -> None:
    """Bots buying one item every ~10 s: its place in trending, in honest users' lists, and
    honest users' recall, on the honest and the attacked log, each with the guard off and on."""
    from refold.bench import attack

    scenario = attack.Scenario(bots=bots, events_per_bot=events_per_bot, events=events,
                               seed=seed)
    with click.progressbar(length=4, label="replays", file=sys.stderr) as bar:
        result = attack.run(scenario, progress=lambda: bar.update(1))
    result["loadavg"] = os.getloadavg()
    path = attack.plot(result, out)
    slim = {k: v for k, v in result.items() if k != "runs"}
    slim["runs"] = {name: {k: v for k, v in r.items()
                           if k not in ("times", "partitions_with_target", "lists_with_target")}
                    for name, r in result["runs"].items()}
    emit(slim, as_json, attack.table(result) + f"\nfigure: {path}")
