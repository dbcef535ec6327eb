"""Where settings come from, for `refold.core.config`: the TOML file's tables, the environment's
forms (`REFOLD_KAFKA_<TABLE>_<PROPERTY>`, nested `__`, lists and maps), pydantic-settings'
assembly of the sources, and the one-line message of a bad value.

Nothing here knows the fields: the settings class is a parameter, so `refold.core.config`
(which defines it) is the only module that imports this one.
"""

from __future__ import annotations

import contextvars
import difflib
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from refold.core.config_types import SecretRef
from refold.core.errors import ConfigError

ENV_PREFIX = "REFOLD_"
CLIENT_TABLES = ("client", "consumer", "producer", "admin")
"""`[kafka.client]` applies to every client; the others override it for one kind of client."""
NOT_SETTINGS = frozenset({"REFOLD_CONFIG", "REFOLD_KAFKA_POM", "REFOLD_TEST_CRASH_AT",
                          "REFOLD_ML100K"})
"""`REFOLD_*` variables that are read elsewhere, not settings: never warned about."""
SECRET = re.compile(r"password|secret|jaas|token|oauthbearer\.config|^ssl\.key\.pem$|^ssl_key$")
"""librdkafka properties whose values are secrets: never printed or logged."""

_STATE: contextvars.ContextVar[tuple[Mapping[str, str], dict[str, Any]]] = contextvars.ContextVar(
    "refold_settings_sources")


def is_secret(name: str) -> bool:
    """Whether a librdkafka property holds a secret.

    >>> is_secret("sasl.password"), is_secret("ssl.key.pem"), is_secret("ssl.key.location")
    (True, True, False)
    """
    return bool(SECRET.search(name))


def suggest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# -- the environment -----------------------------------------------------------------------------

