"""`refold demo`: the main job on the local broker, from nothing to a running pipeline."""

from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path

import click

from refold.cli import cli, settings_from


@cli.command("demo")
@click.option("--path", type=click.Path(exists=True, file_okay=False),
              help="An ml-100k directory to replay; without it, the synthetic world.")
@click.option("--workers", type=int, default=2, show_default=True, help="Fold-in workers.")
@click.option("--rate", type=float, default=5000, show_default=True,
              help="Events sent per second (0: as fast as possible).")
@click.option("--limit", type=int, help="Replay at most N events.")
@click.option("--synth-events", type=int, default=100_000, show_default=True,
              help="Events of the synthetic world (when no --path).")
@click.option("--refit-every", type=int, default=10_000, show_default=True,
              help="The refitter publishes a new snapshot every N events.")
@click.option("--exit", "exit_after", is_flag=True,
              help="Stop the processes after the summary instead of waiting for Ctrl-C.")
@click.pass_context
def demo(ctx: click.Context, path: str | None, workers: int, rate: float, limit: int | None,
         synth_events: int, refit_every: int, exit_after: bool) -> None:
    """Run the whole pipeline on the local broker and report what it did.

    Starts Kafka if needed, creates this run's topics (prefix `<topic_prefix>demo-<time>.`),
    starts a refitter and WORKERS fold-in workers as child processes, replays the dataset into
    the events topic, shows a live progress line read from the processes' /metrics, and prints a
    summary: events/s, event-to-recommendation latency, snapshot versions, online hit-rate. The
    metrics endpoints stay up until Ctrl-C (or --exit). SIGTERM and SIGHUP stop it like Ctrl-C:
    the child processes are stopped too, never left behind.
    """
    from models import compiled
    from refold.broker import ensure_bootstrap
    from refold.core.kafka import make_admin
    from refold.core.topics import create_topics
    from refold.demo import Feeder, child_env, spawn, wait_until

    _interrupt_on(signal.SIGTERM, signal.SIGHUP)
    base = settings_from(ctx)
    click.echo(f"kafka: {ensure_bootstrap(base)}")
    run = time.strftime("%Y%m%d-%H%M%S")
    settings = base.replace(topic_prefix=f"{base.topic_prefix}demo-{run}.",
                            consumer_group=f"refold-demo-{run}-foldin",
                            refit_group=f"refold-demo-{run}-refit")
    create_topics(make_admin(settings), settings)
    log, catalog = _dataset(path, synth_events)
    n = min(len(log), limit or len(log))
    click.echo(f"dataset: {log.name}, {n:,} events, {len(catalog):,} catalog items; "
               f"topics {settings.topic_prefix}*")

    log_dir = Path(settings.home) / "demo" / run
    log_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(settings)
    compiled.warm_up()  # compiled (and cached) once here, not by every worker as it joins
    children: list = []  # filled inside the try: a signal between two spawns stops the first
    try:
        children.append(spawn("refitter", ["refit", "--every-events", str(refit_every)], env,
                              log_dir))
        for i in range(workers):
            children.append(spawn(f"worker-{i}", ["consume", "--instance-id", f"demo-{run}-{i}",
                                                  "--follow-snapshots"], env, log_dir))
        refitter, pool = children[0], children[1:]
        if not wait_until(lambda: all(c.scrape() for c in children), timeout=120):
            _fail(children, "the processes did not start")
        feeder = Feeder(settings, _limited(log.iter_events(log.name), n), catalog, rate or None)
        t0 = time.monotonic()
        feeder.start()
        reading = _follow(feeder, pool, refitter, children, n)
        elapsed = time.monotonic() - t0
        _summary(reading, n, elapsed, feeder)
        for c in children:
            click.echo(f"  {c.name:9} pid {c.proc.pid}  metrics http://127.0.0.1:{c.port}/metrics"
                       f"  log {c.log}")
        if not exit_after:
            click.echo("the processes keep running: Ctrl-C stops them")
            while all(c.proc.poll() is None for c in children):
                time.sleep(1)
    except KeyboardInterrupt as stop:
        click.echo(f"\nstopping ({stop.args[0] if stop.args else 'SIGINT'})")
    finally:
        codes = _stop_all(children)
        click.echo("stopped: " + ", ".join(f"{k} exit {v}" for k, v in codes.items()))


