"""Batched writes that never drop good rows for one bad one.

A batch whose write fails with a *data* error (a constraint, a value the column cannot hold)
is split in halves and each half written again, down to single rows; a row that still fails
is quarantined: logged, counted per writer (`/metrics`: `tajiri_quarantined_rows_total`),
and left out. A row costs O(log n) extra writes, the batch still lands in a few statements.
Errors of the connection (the database is away) are not the rows' fault: they propagate, so
the caller can keep the batch for its next attempt.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import DataError, IntegrityError, StatementError

log = logging.getLogger(__name__)

Row = TypeVar("Row")

QUARANTINED: Counter[str] = Counter()  # writer name -> rows left out since the start


DATA_SQLSTATE_CLASSES = ("22", "23")  # data exception, integrity constraint violation
DEADLOCK_SQLSTATE = "40P01"
DRIVERS = frozenset({"asyncpg"})  # whose own errors run outside SQLAlchemy


def is_data_error(exc: BaseException) -> bool:
    """True when the rows are at fault, not the connection."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if not isinstance(exc, StatementError):
        # A statement run through the driver itself (core/reads.py): only its own error
        # for a value it could not encode, or PostgreSQL's SQLSTATE, says so.
        if isinstance(exc, UnicodeError | ValueError) and _from_driver(exc):
            return True
        return _sqlstate(exc)[:2] in DATA_SQLSTATE_CLASSES
    # The driver's own error: a value it could not encode, or PostgreSQL's SQLSTATE (some,
    # like NUL in text, reach SQLAlchemy only as a generic DBAPIError).
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, UnicodeError | ValueError | TypeError):
            return True
        if _sqlstate(cause)[:2] in DATA_SQLSTATE_CLASSES:
            return True
        cause = cause.__cause__
    return False


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL aborted the statement to break a lock cycle (it wrote nothing)."""
    cause: BaseException | None = exc.orig if isinstance(exc, StatementError) else exc
    return cause is not None and _sqlstate(cause) == DEADLOCK_SQLSTATE


def _sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else ""


def _from_driver(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in DRIVERS


async def write_in_halves(
    rows: Sequence[Row],
    write: Callable[[Sequence[Row]], Awaitable[None]],
    *,
    writer: str,
    describe: Callable[[Row], str] = repr,
) -> list[tuple[Row, Exception]]:
    """Write `rows` with `write` (one transaction per call); returns the quarantined rows
    with what their write raised. `write` must leave nothing behind when it raises."""
    if not rows:
        return []
    try:
        await write(rows)
        return []
    except Exception as exc:
        if not is_data_error(exc):
            raise
        if len(rows) == 1:
            QUARANTINED[writer] += 1
            log.warning(
                "%s: quarantined %s (%s: %s)",
                writer,
                describe(rows[0]),
                type(exc).__name__,
                str(exc).splitlines()[0][:200],
            )
            return [(rows[0], exc)]
    middle = len(rows) // 2
    first = await write_in_halves(rows[:middle], write, writer=writer, describe=describe)
    return first + await write_in_halves(rows[middle:], write, writer=writer, describe=describe)


def quarantine(writer: str, what: str, exc: BaseException) -> None:
    """Count and log one item a writer could not store (for writers that go item by item)."""
    QUARANTINED[writer] += 1
    log.warning(
        "%s: quarantined %s (%s: %s)",
        writer,
        what,
        type(exc).__name__,
        str(exc).splitlines()[0][:200] if str(exc) else "",
    )
