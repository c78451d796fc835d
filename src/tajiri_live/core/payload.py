"""Read a request body the way the mobile client sends it: JSON, urlencoded or multipart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from tajiri_live.core.errors import ApiError, ValidationFailed, laravel_errors
from tajiri_live.core.text import control_message, find_control

_INDEXED = re.compile(r"^(?P<name>[A-Za-z_][\w]*)\[(?P<index>\d*)\]$")
MAX_JSON_BYTES = 1024 * 1024
MAX_FILE_BYTES = 32 * 1024 * 1024  # the per-field limits (thumbnails: 5 MB) are lower
ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_payload(request: Request) -> dict[str, Any]:
    """The body as a dict; `tags[0]`, `tags[1]` (or `tags[]`) become a list under `tags`.
    Read once per request (identity may read it before the route does). Any string in it
    with a control character is refused here, naming its field, whether or not a schema reads
    that field later."""
    cached: dict[str, Any] | None = getattr(request.state, "payload", None)
    if cached is None:
        payload = await _read(request)
        field = find_control(payload)
        if field is not None:
            raise ValidationFailed({field: [control_message(field)]})
        cached = request.state.payload = payload
    return cached


async def _read(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form() as form:
            items = [(key, await _materialise(value)) for key, value in form.multi_items()]
        return _collect_form(items)
    body = await request.body()
    if not body.strip():
        return {}
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "The request body is too large.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed({"body": ["The request body is not valid JSON."]}) from exc
    if not isinstance(data, dict):
        raise ValidationFailed({"body": ["The request body must be a JSON object."]})
    return data


@dataclass(frozen=True, slots=True)
class FilePart:
    """An uploaded file read into memory (at most MAX_FILE_BYTES + 1 bytes)."""

    filename: str
    content_type: str | None
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


async def _materialise(value: str | UploadFile) -> str | FilePart | None:
    if isinstance(value, str):
        return value
    if not value.filename and not value.size:
        return None  # an empty file input
    return FilePart(value.filename or "", value.content_type, await value.read(MAX_FILE_BYTES + 1))


def _collect_form(items: list[tuple[str, str | FilePart | None]]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    indexed: dict[str, list[tuple[int, Any]]] = {}
    for key, value in items:
        match = _INDEXED.match(key)
        if match:
            bucket = indexed.setdefault(match["name"], [])
            index = int(match["index"]) if match["index"] else len(bucket)
            bucket.append((index, value))
        elif value is not None:
            plain[key] = value
    for name, values in indexed.items():
        plain[name] = [value for _, value in sorted(values, key=lambda pair: pair[0])]
    return plain


def upload(payload: dict[str, Any], field: str) -> FilePart | None:
    value = payload.pop(field, None)
    if value is None or value == "":
        return None
    if not isinstance(value, FilePart):
        raise ValidationFailed({field: [f"The {field} must be a file."]})
    return value


def validated(
    model: type[ModelT], payload: dict[str, Any], *, context: dict[str, Any] | None = None
) -> ModelT:
    """Validate with pydantic (`context` reaches its validators); failures become a
    Laravel-style 422."""
    try:
        return model.model_validate(payload, context=context)
    except ValidationError as exc:
        raise ValidationFailed(laravel_errors(exc.errors())) from exc


def body_doc(model: type[BaseModel], *, forms: bool = True) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads `model` with `read_payload` (JSON,
    and forms unless `forms` is off), so that the schema, its clients and the fuzzer see it."""
    schema = _inline(model.model_json_schema(), model.model_json_schema().get("$defs", {}))
    content = {"application/json": {"schema": schema}}
    if forms:
        content["application/x-www-form-urlencoded"] = {"schema": schema}
    return {"requestBody": {"content": content}}


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """The schema with its local `$defs` references replaced by the definitions."""
    if isinstance(schema, dict):
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {k: _inline(v, definitions) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    return schema


INT32_MAX = 2**31 - 1  # the largest value of an INTEGER column (PostgreSQL)
MAX_ID = 2**62  # ids beyond this cannot be stored (SQLite's INTEGER, PostgreSQL's BIGINT)
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
