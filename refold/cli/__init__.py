"""The `refold` command line: `refold --help` lists the commands, `refold CMD --help` each one."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from refold import __version__
from refold.core.config import Settings, load_settings
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
    """Settings for a command: defaults < file < REFOLD_* env < global flags < its own flags.

    A bad value is a `ConfigError`: one line naming the setting, exit status 2."""
    root = ctx.find_root().obj or {}
    merged = {**root.get("overrides", {}), **{k: v for k, v in overrides.items() if v is not None}}
    return load_settings(root.get("config"), merged)


def typed_pairs(values: tuple[str, ...], flag: str | None = None) -> dict[str, Any]:
    """KEY=VALUE flags; values are read as JSON when they parse (numbers, true, null), else
    kept as strings without surrounding blanks; a pair without `=` is refused, named by `flag`.

    >>> typed_pairs(("k=10", "decay=exp ", "session_weight=0.5"))
    {'k': 10, 'decay': 'exp', 'session_weight': 0.5}
    """
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=flag)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw.strip()
    return out


def fold_in_changes(values: tuple[str, ...], settings: Settings | None = None
                    ) -> dict[str, Any]:
    """`--fold-in` KEY=VALUE pairs (`typed_pairs`), checked as fold-in settings over `settings`
    (the defaults when None) before a command does any work: an unknown setting or a bad value
    is a usage error that names the flag, not a failure after a fit or inside a run."""
    from consumers.model_source import foldin_config

    changes = typed_pairs(values, "--fold-in")
    try:
        foldin_config(settings or Settings(), **changes)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--fold-in") from exc
    return changes


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))


def setting_help(name: str, text: str) -> str:
    """Help for a flag that sets a setting: the text, the setting's real default and variable.

    >>> setting_help("k", "Items per list.")
    'Items per list. [20] (env REFOLD_K)'
    """
    from refold.core.config import describe

    default = next(row[3] for row in describe() if row[0] == name)
    shown = {"metrics_port": "the role's port", "instance_id": "the host name"}.get(
        name, default.strip("'"))
    return f"{text} [{shown}] (env REFOLD_{name.upper()})"


def mapping_options(command: Any) -> Any:
    """`--field`, `--type`, `--skip-type`, `--time-unit`: a CSV file's mapping, as the bridge's
    (`refold.core.mapping`); the command gets `mapping` (None when none is given)."""
    options = [
        click.option("--field", "fields", multiple=True, metavar="REFOLD=COLUMN",
                     help="csv: the column of an event field, e.g. user_id=uid (repeatable)."),
        click.option("--type", "types", multiple=True, metavar="SOURCE=REFOLD",
                     help="csv: an event type name of the file and refold's, e.g. pv=view."),
        click.option("--skip-type", "skip_types", multiple=True, metavar="SOURCE",
                     help="csv: rows of this type are dropped (repeatable)."),
        click.option("--time-unit", type=click.Choice(["s", "ms", "us", "iso", "auto"]),
                     help="csv: how the time column is written (with a mapping) [auto]."),
    ]

    def build(fields: tuple[str, ...], types: tuple[str, ...], skip_types: tuple[str, ...],
              time_unit: str | None):
        if not (fields or types or skip_types or time_unit):
            return None
        from refold.core.mapping import EventMapping

        try:
            return EventMapping.from_specs(fields, types, time_unit or "auto", skip_types)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc

    import functools

    @functools.wraps(command)
    def wrapper(*args: Any, fields=(), types=(), skip_types=(), time_unit=None, **kwargs: Any):
        return command(*args, mapping=build(fields, types, skip_types, time_unit), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


GLOBAL_FLAGS = {"config": "--config", "bootstrap_servers": "--bootstrap-servers",
                "topic_prefix": "--topic-prefix", "log_level": "--log-level"}


def _late_global_flag(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global flag given after the subcommand (`refold consume --bootstrap-servers B`)."""
    if value is None:
        return
    root = ctx.find_root()
    root.obj = root.obj or {"config": None, "overrides": {}}
    if param.name == "config":
        root.obj["config"] = value
    else:
        root.obj["overrides"][param.name] = value
        if param.name == "log_level":
            setup_logging(value)


def accept_global_flags(group: click.Group) -> None:
    """Let every command of `group` (and of its subgroups) take the global flags too."""
    template = {p.name: p for p in cli.params if p.name in GLOBAL_FLAGS}
    for command in group.commands.values():
        if isinstance(command, click.Group):
            accept_global_flags(command)
        taken = {o for p in command.params for o in getattr(p, "opts", [])}
        for name, flag in GLOBAL_FLAGS.items():
            if flag not in taken:
                command.params.append(click.Option(
                    [flag, name], expose_value=False, is_eager=True,
                    callback=_late_global_flag, help=f"{template[name].help} (global flag)"))


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

    accept_global_flags(cli)
    cli(prog_name="refold")
