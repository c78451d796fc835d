"""Q&A request bodies (REST and the socket messages' `data`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tajiri_live.core.payload import DbId
from tajiri_live.core.text import Text


class QuestionCreate(BaseModel):
    """`question`, trimmed; its longest length is `QUESTION_MAX_LENGTH` (the service checks)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    question: Text = Field(min_length=1)


class QuestionRef(BaseModel):
    """A socket message naming a question (`upvote_question`, `answer_question`)."""

    model_config = ConfigDict(extra="ignore")

    question_id: DbId


class Dismissal(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    reason: Text | None = Field(default=None, max_length=255)


class SocketDismissal(QuestionRef, Dismissal):
    """`dismiss_question`: `question_id` and an optional `reason`."""
