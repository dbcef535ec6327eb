"""Settings: typed and validated, from defaults < a TOML file < `REFOLD_*` variables < flags.

Every field of `Settings` has a type, bounds where they matter, a default and a description;
a bad value anywhere is a `ConfigError` whose one line names the setting, where it came from and
what is allowed. Sources, later ones winning:

1. a TOML file (`--config PATH` or `REFOLD_CONFIG`): keys named like the fields, at top level or
   in tables. A table's name is only for the reader (`[kafka] bootstrap_servers = ...`) unless
   it names a field itself (`[kafka.client]` is the field `kafka_client`, `[event_weights]` the
   field `event_weights`) or prefixes its keys (`[bridge] source_topic` is `bridge_source_topic`);
2. environment variables `REFOLD_<FIELD>` (`REFOLD_BOOTSTRAP_SERVERS`); a nested field also as
   `REFOLD_EVENT_WEIGHTS__VIEW`; lists and maps also as `a,b` and `k=v,k=v`; librdkafka
   properties as `REFOLD_KAFKA_<TABLE>_<PROPERTY>` (`REFOLD_KAFKA_CLIENT_SASL_USERNAME` is
   `sasl.username` of `[kafka.client]`), and `..._FILE=/path` to read a secret from a file.
   Unknown `REFOLD_*` variables are warned about;
3. flags (`--bootstrap-servers`), passed as `overrides`.

>>> s = load_settings(env={"REFOLD_TOPIC_PREFIX": "shop1.", "REFOLD_EVENTS_PARTITIONS": "3"})
>>> s.topic("events"), s.events_partitions
('shop1.events', 3)
>>> load_settings(env={"REFOLD_DECAY": "fast"})
Traceback (most recent call last):
...
refold.core.errors.ConfigError: setting decay (REFOLD_DECAY): 'fast' is not one of 'events', \
'time', 'none'
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsError

from models import defaults
from models.foldin_config import FoldInConfig
from refold.core import config_sources as sources
from refold.core.config_bridge import BridgeSettings
from refold.core.config_hybrid import HybridSettings
from refold.core.config_sources import CLIENT_TABLES, ENV_PREFIX, is_secret
from refold.core.config_types import (
    ClientProperties,
    EventType,
    EventWeightSettings,
    GroupId,
    Port,
    SecretRef,
    TopicName,
    check_properties,
    split_list,
    split_map,
)
from refold.core.errors import ConfigError

__all__ = ["CLIENT_TABLES", "ENV_PREFIX", "REDACTED", "ConfigError", "SecretRef", "Settings",
           "describe", "environment", "is_secret", "load_settings", "read_config_file",
           "unknown_variables"]

REDACTED = "***"

log = logging.getLogger(__name__)
_FOLDIN = FoldInConfig()


def _default_home() -> str:
    """Where refold keeps the local broker, its jars, caches and state: outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "refold")


