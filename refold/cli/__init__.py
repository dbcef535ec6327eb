"""The `refold` command line: `refold --help` lists the commands, `refold CMD --help` each one."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from refold import __version__
from refold.config import ConfigError, Settings, load_settings


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
