"""A batch of rows inserted as one array per column (PostgreSQL).

`INSERT ... SELECT FROM unnest(:a, :b, ...) WITH ORDINALITY ORDER BY ordinality` is one
statement whatever the batch's size. A multi-row VALUES list (SQLAlchemy's insertmanyvalues)
is a new statement for each new batch size, prepared again by the driver, and an
executemany sends a Bind and an Execute per row; both were visible in the writers' profiles.
Rows are produced in the batch's order, so identity values are assigned in that order too
(the assumption SQLAlchemy's own insertmanyvalues makes on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, Select, Table, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert


def array_insert(table: Table, columns: Sequence[str]) -> Insert:
    """The INSERT of `columns` from one array per column (`arrays()`); its `on_conflict_*`
    and `returning` are the caller's to add. Columns left out take the database's defaults,
    not SQLAlchemy's Python-side ones (a statement run through the driver, core/reads.py,
    would bind those as NULL)."""
    rows = (
        func.unnest(*(bindparam(_array(name), type_=ARRAY(table.c[name].type)) for name in columns))
        .table_valued(*(column(name, table.c[name].type) for name in columns), with_ordinality="n")
        .render_derived()
    )
    return pg_insert(table).from_select(
        list(columns),
        select(*(rows.c[name] for name in columns)).order_by(rows.c.n),
        include_defaults=False,
    )


def counting(statement: Any, key: Any) -> Select[Any]:
    """`statement` (with its `on_conflict_*`) as a SELECT of how many rows it wrote, which
    the reader's connections run on their own (`Reader.write`)."""
    return select(func.count()).select_from(statement.returning(key).cte("written"))


def arrays(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """`rows` as one list per column, for `array_insert`."""
    return {_array(name): [row[name] for row in rows] for name in columns}


def _array(column: str) -> str:
    # Not the column's own name: an UPDATE in the same statement binds those itself.
    return f"{column}_array"
