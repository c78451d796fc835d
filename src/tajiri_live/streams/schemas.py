"""Stream request bodies, named by direction. Responses are built by `presenters`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tajiri_live.core.clienttime import ClientDateTime
from tajiri_live.core.text import Text
from tajiri_live.streams.lifecycle import StreamStatus

Privacy = Literal["public", "friends", "private"]
MAX_TAGS = 20


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _as_tag_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):  # "music, live" from a plain form field
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return value


def optional_text(max_length: int) -> Any:
    """A string of at most `max_length`, or null; blank counts as null. The limit sits on the
    string itself so that null never meets it."""
    return Annotated[
        Annotated[Text, Field(max_length=max_length)] | None, BeforeValidator(_blank_to_none)
    ]


Tags = Annotated[
    Annotated[
        list[Annotated[Text, Field(min_length=1, max_length=50)]], Field(max_length=MAX_TAGS)
    ],
    BeforeValidator(_as_tag_list),
]


class StreamFields(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    description: optional_text(5000) = None  # type: ignore[valid-type]
    category: optional_text(100) = None  # type: ignore[valid-type]
    tags: Tags = Field(default_factory=list)
    privacy: Privacy = "public"
    is_recorded: bool = False
    allow_comments: bool = True
    allow_gifts: bool = True
    allow_co_hosts: bool = True
    split_gifts_with_cohosts: bool = False
    # Validated with `core.clienttime.context(settings)`: a time without an offset is read
    # in the client's zone.
    scheduled_at: ClientDateTime = None


class StreamCreate(StreamFields):
    title: Text = Field(min_length=1, max_length=255)


class StreamUpdate(StreamFields):
    """Every field optional; only the fields sent are changed."""

    title: Text | None = Field(default=None, min_length=1, max_length=255)
    privacy: Privacy | None = None  # type: ignore[assignment]
    is_recorded: bool | None = None  # type: ignore[assignment]
    allow_comments: bool | None = None  # type: ignore[assignment]
    allow_gifts: bool | None = None  # type: ignore[assignment]
    allow_co_hosts: bool | None = None  # type: ignore[assignment]
    split_gifts_with_cohosts: bool | None = None  # type: ignore[assignment]
    tags: Tags | None = None  # type: ignore[assignment]


class StatusUpdate(BaseModel):
    status: StreamStatus
