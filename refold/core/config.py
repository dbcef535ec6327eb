"""Settings: documented defaults, overridden by a TOML file, then `REFOLD_*` variables, then flags.

Every field of `Settings` can be set in three ways, later ones winning:

1. a TOML config file (`--config PATH` or `REFOLD_CONFIG`), keys named like the fields, either at
   top level or grouped in tables (`[kafka]`, `[model]`, ...) whose names are only for the reader;
2. an environment variable `REFOLD_<FIELD>` in upper case (`REFOLD_BOOTSTRAP_SERVERS`);
3. a command-line flag (`--bootstrap-servers`).

>>> s = load_settings(env={"REFOLD_TOPIC_PREFIX": "shop1.", "REFOLD_EVENTS_PARTITIONS": "3"})
>>> s.topic("events"), s.events_partitions
('shop1.events', 3)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from models import defaults
from refold.core.errors import ConfigError

__all__ = ["ConfigError", "Settings", "describe", "environment", "load_settings",
           "read_config_file"]

ENV_PREFIX = "REFOLD_"


def _default_home() -> str:
    """Where refold keeps the local broker, its jars and caches: outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "refold")


@dataclass(frozen=True)
class Settings:
    """All of refold's configuration, with its defaults (see the README's configuration table)."""

    # -- Kafka connection and topics
    bootstrap_servers: str | None = None
    """An existing cluster. Unset: the local single-node broker (`refold broker start`) is used."""
    topic_prefix: str = "refold."
    events_topic: str = "events"
    recommendations_topic: str = "recommendations"
    snapshots_topic: str = "snapshots"
    items_topic: str = "items"
    dead_letter_topic: str = "dead-letter"
    changelog_topic: str = "state-changelog"
    control_topic: str = "control"
    similar_items_topic: str = "similar-items"
    users_topic: str = "users"
    events_partitions: int = 6
    replication_factor: int = 1
    consumer_group: str = "refold-foldin"
    refit_group: str = "refold-refit"

    # -- the local broker (used only when bootstrap_servers is unset)
    home: str = field(default_factory=_default_home)
    broker_host: str = "127.0.0.1"
    broker_port: int = 9092
    controller_port: int = 9093
    broker_heap: str = "768m"

    # -- recommendations and the model: defaults from `models.defaults`, the one source
    k: int = defaults.K
    factors: int = defaults.FACTORS
    regularization: float = defaults.REGULARIZATION
    alpha: float = defaults.ALPHA
    iterations: int = defaults.ITERATIONS
    half_life_events: float = defaults.HALF_LIFE_EVENTS
    half_life_seconds: float = defaults.HALF_LIFE_SECONDS
    decay: str = defaults.DECAY
    history_size: int = defaults.HISTORY_SIZE
    trending_half_life_seconds: float = defaults.TRENDING_HALF_LIFE_SECONDS
    max_future_seconds: float = 3600.0
    max_message_bytes: int = 65536
    ann_min_items: int = defaults.ANN_MIN_ITEMS
    """Catalog size from which workers rank approximate candidates re-scored exactly (0: never)."""

    # -- the refitter's training backend
    refit_backend: str = "implicit"
    """`implicit` (in the refitter's process) or `spark` (Spark MLlib, the `spark` extra)."""
    refit_device: str = "auto"
    """implicit's device: `auto` (its CUDA fit when a GPU is present), `cpu` or `gpu`."""
    spark_master: str = "local[*]"
    """Spark's master URL for `refit_backend = spark` (local threads, or a cluster's URL)."""

    # -- processes
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    batch_size: int = 500
    instance_id: str = "0"
    log_level: str = "INFO"

    def topic(self, name: str) -> str:
        """The full topic name for a logical name (`events`, `recommendations`, ...)."""
        return self.topic_prefix + getattr(self, f"{name.replace('-', '_')}_topic", name)

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers to connect to: the configured cluster or the local broker."""
        return self.bootstrap_servers or f"{self.broker_host}:{self.broker_port}"

    @property
    def uses_local_broker(self) -> bool:
        return not self.bootstrap_servers

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in fields(Settings)}


def _coerce(name: str, raw: Any, hint: Any) -> Any:
    """Convert a file or environment value to the field's type, naming the field on failure."""
    if isinstance(hint, types.UnionType):  # `str | None`
        if raw is None or (isinstance(raw, str) and raw == ""):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is bool and isinstance(raw, str):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes", "on"}
        if hint is float and isinstance(raw, str) and raw.lower() in {"inf", "infinity"}:
            return float("inf")
        return hint(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r}: cannot read {raw!r} as {hint.__name__}") from exc


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    """Lift keys out of TOML tables: `[kafka] bootstrap_servers = 1` is `bootstrap_servers = 1`."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value))
        else:
            flat[key.replace("-", "_")] = value
    return flat


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into flat `{field: value}`; unknown keys are an error."""
    try:
        with open(path, "rb") as fh:
            data = _flatten(tomllib.load(fh))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    unknown = sorted(set(data) - set(_field_types()))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build `Settings` from defaults < config file < `REFOLD_*` environment < overrides (flags).

    `overrides` entries whose value is None are ignored, so unset flags fall through.
    """
    env = os.environ if env is None else env
    hints = _field_types()
    values: dict[str, Any] = {}
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
    if config_file:
        values.update(read_config_file(config_file))
    for name in hints:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = raw
    for name, value in (overrides or {}).items():
        if value is not None:
            if name not in hints:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = value
    return Settings(**{n: _coerce(n, v, hints[n]) for n, v in values.items()})


def environment(settings: Settings) -> dict[str, str]:
    """The `REFOLD_*` variables under which another process loads `settings`: each setting that
    differs from its default (`load_settings` reads them back).

    >>> environment(Settings(topic_prefix="t1.", events_partitions=3))
    {'REFOLD_TOPIC_PREFIX': 't1.', 'REFOLD_EVENTS_PARTITIONS': '3'}
    >>> load_settings(env=environment(Settings(k=5))).k
    5
    """
    out = {}
    for f in fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value = getattr(settings, f.name)
        if value != default:
            out[ENV_PREFIX + f.name.upper()] = "" if value is None else str(value)
    return out


def describe() -> list[tuple[str, str, str, str]]:
    """(field, environment variable, type, default) for every setting, for docs and `--help`."""
    out = []
    for f in fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append((f.name, ENV_PREFIX + f.name.upper(), str(f.type), repr(default)))
    return out
