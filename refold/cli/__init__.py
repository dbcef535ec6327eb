"""The `refold` command line: `refold --help` lists the commands, `refold CMD --help` each one."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from refold import __version__
from refold.core.config import ConfigError, Settings, load_settings
from refold.core.errors import AppError, RefoldError, exit_code


class Failed(click.ClickException, AppError):
    """A `RefoldError` that stopped a command, as click shows it: one line on stderr, and the
    error's exit code."""

    def __init__(self, error: RefoldError, command: str | None) -> None:
        super().__init__(str(error))
        self.exit_code = exit_code(error)
        self.command = command

    def show(self, file: Any = None) -> None:
        name = f"refold {self.command}" if self.command else "refold"
        click.echo(f"{name}: {self.format_message()}", err=True)


class RefoldGroup(click.Group):
    """The `refold` group: a `RefoldError` raised by any command becomes `Failed`, so commands
    raise their errors and the exit codes are those of `refold.core.errors.EXIT_CODES`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RefoldError as exc:
            raise Failed(exc, ctx.invoked_subcommand) from exc


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings for a command: defaults < file < REFOLD_* env < global flags < its own flags."""
    root = ctx.find_root().obj or {}
    merged = {**root.get("overrides", {}), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return load_settings(root.get("config"), merged)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(cls=RefoldGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="refold")
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="REFOLD_CONFIG",
              help="TOML config file (env REFOLD_CONFIG).")
@click.option("--bootstrap-servers", help="Existing Kafka cluster; unset: the local broker. "
              "(env REFOLD_BOOTSTRAP_SERVERS)")
@click.option("--topic-prefix", help="Prefix of every topic name [refold.] "
              "(env REFOLD_TOPIC_PREFIX)")
@click.option("--log-level", help="DEBUG, INFO, WARNING ... [INFO] (env REFOLD_LOG_LEVEL)")
@click.pass_context
def cli(ctx: click.Context, config: str | None, bootstrap_servers: str | None,
        topic_prefix: str | None, log_level: str | None) -> None:
    """refold: a streaming, online-learning recommender on Kafka.

    Events in, fresh top-K per user out, within milliseconds of each event.
    Settings come from flags, then REFOLD_* environment variables, then --config FILE,
    then defaults (see `refold config`).
    """
    overrides = {"bootstrap_servers": bootstrap_servers, "topic_prefix": topic_prefix,
                 "log_level": log_level}
    ctx.obj = {"config": config, "overrides": {k: v for k, v in overrides.items() if v}}
    setup_logging(settings_from(ctx).log_level)


def main() -> None:
    from refold.cli import commands  # noqa: F401  (registers the subcommands)

    cli(prog_name="refold")
