"""The value types of `refold.core.config.Settings`: librdkafka property tables (with secrets
read from files or variables when a client is made), event weights, ports, topic and group
names, and the environment forms of lists and maps (`a,b`, `k=v,k=v`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import NoDecode

from models.weights import EVENT_TYPES, EventWeights
from refold.core.errors import ConfigError

_WEIGHTS = EventWeights()


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


def check_properties(value: Any) -> Any:
    if isinstance(value, str):
        value = key_values(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not PROPERTY_NAME.match(str(k))]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a librdkafka property name (like sasl.username)")
    return value


def key_values(text: str) -> dict[str, str]:
    """`"a=1,b=2"` -> `{"a": "1", "b": "2"}` (the environment form of a map)."""
    out = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected NAME=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def split_list(value: Any) -> Any:
    """A list from `"a,b"` (the environment form) or a list."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def split_map(value: Any) -> Any:
    return key_values(value) if isinstance(value, str) else value


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