def _default_instance_id() -> str:
    """The host name: unique per replica (a StatefulSet pod's name, a container's id)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:200]
    return name or "0"


# -- the settings -------------------------------------------------------------------------------

class Settings(HybridSettings, BridgeSettings):
    """All of refold's configuration, with its defaults (the README's configuration table)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    # -- Kafka connection and topics
    bootstrap_servers: str | None = Field(
        None, description="An existing cluster (host:port,...); unset: the local broker")
    topic_prefix: str = Field("refold.", max_length=100, pattern=r"^[A-Za-z0-9._-]*$",
                              description="prefix of every topic name")
    events_topic: TopicName = "events"
    recommendations_topic: TopicName = "recommendations"
    snapshots_topic: TopicName = "snapshots"
    items_topic: TopicName = "items"
    dead_letter_topic: TopicName = "dead-letter"
    changelog_topic: TopicName = "state-changelog"
    control_topic: TopicName = "control"
    similar_items_topic: TopicName = "similar-items"
    users_topic: TopicName = "users"
    impressions_topic: TopicName = "impressions"
    events_partitions: int = Field(6, ge=1, le=100_000, description=(
        "partitions of events, recommendations and the state changelog"))
    replication_factor: int = Field(1, ge=1, le=32767,
                                    description="replication factor of the topics refold makes")
    consumer_group: GroupId = Field("refold-foldin", description="the fold-in workers' group")
    refit_group: GroupId = Field("refold-refit", description="the refitter's group")
    kafka_client: ClientProperties = Field(default_factory=dict, description=(
        "librdkafka properties of every client ([kafka.client])"))
    kafka_consumer: ClientProperties = Field(default_factory=dict, description=(
        "librdkafka properties of consumers, over kafka_client ([kafka.consumer])"))
    kafka_producer: ClientProperties = Field(default_factory=dict, description=(
        "librdkafka properties of producers, over kafka_client ([kafka.producer])"))
    kafka_admin: ClientProperties = Field(default_factory=dict, description=(
        "librdkafka properties of admin clients, over kafka_client ([kafka.admin])"))

    # -- the local broker (used only when bootstrap_servers is unset)
    home: str = Field(default_factory=_default_home, description=(
        "local broker's jars, data and logs; processes' local state"))
    broker_host: str = Field("127.0.0.1", min_length=1, description="local broker's address")
    broker_port: Port = Field(9092, description="local broker's port")
    controller_port: Port = Field(9093, description="local broker's controller port")
    broker_heap: str = Field("768m", pattern=r"^\d+[kKmMgG]?$",
                             description="local broker's JVM heap (-Xmx)")
    broker_gc: Literal["zgc", "g1"] = Field("zgc", description=(
        "local broker's garbage collector: ZGC (concurrent, short pauses) or G1"))
    broker_jvm_options: str = Field("", description=(
        "more JVM options of the local broker, space separated (after the heap and collector)"))

    # -- recommendations and the model: defaults from `models.defaults` (the one source) and,
    # for what only the fold-in reads, from `models.foldin_config.FoldInConfig`
    k: int = Field(defaults.K, ge=1, le=10_000, description="recommendations per list")
    factors: int = Field(defaults.FACTORS, ge=1, le=4096,
                         description="latent factors of the refitted model")
    regularization: float = Field(defaults.REGULARIZATION, ge=0,
                                  description="ALS lambda (refit and fold-in)")
    alpha: float = Field(defaults.ALPHA, gt=0, description="ALS confidence scale")
    iterations: int = Field(defaults.ITERATIONS, ge=1, le=1000,
                            description="ALS iterations per refit")
    decay: Literal["events", "time", "none"] = Field(defaults.DECAY, description=(
        "recency decay of a user's history"))
    half_life_events: float = Field(defaults.HALF_LIFE_EVENTS, gt=0, description=(
        "recency half-life in the user's own events (decay = events)"))
    half_life_seconds: float = Field(defaults.HALF_LIFE_SECONDS, gt=0, description=(
        "recency half-life in seconds (decay = time)"))
    history_size: int = Field(defaults.HISTORY_SIZE, ge=1, le=100_000,
                              description="events kept per user")
    trending_half_life_seconds: float = Field(defaults.TRENDING_HALF_LIFE_SECONDS, gt=0,
                                              description="half-life of the trending counts "
                                              "when trending_adaptive is off")
    event_weights: Annotated[EventWeightSettings, NoDecode] = Field(
        default_factory=EventWeightSettings,
        description="weight per event type ([event_weights] view = 0.1 ...)")
    exclude_types: Annotated[frozenset[EventType], NoDecode] = Field(
        _FOLDIN.exclude_types, description="types whose item is never recommended again")
    shrink: float = Field(_FOLDIN.shrink, ge=0, description=(
        "cold-start ramp: collaborative weight n / (n + shrink) after n events"))
    min_events: int = Field(_FOLDIN.min_events, ge=0, description=(
        "cold-start ramp: events before collaborative filtering starts"))
    full_events: int | None = Field(_FOLDIN.full_events, ge=1, description=(
        "cold-start ramp: events from which lists are purely collaborative"))
    session_weight: float = Field(defaults.SESSION_WEIGHT, ge=0, description=(
        "weight of the session co-visitation blend; 0 turns it off"))
    content_weight: float = Field(_FOLDIN.content_weight, ge=0, le=1, description=(
        "hand-set blend: share of what collaborative filtering leaves that content gets"))
    exploration: Literal["none", "epsilon", "plackett_luce"] = Field(
        defaults.EXPLORATION, description="the policy that draws each list from its candidates")
    exploration_epsilon: float = Field(defaults.EXPLORATION_EPSILON, ge=0, le=1, description=(
        "epsilon: the probability that a slot shows an item from beyond the top k"))
    exploration_temperature: float = Field(defaults.EXPLORATION_TEMPERATURE, gt=0, description=(
        "plackett_luce: temperature over the candidates' scores put on [-1, 0]"))
    exploration_candidates: int = Field(defaults.EXPLORATION_CANDIDATES, ge=0, description=(
        "ranked candidates exploration draws from (0: 2 x k)"))
    exposure_min_count: int = Field(defaults.EXPOSURE_MIN_COUNT, ge=1, description=(
        "impressions without an interaction after which an item is demoted for the user"))
    exposure_strength: float = Field(defaults.EXPOSURE_STRENGTH, ge=0, description=(
        "how far a demoted item sinks, in candidate score ranges (0: off)"))
    attribution_window_seconds: float = Field(defaults.ATTRIBUTION_WINDOW_SECONDS, gt=0,
                                              description=(
        "a click or purchase of a shown item within this time counts for its list"))

    max_future_seconds: float = Field(3600.0, ge=0, description=(
        "events further in the future are dead-lettered"))
    max_message_bytes: int = Field(65536, ge=1, le=64 << 20,
                                   description="larger events are dead-lettered")
    ann_min_items: int = Field(defaults.ANN_MIN_ITEMS, ge=0, description=(
        "catalog size from which workers rank approximate candidates re-scored exactly "
        "(0: never)"))

    # -- the refitter's training backend
    refit_backend: Literal["implicit", "spark"] = Field("implicit", description=(
        "implicit (in the refitter's process) or spark (Spark MLlib, the spark extra)"))
    refit_device: Literal["auto", "cpu", "gpu"] = Field("auto", description=(
        "implicit's device: auto (its CUDA fit when a GPU is present), cpu or gpu"))
    spark_master: str = Field("local[*]", min_length=1, description=(
        "Spark's master URL for refit_backend = spark (local threads, or a cluster's URL)"))
    max_abs_weight: float = Field(1000.0, gt=0, le=1e30, description=(
        "events whose weight is larger in magnitude are dead-lettered (out_of_range)"))

    # -- per-user state of a worker (consumers/state/)
    state_store: Literal["rocksdb", "memory"] = Field("rocksdb", description=(
        "rocksdb: users in a local store per partition behind a bounded cache; "
        "memory: every user in memory (small deployments, the comparison path)"))
    state_dir: str | None = Field(None, description=(
        "where the local stores live; unset: <home>/state"))
    state_cache_users: int = Field(100_000, ge=1, description="users kept decoded in memory")
    state_cache_mb: int = Field(64, ge=8, le=1 << 20, description=(
        "RocksDB's block cache and memtables, for all of a process's stores"))
    worker_gc: Literal["freeze", "default"] = Field("freeze", description=(
        "freeze: a worker process keeps its startup heap and what survives each full GC out "
        "of later full passes (consumers/heap.py); default: Python's collector as it comes"))
    state_max_checkpoint_age_seconds: float = Field(12 * 3600.0, gt=0, description=(
        "an older store is rebuilt from the changelog (tombstones live 24 h after compaction)"))
    user_expiry_seconds: float = Field(90 * 86400.0, ge=0, description=(
        "users inactive this long (event time, before the partition's newest event) are "
        "forgotten; 0: never"))
    dedup_horizon_seconds: float = Field(86400.0, gt=0, description=(
        "an event id counts once within this much event time (at most user_expiry_seconds)"))
    dedup_max_ids_per_user: int = Field(200, ge=0, le=100_000, description=(
        "a user's newest event ids kept for the de-duplication (0: all within the horizon)"))
    state_restore_chunk_records: int = Field(20_000, ge=1, le=10_000_000, description=(
        "changelog records a restore writes to a store per atomic write and checkpoint"))
    handle_retries: int = Field(3, ge=1, le=100, description=(
        "tries of a batch whose handling raises before it is halved to find the message"))
    republish_inactive: bool = Field(True, description=(
        "workers keep each user's last list (indexed by item) and publish it again, at once, "
        "when the catalog deactivates one of its items; false: the list waits for the user's "
        "next event"))

    # -- processes
    metrics_host: str = Field("127.0.0.1", description="where /metrics, /healthz, /ready listen")
    metrics_port: int | None = Field(None, ge=0, le=65535, description=(
        "metrics port; unset: the role's (worker 9400, refitter 9401, bridge 9402); 0: a free one"))
    metrics_summary_seconds: float = Field(1.0, ge=0, le=3600, description=(
        "a worker tests input drift and sets its quality gauges at most this often (0: every "
        "batch)"))
    batch_size: int = Field(500, ge=1, le=1_000_000,
                            description="events per micro-batch and transaction")
    instance_id: str = Field(default_factory=_default_instance_id, min_length=1, max_length=200,
                             pattern=r"^[A-Za-z0-9._-]+$", description=(
                                 "this replica's id (default: the host name); names its "
                                 "transactional producer, so live instances must differ"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="logging level")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bootstrap_servers", "full_events", "state_dir", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("exclude_types", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("kafka_client", "kafka_consumer", "kafka_producer", "kafka_admin",
                     mode="before")
    @classmethod
    def _properties(cls, value: Any) -> Any:
        return check_properties(value)

    @field_validator("event_weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        return split_map(value)

    # -- derived values
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

    @property
    def state_path(self) -> Path:
        """The directory of the local stores (`state_dir`, else `<home>/state`)."""
        return Path(self.state_dir) if self.state_dir else Path(self.home) / "state"

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with `changes`."""
        try:
            return Settings.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(sources.first_error(exc, {})) from None

    def client_properties(self, kind: str) -> dict[str, Any]:
        """The librdkafka properties of a `consumer`, `producer` or `admin` client: the shared
        table, then the kind's own, with secrets read from their files or variables."""
        if kind not in CLIENT_TABLES[1:]:
            raise ValueError(f"client kind {kind!r}: one of {', '.join(CLIENT_TABLES[1:])}")
        merged = {**self.kafka_client, **getattr(self, f"kafka_{kind}")}
        return {k: v.resolve(k) if isinstance(v, SecretRef) else v for k, v in merged.items()}

    def redacted(self) -> dict[str, Any]:
        """Every setting as plain data, secrets of the client tables as "***"."""
        data = self.model_dump(mode="json")
        for table in CLIENT_TABLES:
            props = data[f"kafka_{table}"]
            for name, value in props.items():
                if is_secret(name) and not isinstance(value, dict):
                    props[name] = REDACTED
        return data


# -- loading ----------------------------------------------------------------------------------

_TABLES = frozenset({"kafka_client", "kafka_consumer", "kafka_producer", "kafka_admin",
                     "event_weights"})
"""Fields whose value is a table: a TOML table of that name is the value itself."""
_warned: set[str] = set()


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into `{field: value}`; unknown keys are an error."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    try:
        return sources.flatten_toml(data, set(Settings.model_fields), set(_TABLES))
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """`REFOLD_*` variables that are no setting, each with a suggestion where one is close."""
    return sources.unknown_variables(env, set(Settings.model_fields))


def load_settings(config_file: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """`Settings` from defaults < config file < `REFOLD_*` environment < `overrides` (flags).

    `overrides` entries whose value is None are ignored, so unset flags fall through. Unknown
    `REFOLD_*` variables are warned about (once per process).
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(flags) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
    from_file = read_config_file(config_file) if config_file else {}
    for var in unknown_variables(env):
        if var not in _warned:
            _warned.add(var)
            log.warning("ignoring unknown environment variable %s", var)
    try:
        values = sources.assemble(Settings, flags, env, from_file)
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(sources.first_error(
            exc, {"flags": flags, "env": env, "file": (config_file, from_file)})) from None
    except SettingsError as exc:  # a value the environment source could not decode
        field = re.search(r'field "(\w+)"', str(exc))
        name = field.group(1) if field else "?"
        raise ConfigError(f"setting {name}{sources.where(name, {'env': env})}: cannot read "
                          "it (JSON, or NAME=VALUE,NAME=VALUE)") from None


def environment(settings: Settings) -> dict[str, str]:
    """The `REFOLD_*` variables under which another process loads `settings`: each setting that
    differs from its default, in its environment form (`load_settings` reads them back).

    >>> environment(Settings(topic_prefix="t1.", events_partitions=3, instance_id="w"))
    {'REFOLD_TOPIC_PREFIX': 't1.', 'REFOLD_EVENTS_PARTITIONS': '3', 'REFOLD_INSTANCE_ID': 'w'}
    >>> env = environment(Settings(k=5, event_weights={"view": 0.5}, exclude_types=["dismiss"],
    ...                            kafka_client={"sasl.password": {"file": "/pw"}}))
    >>> s = load_settings(env=env)
    >>> s.k, s.event_weights.view, s.exclude_types, s.kafka_client["sasl.password"].file
    (5, 0.5, frozenset({'dismiss'}), '/pw')
    """
    return sources.environment(settings, derived=("instance_id", "home"))


def describe() -> list[tuple[str, str, str, str, str]]:
    """(field, environment variable, type, default, description) of every setting."""
    return sources.describe(Settings)
