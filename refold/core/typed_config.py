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

import contextvars
import difflib
import logging
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from models.foldin_config import FoldInConfig
from models.weights import EVENT_TYPES, EventWeights
from refold.core import errors

ENV_PREFIX = "REFOLD_"
CLIENT_TABLES = ("client", "consumer", "producer", "admin")
"""`[kafka.client]` applies to every client; the others override it for one kind of client."""
NOT_SETTINGS = frozenset({"REFOLD_CONFIG", "REFOLD_KAFKA_POM", "REFOLD_TEST_CRASH_AT",
                          "REFOLD_ML100K"})
"""`REFOLD_*` variables that are read elsewhere, not settings: never warned about."""
SECRET = re.compile(r"password|secret|jaas|token|oauthbearer\.config|^ssl\.key\.pem$|^ssl_key$")
"""librdkafka properties whose values are secrets: never printed or logged."""
REDACTED = "***"

log = logging.getLogger(__name__)
_FOLDIN = FoldInConfig()
_WEIGHTS = EventWeights()


ConfigError = errors.ConfigError
"""A setting is unknown or has a bad value; the message names it and what is allowed."""


def _default_home() -> str:
    """Where refold keeps the local broker, its jars, caches and state: outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "refold")


def _default_instance_id() -> str:
    """The host name: unique per replica (a StatefulSet pod's name, a container's id)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:200]
    return name or "0"


# -- value types -------------------------------------------------------------------------------

class SecretRef(BaseModel):
    """A client property read when a client is made: `{file = "/run/secrets/x"}` (the file's
    content, stripped) or `{env = "NAME"}` (another environment variable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    file: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file or env")
        return self

    def resolve(self, name: str) -> str:
        if self.file is not None:
            try:
                return Path(self.file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"kafka property {name}: cannot read {self.file}: "
                                  f"{exc.strerror}") from None
        value = os.environ.get(self.env or "")
        if value is None:
            raise ConfigError(f"kafka property {name}: environment variable {self.env} is unset")
        return value


ClientValue = str | int | float | bool | SecretRef
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9_]+)*$")


def _check_properties(value: Any) -> Any:
    if isinstance(value, str):
        value = _key_values(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not PROPERTY_NAME.match(str(k))]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a librdkafka property name (like sasl.username)")
    return value


def _key_values(text: str) -> dict[str, str]:
    """`"a=1,b=2"` -> `{"a": "1", "b": "2"}` (the environment form of a map)."""
    out = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected NAME=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _list(value: Any) -> Any:
    """A list from `"a,b"` (the environment form) or a list."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _map(value: Any) -> Any:
    return _key_values(value) if isinstance(value, str) else value


