"""Engagement request bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tajiri_live.core.text import Text


class CommentCreate(BaseModel):
    """`content`, or `message` from older clients; trimmed, then 1 to 500 characters."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    content: Text = Field(min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _accept_message(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("content") and data.get("message"):
            return {**data, "content": data["message"]}
        return data


class ReactionCreate(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    reaction_type: Text = Field(min_length=1, max_length=20)
