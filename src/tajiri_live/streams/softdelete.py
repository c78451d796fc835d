"""Soft-deleted streams are absent from every read.

A stream that moved money cannot be deleted outright (its gifts and ledger entries point at
it and must stay whole), so it gets `deleted_at` instead. Rather than trusting every query
to remember that, every ORM statement over `live_streams` (selects, `session.get`, joins,
ORM updates and deletes) is given the condition `deleted_at IS NULL` here, once for the
process. A statement that must see deleted streams says `include_deleted=True` in its
execution options.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from tajiri_live.streams.models import LiveStream

INCLUDE_DELETED = "include_deleted"


def hide_deleted_streams() -> None:
    """Install the condition on every session of the process (idempotent)."""
    if not event.contains(Session, "do_orm_execute", _leave_out_deleted):
        event.listen(Session, "do_orm_execute", _leave_out_deleted)


def _leave_out_deleted(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return
    if state.execution_options.get(INCLUDE_DELETED, False):
        return
    state.statement = state.statement.options(
        with_loader_criteria(LiveStream, lambda cls: cls.deleted_at.is_(None), include_aliases=True)
    )