ClientProperties = Annotated[dict[str, ClientValue], NoDecode]
Port = Annotated[int, Field(ge=1, le=65535)]
TopicName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")]
GroupId = Annotated[str, Field(min_length=1, max_length=255)]
EventType = Literal["view", "click", "add_to_cart", "purchase", "bookmark", "rating", "dismiss"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class EventWeightSettings(BaseModel):
    """Implicit-feedback weight of each event type (`models.weights.EventWeights`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    view: float = _WEIGHTS.view
    click: float = _WEIGHTS.click
    add_to_cart: float = _WEIGHTS.add_to_cart
    purchase: float = _WEIGHTS.purchase
    bookmark: float = _WEIGHTS.bookmark
    dismiss: float = Field(_WEIGHTS.dismiss, le=0, description="a negative signal")
    rating_neutral: float = _WEIGHTS.rating_neutral
    rating_max: float = _WEIGHTS.rating_max
    ratings_as_positive: bool = _WEIGHTS.ratings_as_positive

    @model_validator(mode="after")
    def _rating_range(self) -> EventWeightSettings:
        if self.rating_max <= self.rating_neutral:
            raise ValueError("rating_max must be greater than rating_neutral")
        return self

    def to_model(self) -> EventWeights:
        return EventWeights(**self.model_dump())


# -- the settings -------------------------------------------------------------------------------

class Settings(BaseModel):
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
    users_topic: TopicName = "users"
    similar_items_topic: TopicName = "similar-items"
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

    # -- recommendations and the model (defaults: models.foldin_config.FoldInConfig)
    k: int = Field(_FOLDIN.k, ge=1, le=10_000, description="recommendations per list")
    factors: int = Field(32, ge=1, le=4096, description="latent factors of the refitted model")
    regularization: float = Field(_FOLDIN.regularization, ge=0,
                                  description="ALS lambda (refit and fold-in)")
    alpha: float = Field(_FOLDIN.alpha, gt=0, description="ALS confidence scale")
    iterations: int = Field(15, ge=1, le=1000, description="ALS iterations per refit")
    decay: Literal["events", "time", "none"] = Field(_FOLDIN.decay, description=(
        "recency decay of a user's history"))
    half_life_events: float = Field(_FOLDIN.half_life_events, gt=0, description=(
        "recency half-life in the user's own events (decay = events)"))
    half_life_seconds: float = Field(_FOLDIN.half_life_seconds, gt=0, description=(
        "recency half-life in seconds (decay = time)"))
    history_size: int = Field(_FOLDIN.history_size, ge=1, le=100_000,
                              description="events kept per user")
    trending_half_life_seconds: float = Field(_FOLDIN.trending_half_life_seconds, gt=0,
                                              description="half-life of the trending counts")
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
    session_weight: float = Field(_FOLDIN.session_weight, ge=0, description=(
        "weight of the session co-visitation blend; 0 turns it off"))
    content_weight: float = Field(_FOLDIN.content_weight, ge=0, le=1, description=(
        "weight of catalog content in a new item's vector"))
    max_future_seconds: float = Field(3600.0, ge=0, description=(
        "events further in the future are dead-lettered"))
    max_message_bytes: int = Field(65536, ge=1024, le=64 << 20,
                                   description="larger events are dead-lettered")

    # -- processes
    metrics_host: str = Field("127.0.0.1", description="where /metrics, /healthz, /ready listen")
    metrics_port: int | None = Field(None, ge=0, le=65535, description=(
        "metrics port; unset: the role's (worker 9400, refitter 9401, bridge 9402); 0: a free one"))
    batch_size: int = Field(500, ge=1, le=1_000_000,
                            description="events per micro-batch and transaction")
    instance_id: str = Field(default_factory=_default_instance_id, min_length=1, max_length=200,
                             pattern=r"^[A-Za-z0-9._-]+$", description=(
                                 "this replica's id (default: the host name); names its "
                                 "transactional producer, so live instances must differ"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="logging level")

    # -- the bridge (refold bridge): a shop's own event topic to refold events
    bridge_source_topic: str | None = Field(None, description="the topic the bridge reads")
    bridge_group: GroupId = Field("refold-bridge", description="the bridge's consumer group")
    bridge_fields: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "field mapping, refold=source (user_id=uid)"))
    bridge_types: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "event-type mapping, source=refold (pv=view)"))
    bridge_skip_types: Annotated[list[str], NoDecode] = Field(default_factory=list, description=(
        "source types dropped on purpose"))
    bridge_time_unit: Literal["s", "ms", "us", "iso", "auto"] = Field(
        "auto", description="unit of the source's timestamps")
    bridge_default_type: EventType | None = Field(None, description=(
        "event type of records without one"))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bootstrap_servers", "bridge_source_topic", "full_events", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("exclude_types", "bridge_fields", "bridge_types", "bridge_skip_types",
                     mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _list(value)

    @field_validator("kafka_client", "kafka_consumer", "kafka_producer", "kafka_admin",
                     mode="before")
    @classmethod
    def _properties(cls, value: Any) -> Any:
        return _check_properties(value)

    @field_validator("event_weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> Any:
        return _map(value)

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

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with `changes`."""
        try:
            return Settings.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, sources={})) from None

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
                if SECRET.search(name) and not isinstance(value, dict):
                    props[name] = REDACTED
        return data


def is_secret(name: str) -> bool:
    """Whether a librdkafka property holds a secret (`sasl.password`, `ssl.key.pem` ...)."""
    return bool(SECRET.search(name))


# -- sources -------------------------------------------------------------------------------------

_STATE: contextvars.ContextVar[tuple[Mapping[str, str], dict[str, Any]]] = contextvars.ContextVar(
    "refold_settings_sources")


class _Environment(EnvSettingsSource):
    """`REFOLD_*` from the mapping `load_settings` was given instead of `os.environ`."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env, _ = _STATE.get()
        return {k.lower(): v for k, v in env.items() if v != ""}


class _ClientEnvironment(PydanticBaseSettingsSource):
    """`REFOLD_KAFKA_<TABLE>_<PROPERTY>[_FILE]` -> `kafka_<table>[property]`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env, _ = _STATE.get()
        return client_env_properties(env)


class _TomlFile(PydanticBaseSettingsSource):
    """The config file's values, already flattened to field names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _STATE.get()[1]


def client_env_properties(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The client tables named by environment variables.

    >>> client_env_properties({"REFOLD_KAFKA_CLIENT_SASL_USERNAME": "w",
    ...                        "REFOLD_KAFKA_CONSUMER_FETCH_MAX_BYTES": "1048576",
    ...                        "REFOLD_KAFKA_CLIENT_SASL_PASSWORD_FILE": "/run/pw"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'kafka_client': {'sasl.username': 'w', 'sasl.password': {'file': '/run/pw'}},
     'kafka_consumer': {'fetch.max.bytes': '1048576'}}
    """
    out: dict[str, dict[str, Any]] = {}
    for var, value in env.items():
        for table in CLIENT_TABLES:
            head = f"{ENV_PREFIX}KAFKA_{table.upper()}_"
            if not var.startswith(head) or len(var) == len(head):
                continue
            name = var[len(head):].lower()
            if name.endswith("_file"):
                name, value = name.removesuffix("_file"), {"file": value}
            out.setdefault(f"kafka_{table}", {})[name.replace("_", ".")] = value
    return out