def client_env_properties(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The client tables named by environment variables (`_FILE`: read from a file).

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


def unknown_variables(env: Mapping[str, str], fields: set[str]) -> list[str]:
    """`REFOLD_*` variables that are no setting, each with a suggestion where one is close."""
    known = {ENV_PREFIX + n.upper() for n in fields}
    clients = tuple(f"{ENV_PREFIX}KAFKA_{t.upper()}_" for t in CLIENT_TABLES)
    out = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in known or var in NOT_SETTINGS:
            continue
        if var.startswith(clients) or ("__" in var and var.split("__")[0] in known):
            continue
        out.append(var + suggest(var, known))
    return out


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
        return client_env_properties(_STATE.get()[0])


class _TomlFile(PydanticBaseSettingsSource):
    """The config file's values, already flattened to field names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _STATE.get()[1]


@cache
def _loader(settings_cls: type[BaseModel]) -> type[BaseSettings]:
    """`settings_cls` as pydantic-settings assembles it: flags (init), then the environment,
    then the client properties of the environment, then the file."""

    class Loader(BaseSettings, settings_cls):  # type: ignore[misc, valid-type]
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__",
                                          case_sensitive=False, extra="forbid", frozen=True)

        @classmethod
        def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                       init_settings: PydanticBaseSettingsSource,
                                       **_others: PydanticBaseSettingsSource,
                                       ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, _Environment(settings_cls), _ClientEnvironment(settings_cls),
                    _TomlFile(settings_cls))

    return Loader


def assemble(settings_cls: type[BaseModel], flags: Mapping[str, Any], env: Mapping[str, str],
             from_file: dict[str, Any]) -> dict[str, Any]:
    """The values of every source, merged by precedence (raises pydantic's errors)."""
    token = _STATE.set((env, from_file))
    try:
        return _loader(settings_cls)(**flags).model_dump()
    finally:
        _STATE.reset(token)


# -- the config file -----------------------------------------------------------------------------

def flatten_toml(data: Mapping[str, Any], fields: set[str], tables: set[str],
                 path: str = "") -> dict[str, Any]:
    """TOML tables to field names; unknown keys are an error. A table is only for the reader
    unless it names a field itself (`tables`: fields whose value is a table) or prefixes the
    names of its keys (`[bridge] source_topic` is `bridge_source_topic`).

    >>> flatten_toml({"kafka": {"bootstrap_servers": "b:9092",
    ...                         "client": {"security.protocol": "SSL"}},
    ...               "bridge": {"source_topic": "clicks"}},
    ...              {"bootstrap_servers", "kafka_client", "bridge_source_topic"}, {"kafka_client"})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'bootstrap_servers': 'b:9092', 'kafka_client': {'security.protocol': 'SSL'},
     'bridge_source_topic': 'clicks'}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        nested = f"{path}_{key}" if path else key
        name = key if key in fields else nested if nested in fields else None
        if isinstance(value, Mapping) and name not in tables:
            if name is not None:
                raise ConfigError(f"setting {name} is not a table")
            out.update(flatten_toml(value, fields, tables, nested))
        elif name is None:
            where = f" (in [{path.replace('_', '.')}])" if path else ""
            raise ConfigError(f"unknown setting {key!r}{where}{suggest(key, fields)}")
        else:
            out[name] = value
    return out


# -- the message of a bad value -------------------------------------------------------------------

def first_error(exc: ValidationError, sources: Mapping[str, Any]) -> str:
    """One line: the setting, where its value came from, what is wrong and what is allowed.
    A secret's value is never shown."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = [str(p) for p in err["loc"]]
    name = loc[0] if loc else "?"
    label = name + (f".{'.'.join(loc[1:])}" if len(loc) > 1 else "")
    secret = any(is_secret(p) for p in loc)
    reason = _reason(err)
    if not secret and err["type"] not in ("missing", "extra_forbidden"):
        given = repr(err["input"])
        reason = f"{given} {reason}" if reason.startswith("is ") else f"{given}: {reason}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"setting {label}{where(name, sources)}: {reason}{more}"


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


def where(name: str, sources: Mapping[str, Any]) -> str:
    """` (--flag)`, ` (REFOLD_NAME)` or ` (config file PATH)`: where `name`'s value came from."""
    if name in sources.get("flags", {}):
        return f" (--{name.replace('_', '-')})"
    env = sources.get("env", {})
    var = ENV_PREFIX + name.upper()
    if var in env or any(k.startswith(var + "_") for k in env):
        return f" ({var})"
    path, values = sources.get("file", (None, {}))
    if path and name in values:
        return f" (config file {path})"
    return ""


# -- the other way: settings to the environment, and the list of settings

def environment(settings: BaseModel, derived: tuple[str, ...] = ()) -> dict[str, str]:
    """`REFOLD_*` variables of each field of `settings` that differs from its default
    (`refold.core.config.environment`). `derived` fields (defaults computed on this machine,
    such as the host name) are given unless they equal what this machine would compute."""
    cls = type(settings)
    base = cls(**{name: getattr(settings, name) for name in derived})
    out: dict[str, str] = {}
    for name in cls.model_fields:
        value, default = getattr(settings, name), getattr(base, name)
        if value == default and name not in derived:
            continue
        var = ENV_PREFIX + name.upper()
        if name.startswith("kafka_"):
            for prop, v in value.items():
                key = f"{var}_{prop.upper().replace('.', '_')}"
                if isinstance(v, SecretRef):  # its file, else its value
                    key, v = (key + "_FILE", v.file) if v.file else (key, v.resolve(prop))
                out[key] = str(v).lower() if isinstance(v, bool) else str(v)
        elif isinstance(value, BaseModel):
            out.update({f"{var}__{k.upper()}": str(v) for k, v in value.model_dump().items()
                        if v != getattr(default, k)})
        elif isinstance(value, list | frozenset):
            out[var] = ",".join(sorted(value) if isinstance(value, frozenset) else value)
        else:
            out[var] = "" if value is None else str(value)
    for name in derived:
        factory = cls.model_fields[name].default_factory
        if factory is not None and getattr(settings, name) == factory():  # type: ignore[call-arg]
            out.pop(ENV_PREFIX + name.upper(), None)
    return out


def describe(cls: type[BaseModel]) -> list[tuple[str, str, str, str, str]]:
    """(field, environment variable, type, default, description) of every field of `cls`."""
    out = []
    for name, field in cls.model_fields.items():
        if field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        else:
            default = repr(field.default)
        kind = getattr(field.annotation, "__name__", str(field.annotation))
        out.append((name, ENV_PREFIX + name.upper(), kind, default, field.description or ""))
    return out