def _interrupt_on(*signals: signal.Signals) -> None:
    """Make each of `signals` raise KeyboardInterrupt (carrying its name), as Ctrl-C does, so the
    `finally` that stops the children runs: their default action would end this process alone."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in signals:
        signal.signal(sig, interrupt)


def _stop_all(children) -> dict[str, int | None]:
    """SIGTERM each child and wait for it; a second Ctrl-C (or SIGTERM) while waiting SIGKILLs
    the ones still running. Their exit codes, by name."""
    try:
        return {c.name: c.stop() for c in children}
    except KeyboardInterrupt:
        for c in children:
            if c.proc.poll() is None:
                c.proc.kill()
        return {c.name: c.proc.wait() for c in children}


def _dataset(path: str | None, synth_events: int):
    if path:
        from producers.datasets import load_movielens

        return load_movielens(path)
    from producers.synth import SynthConfig, generate

    log, catalog, _ = generate(SynthConfig(n_events=synth_events))
    return log, catalog


def _limited(events, n: int):
    for i, ev in enumerate(events):
        if i >= n:
            return
        yield ev


def _follow(feeder, pool, refitter, children, n: int):
    """Print a live line each second until every sent event is processed."""
    from refold.demo import Reading

    done_at, tty, last_print = None, sys.stderr.isatty(), 0.0
    while True:
        time.sleep(1.0)
        for c in children:
            if c.proc.poll() is not None:
                _fail(children, f"{c.name} exited with {c.proc.returncode}")
        if feeder.error is not None:
            raise click.ClickException(f"replay failed: {feeder.error}")
        reading = Reading.read(pool, refitter)
        sent = feeder.report.events if feeder.report else min(n, int(reading.consumed))
        if tty:  # one live line; elsewhere (logs, CI) a line every 5 s
            click.echo("\r" + reading.line(sent, n), nl=False, err=True)
        elif time.monotonic() - last_print >= 5:
            click.echo(reading.line(sent, n), err=True)
            last_print = time.monotonic()
        if feeder.report is not None:
            done_at = done_at or time.monotonic()
            caught_up = reading.consumed + reading.dead >= feeder.report.events
            # the refitter finishes the refit the last events made due, and its snapshot reaches
            # the workers; both are given a few seconds
            refitted = reading.refitter_read >= feeder.report.events
            settled = (refitted and reading.serving_latest()) or time.monotonic() - done_at > 15
            if caught_up and settled:
                click.echo("" if tty else reading.line(sent, n), err=True)
                return reading
            if time.monotonic() - done_at > 300:
                _fail(children, "the workers did not catch up within 300 s")


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def _summary(r, n: int, elapsed: float, feeder) -> None:
    ms = _ms
    versions = sorted(set(r.versions))
    click.echo(
        f"\nprocessed {r.consumed + r.dead:,.0f} events ({r.dead:,.0f} dead letters) in "
        f"{elapsed:.1f} s: {(r.consumed + r.dead) / elapsed:,.0f} events/s "
        f"(sent at {feeder.report.events_per_s:,.0f}/s)\n"
        f"recommendation lists published: {r.recs:,.0f}\n"
        f"event -> recommendation latency: p50 {ms(r.p50)}, p99 {ms(r.p99)}\n"
        f"snapshots published by the refitter: {r.published:,.0f}; "
        f"workers serve model version(s) {versions or 'none (popularity)'}\n"
        f"online hit-rate@K (was the item in the user's last list?): {r.hit_rate:.3f}")


def _fail(children, why: str) -> None:
    for c in children:
        tail = c.log.read_text(errors="replace").splitlines()[-15:] if c.log.exists() else []
        click.echo(f"--- {c.name} ({c.log})\n" + "\n".join(tail), err=True)
    click.echo(f"demo failed: {why}", err=True)
    sys.exit(1)