class _Loader(BaseSettings, Settings):
    """`Settings` as pydantic-settings assembles it from the sources (flags first)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                      case_sensitive=False, extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **_others: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environment(settings_cls), _ClientEnvironment(settings_cls),
                _TomlFile(settings_cls))


# -- the config file ---------------------------------------------------------------------------

def _table_fields() -> set[str]:
    """Fields whose value is a table: a TOML table of that name is the value itself."""
    return {n for n, f in Settings.model_fields.items()
            if n.startswith("kafka_") or n == "event_weights"}


def flatten_toml(data: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """TOML tables to field names (see the module docstring); unknown keys are an error.

    >>> flatten_toml({"kafka": {"bootstrap_servers": "b:9092",
    ...                         "client": {"security.protocol": "SSL"}},
    ...               "bridge": {"source_topic": "clicks"}})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'bootstrap_servers': 'b:9092', 'kafka_client': {'security.protocol': 'SSL'},
     'bridge_source_topic': 'clicks'}
    """
    fields, tables = set(Settings.model_fields), _table_fields()
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        nested = f"{path}_{key}" if path else key
        name = key if key in fields else nested if nested in fields else None
        if isinstance(value, Mapping) and name not in tables:
            if name is not None:
                raise ConfigError(f"setting {name} is not a table")
            out.update(flatten_toml(value, nested))
        elif name is None:
            where = f" (in [{path.replace('_', '.')}])" if path else ""
            raise ConfigError(f"unknown setting {key!r}{where}{_suggest(key, fields)}")
        else:
            out[name] = value
    return out


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
        return flatten_toml(data)
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def _suggest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# -- loading -------------------------------------------------------------------------------------

def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """`REFOLD_*` variables that are no setting, each with a suggestion where one is close."""
    known = {ENV_PREFIX + n.upper() for n in Settings.model_fields}
    out = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in known or var in NOT_SETTINGS:
            continue
        if var.startswith(tuple(f"{ENV_PREFIX}KAFKA_{t.upper()}_" for t in CLIENT_TABLES)):
            continue
        if "__" in var and var.split("__")[0] in known:
            continue
        out.append(var + _suggest(var, known))
    return out


def load_settings(config_file: str | Path | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """`Settings` from defaults < config file < `REFOLD_*` environment < `overrides` (flags).

    `overrides` entries whose value is None are ignored, so unset flags fall through.
    """
    env = os.environ if env is None else env
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(flags) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
    from_file = read_config_file(config_file) if config_file else {}
    for var in unknown_variables(env):
        log.warning("ignoring unknown environment variable %s", var)
    token = _STATE.set((env, from_file))
    try:
        loaded = _Loader(**flags)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, {"flags": flags, "env": env,
                                             "file": (config_file, from_file)})) from None
    except SettingsError as exc:  # a value the environment source could not decode
        field = re.search(r'field "(\w+)"', str(exc))
        name = field.group(1) if field else "?"
        raise ConfigError(f"setting {name}{_where(name, {'env': env})}: cannot read it "
                          "(JSON, or NAME=VALUE,NAME=VALUE)") from None
    finally:
        _STATE.reset(token)
    return Settings.model_validate(loaded.model_dump())


def _first_error(exc: ValidationError, sources: Mapping[str, Any]) -> str:
    """One line: the setting, where its value came from, what is wrong and what is allowed."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    name = loc[0] if loc else "?"
    where = _where(name, sources)
    label = name + (f".{'.'.join(loc[1:])}" if len(loc) > 1 else "")
    secret = any(is_secret(p) for p in loc)
    given = "" if secret or err["type"] in ("missing", "extra_forbidden") else (
        f"{err['input']!r} ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"setting {label}{where}: {given}{_reason(err)}{more}"


def _reason(err: Mapping[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "literal_error":
        return f"is not one of {ctx['expected'].replace(' or ', ', ')}"
    if kind == "extra_forbidden":
        return "is not a setting"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return f"is out of range: {err['msg'].lower()}"
    msg = str(err["msg"])
    return msg[0].lower() + msg[1:] if msg else kind


def _where(name: str, sources: Mapping[str, Any]) -> str:
    if name in sources.get("flags", {}):
        return f" (--{name.replace('_', '-')})"
    env = sources.get("env", {})
    var = ENV_PREFIX + name.upper()
    if var in env or any(k.startswith(var + "_") or k.startswith(var + "__") for k in env):
        return f" ({var})"
    path, values = sources.get("file", (None, {}))
    if path and name in values:
        return f" (config file {path})"
    return ""


def describe() -> list[tuple[str, str, str, str, str]]:
    """(field, environment variable, type, default, description) of every setting."""
    out = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = repr(field.default)
        kind = getattr(field.annotation, "__name__", str(field.annotation))
        out.append((name, ENV_PREFIX + name.upper(), kind, default, field.description or ""))
    return out
