"""Text a client sends: one rule for every string, refused at the boundary.

PostgreSQL cannot store NUL in text, and no field of this API means control characters, so
every user-supplied string (bodies, query filters, headers that are stored, socket messages,
a socket's region) is refused with a 422 naming the field when it holds a C0 or C1 control
character other than newline and tab, or a lone surrogate (not encodable as UTF-8).

`Text` is the type every schema and route parameter uses for strings; `find_control` walks
a decoded body or socket message for the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticCustomError

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
ERROR_TYPE = "control_characters"


def has_control(value: str) -> bool:
    return CONTROL.search(value) is not None


def control_message(field: str) -> str:
    return f"The {field.replace('_', ' ')} must not contain control characters."


def _check(value: str) -> str:
    if has_control(value):
        raise PydanticCustomError(ERROR_TYPE, "must not contain control characters")
    return value


Text = Annotated[str, AfterValidator(_check)]
"""A string without control characters (newline and tab allowed)."""


def find_control(value: Any, path: str = "") -> str | None:
    """The path (`tags.1`, `data.message`) of the first string, key or value, that breaks
    the rule; None when there is none. Walked with a stack, not recursion: JSON may nest a
    thousand levels deep."""
    pending: list[tuple[Any, str]] = [(value, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if has_control(item):
                return where or "value"
        elif isinstance(item, Mapping):
            children = []
            for key, child in item.items():
                if isinstance(key, str) and has_control(key):
                    return where or "body"
                children.append((child, f"{where}.{key}" if where else str(key)))
            pending.extend(reversed(children))  # the first child is looked at first
        elif isinstance(item, Sequence) and not isinstance(item, bytes | bytearray):
            pending.extend(
                (child, f"{where}.{index}" if where else str(index))
                for index, child in reversed(list(enumerate(item)))
            )
    return None


def checks_text(metadata: Sequence[Any]) -> bool:
    """Whether a field's or parameter's metadata carries the `Text` rule (for tests that
    make sure no string escapes it)."""
    return any(isinstance(m, AfterValidator) and m.func is _check for m in metadata)


def unchecked_string_fields(model: type[BaseModel]) -> list[str]:
    """Fields of `model` typed as a string (or list of strings) without the `Text` rule."""
    unchecked = []
    for name, info in model.model_fields.items():
        if _mentions_str(info.annotation) and not _annotation_checked(info.annotation, info):
            unchecked.append(name)
    return unchecked


def _mentions_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    return any(_mentions_str(arg) for arg in getattr(annotation, "__args__", ()))


def _annotation_checked(annotation: Any, info: Any) -> bool:
    if checks_text(info.metadata):
        return True
    return _every_str_checked(annotation)


def _every_str_checked(annotation: Any) -> bool:
    """True when every `str` inside the annotation is wrapped as `Text`."""
    if annotation is str:
        return False
    metadata = getattr(annotation, "__metadata__", None)
    if metadata is not None and getattr(annotation, "__origin__", None) is str:
        return checks_text(metadata)
    if metadata is not None:
        return _every_str_checked(annotation.__origin__)
    return all(_every_str_checked(arg) for arg in getattr(annotation, "__args__", ()))
