"""Times the client sends: without an offset they are wall-clock times in the client's zone.

The mobile app sends `DateTime.toIso8601String()` of a local time, which carries no offset
(`2026-12-24T20:00:00.000`). Such a time is read in `TAJIRI_CLIENT_TIMEZONE`; a time with an
offset (or `Z`) means exactly what it says. Either way it is stored and answered in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from tajiri_live.core.settings import Settings

CONTEXT_KEY = "client_timezone"
OUT_OF_RANGE = "datetime_out_of_range"  # the error type: core/errors.py words it per field
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=3660)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=3660)


def as_utc(moment: datetime, zone: tzinfo) -> datetime:
    """`moment` in UTC; a naive one is first read as a wall-clock time in `zone`.

    An ambiguous wall-clock time (a clock set back) is the earlier of its two moments; one
    that does not exist (a clock set forward) is read with the offset before the change."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def context(settings: Settings) -> dict[str, Any]:
    """The validation context that models with `ClientDateTime` fields need."""
    return {CONTEXT_KEY: settings.client_zone}


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _to_utc(value: datetime | None, info: ValidationInfo) -> datetime | None:
    if value is None:
        return None
    zone = (info.context or {}).get(CONTEXT_KEY)
    if not isinstance(zone, tzinfo):
        # A route that forgot the context would silently read local times as UTC.
        raise TypeError("a ClientDateTime was validated without the client's time zone")
    try:
        moment = as_utc(value, zone)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before the year 1 in UTC
        moment = None
    # A margin on both ends: later arithmetic (a key's lifetime, reminders) stays in range.
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise PydanticCustomError(OUT_OF_RANGE, "The date is out of range.")
    return moment


ClientDateTime = Annotated[
    datetime | None, BeforeValidator(_blank_to_none), AfterValidator(_to_utc)
]
"""An optional date and time from the client (blank is null), converted to UTC."""
