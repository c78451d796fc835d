"""The error envelope: every failure is `{"success": false, "message": ...}`; 422s add `errors`."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from tajiri_live.core.availability import (
    CONNECTION_ERRORS,
    DATABASE_ERRORS,
    RETRY_AFTER_SECONDS,
    dependency_of,
    unavailable_message,
)
from tajiri_live.core.clienttime import OUT_OF_RANGE as DATE_OUT_OF_RANGE
from tajiri_live.core.db import RowGone
from tajiri_live.core.text import ERROR_TYPE as CONTROL_CHARACTERS

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An expected failure with a status code, a readable message and optional extra fields."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


class ValidationFailed(ApiError):
    """A 422 with Laravel-style `errors`: field -> list of readable messages."""

    def __init__(self, errors: Mapping[str, Sequence[str]], message: str | None = None) -> None:
        super().__init__(
            422, message or summary(errors), errors={k: list(v) for k, v in errors.items()}
        )


def summary(errors: Mapping[str, Sequence[str]]) -> str:
    """Laravel's message: the first problem, and how many more there are."""
    messages = [m for field_messages in errors.values() for m in field_messages]
    if not messages:
        return "The given data was invalid."
    more = len(messages) - 1
    if more == 0:
        return messages[0]
    return f"{messages[0]} (and {more} more error{'s' if more > 1 else ''})"


def not_found(what: str = "Stream") -> ApiError:
    return ApiError(404, f"{what} not found.")


def forbidden(message: str = "This action is unauthorized.") -> ApiError:
    return ApiError(403, message)


def _field_name(loc: Sequence[Any]) -> str:
    if len(loc) > 1 and loc[0] == "header":  # named as HTTP writes it: `Idempotency-Key`
        return "-".join(word.capitalize() for word in str(loc[1]).split("-"))
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "request"


def _readable(error: Mapping[str, Any]) -> str:
    field = _field_name(error.get("loc", ())).replace("_", " ")
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    longest = ctx.get("max_length")
    messages = {
        "missing": f"The {field} field is required.",
        "string_too_short": f"The {field} must be at least {ctx.get('min_length')} characters.",
        "string_too_long": f"The {field} may not be greater than {longest} characters.",
        "bool_parsing": f"The {field} field must be true or false.",
        "bool_type": f"The {field} field must be true or false.",
        "int_parsing": f"The {field} must be an integer.",
        "int_type": f"The {field} must be an integer.",
        "greater_than_equal": f"The {field} must be at least {ctx.get('ge')}.",
        "less_than_equal": f"The {field} may not be greater than {ctx.get('le')}.",
        "literal_error": f"The selected {field} is invalid. Allowed: {ctx.get('expected')}.",
        "enum": f"The selected {field} is invalid. Allowed: {ctx.get('expected')}.",
        "datetime_parsing": f"The {field} is not a valid date.",
        "datetime_from_date_parsing": f"The {field} is not a valid date.",
        "datetime_type": f"The {field} is not a valid date.",
        DATE_OUT_OF_RANGE: f"The {field} is not a date that can be stored.",
        "string_type": f"The {field} must be a string.",
        "list_type": f"The {field} must be an array.",
        "json_invalid": "The request body is not valid JSON.",
        "model_attributes_type": "The request body must be a JSON object.",
        "dict_type": "The request body must be a JSON object.",
        CONTROL_CHARACTERS: f"The {field} must not contain control characters.",
    }
    if kind in messages:
        return messages[kind]
    if kind in ("too_short", "too_long"):
        # Constraints on a string typed `Text` are checked as lengths after its validator.
        unit = "characters" if isinstance(error.get("input"), str) else "items"
        if kind == "too_short":
            return f"The {field} must be at least {ctx.get('min_length')} {unit}."
        return f"The {field} may not be greater than {longest} {unit}."
    text = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return text if text[:1].isupper() else f"The {field} is invalid: {text}."


def laravel_errors(errors: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for error in errors:
        out.setdefault(_field_name(error.get("loc", ())), []).append(_readable(error))
    return out


def _envelope(
    status_code: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "message": message, **extra},
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


# What a 422 really looks like (FastAPI would document its own `detail` list).
VALIDATION_ENVELOPE: dict[str, Any] = {
    "title": "ValidationFailed",
    "type": "object",
    "required": ["success", "message", "errors"],
    "properties": {
        "success": {"type": "boolean", "const": False},
        "message": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def document_envelopes(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the 422 envelope this API answers."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.get("components", {}).get("schemas", {})["HTTPValidationError"] = (
                VALIDATION_ENVELOPE
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _envelope(exc.status_code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = laravel_errors(exc.errors())
        return _envelope(422, summary(errors), errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "The requested resource was not found."
        return _envelope(exc.status_code, message, exc.headers)

    @app.exception_handler(StaleDataError)
    async def _changed_meanwhile(_: Request, exc: StaleDataError) -> JSONResponse:
        # e.g. an edit racing a delete of the same row: the edit found nothing to change
        return _envelope(409, "The resource was changed or removed meanwhile; reload it.")

    @app.exception_handler(RowGone)
    @app.exception_handler(ObjectDeletedError)
    async def _gone_meanwhile(_: Request, exc: Exception) -> JSONResponse:
        # e.g. a start racing a delete of the same stream: the row is no more
        return _envelope(404, "The resource was removed meanwhile.")

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        # A constraint a concurrent request won; the known races are settled where they
        # happen (upserts), this keeps any other one a 409 instead of a 500.
        log.warning("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        return _envelope(409, "A concurrent request changed this meanwhile; try again.")

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> Response:
        # The client hung up while its body was read: nobody to answer, nothing went wrong.
        return Response(status_code=499)

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        # Redis or the database cannot be reached: the client should retry, nothing broke.
        dependency = dependency_of(exc) or "a backing service"
        log.warning("%s unavailable: %s", dependency, type(exc).__name__)
        return _envelope(
            503,
            unavailable_message(dependency),
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
            retry_after=RETRY_AFTER_SECONDS,
        )

    for kind in (RedisError, *DATABASE_ERRORS, *CONNECTION_ERRORS):
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(DBAPIError)
    async def _driver_error(request: Request, exc: Exception) -> JSONResponse:
        # asyncpg reports a connection lost mid-statement as a plain driver error: the
        # database is away all the same. Any other driver error is a bug.
        if dependency_of(exc) is not None:
            return await _unavailable(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _envelope(500, "Server error.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _envelope(500, "Server error.")
