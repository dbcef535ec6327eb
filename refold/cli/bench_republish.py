"""`refold bench republish`: what publishing lists again for the catalog costs, side by side."""

from __future__ import annotations

import sys

import click

from refold.cli.bench import bench, emit


@bench.command("republish")
@click.option("--users", type=int, default=20_000, show_default=True)
@click.option("--events", type=int, default=100_000, show_default=True)
@click.option("--k", type=int, default=20, show_default=True, help="List length.")
@click.option("--inactive", type=int, default=10_000, show_default=True,
              help="Inactive items a restored partition looks up.")
@click.option("--rank-users", type=int, default=5_000, show_default=True,
              help="Users whose lists are ranked (event path, then published again).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def bench_republish(users: int, events: int, k: int, inactive: int, rank_users: int,
                    as_json: bool) -> None:
    """Events/s of the local state with and without each user's last list kept (and indexed),
    a restored partition's look-up of the inactive items, and lists/s published again for the
    catalog next to lists/s on the event path."""
    from refold.bench import republish

    with click.progressbar(length=1, label="republish",
                           file=sys.stderr) as bar:
        result = republish.run(users=users, events=events, k=k, inactive=inactive,
                               rank_users=rank_users)
        bar.update(1)
    emit(result, as_json, republish.table(result))
