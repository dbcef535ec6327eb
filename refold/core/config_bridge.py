"""The settings of `refold bridge`, which maps a shop's own event topic to refold's events.

`refold.core.config.Settings` inherits them (one flat set of settings: `REFOLD_BRIDGE_GROUP`,
`[bridge] source_topic = ...` in the file); they live here to keep that module short.

>>> BridgeSettings(bridge_fields="user_id=uid, item_id=sku").bridge_fields
['user_id=uid', 'item_id=sku']
>>> BridgeSettings(bridge_source_topic=" ").bridge_source_topic is None
True
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from refold.core.config_types import EventType, GroupId, split_list

__all__ = ["BridgeSettings"]


class BridgeSettings(BaseModel):
    """Where the bridge reads and how a source record's fields and types map to an event."""

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

    @field_validator("bridge_source_topic", mode="before")
    @classmethod
    def _blank_topic_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("bridge_fields", "bridge_types", "bridge_skip_types", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return split_list(value)
