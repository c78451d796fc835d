"""Poll request bodies (REST forms and JSON, and the socket messages' `data`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tajiri_live.core.payload import DbId
from tajiri_live.core.text import Text

MAX_OPTION_LENGTH = 100
MIN_OPTIONS = 2


class PollCreate(BaseModel):
    """`question` (1 to 255 characters) and `options` (distinct, 1 to 100 characters each;
    how many: 2 to `POLL_MAX_OPTIONS`, checked by the service)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    question: Text = Field(min_length=1, max_length=255)
    options: list[Any]

    @field_validator("options")
    @classmethod
    def _options(cls, options: list[Any]) -> list[str]:
        if len(options) < MIN_OPTIONS:
            raise ValueError(f"The options must have at least {MIN_OPTIONS} items.")
        texts: list[str] = []
        for number, option in enumerate(options, start=1):
            if not isinstance(option, str) or not option.strip():
                raise ValueError(f"Option {number} must be a non-empty text.")
            text = option.strip()
            if len(text) > MAX_OPTION_LENGTH:
                raise ValueError(
                    f"Option {number} may not be greater than {MAX_OPTION_LENGTH} characters."
                )
            if text.casefold() in (t.casefold() for t in texts):
                raise ValueError(f"Option {number} repeats an earlier option.")
            texts.append(text)
        return texts


class VoteCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    option_id: DbId


class PollRef(BaseModel):
    """A socket message naming a poll (`close_poll`)."""

    model_config = ConfigDict(extra="ignore")

    poll_id: DbId


class SocketVote(PollRef):
    """`vote_poll`: `poll_id` and `option_id`."""

    option_id: DbId
