"""What the PostgreSQL labs' checks share: a clean transaction state, named fixture tables, a learner's SQL run
and compared with a reference query, and closing connections that learner threads may still be using."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg

from infracourse.checking.exercise import expect


def ready(conn: psycopg.Connection) -> None:
    """Leave a failed or open transaction the learner's code may have left behind."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()


def load(conn: psycopg.Connection, fixtures: Mapping[str, str], *tables: str) -> None:
    """(Re)create TABLES from FIXTURES (name -> DROP/CREATE/INSERT script) in one transaction."""
    ready(conn)
    with conn.transaction():
        conn.execute("SET LOCAL client_min_messages = warning")
        for table in tables:
            conn.execute(fixtures[table])


def close_when_idle(*conns: psycopg.Connection, wait_s: float = 15) -> None:
    """Close connections that learner code in other threads may still be using. Closing one while a thread is
    inside a query frees it under that thread and crashes the process, so wait for its lock; a connection
    still busy after WAIT_S is left open rather than risked."""
    for c in conns:
        if c.lock.acquire(timeout=wait_s):
            try:
                c.close()
            finally:
                c.lock.release()


def learner_rows(conn: psycopg.Connection, query: object, params: Mapping[str, object] | None = None) -> list[tuple]:
    """The rows of the learner's SQL text QUERY; the check fails in one line if it is not SQL text, or if
    PostgreSQL rejects it (a missing or misnamed placeholder is named as such)."""
    expect(isinstance(query, str) and query.strip(), "the answer should be an SQL string")
    ready(conn)
    try:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]
    except (psycopg.Error, TypeError) as exc:
        ready(conn)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if params and ("placeholder" in text or "parameter" in text):
            expect(False, f"psycopg could not bind the parameter ({text})",
                   hint=f"use the named placeholder{'s' if len(params) > 1 else ''} "
                        + ", ".join(f"%({k})s" for k in params))
        expect(False, f"PostgreSQL rejected the query: {text}")
    return []


def expect_columns(conn: psycopg.Connection, query: str, columns: Sequence[str],
                   params: Mapping[str, object] | None = None) -> None:
    """Fail unless the learner's QUERY (already accepted by learner_rows) names its result columns COLUMNS, in
    that order: an exercise that says "Columns: a, b" means those names."""
    ready(conn)
    try:
        names = [c.name for c in conn.execute(query, params).description or []]
    finally:
        ready(conn)
    expect(names == list(columns), f"the result's columns are {', '.join(names) or 'none'}; the exercise asks for "
           f"{', '.join(columns)}", hint="name each column with AS, in the order asked")


def reference_rows(conn: psycopg.Connection, query: str, params: Mapping[str, object] | None = None) -> list[tuple]:
    return [tuple(r) for r in conn.execute(query, params).fetchall()]


def compare_rows(got: list[tuple], expected: list[tuple], *, columns: Sequence[str], what: str = "",
                 rows_hint: str = "", order_hint: str = "") -> None:
    """Fail unless GOT equals EXPECTED, naming the first difference: the number of columns, which rows are
    missing or extra (counts, and one row of the learner's own), or only the order."""
    prefix = f"{what}: " if what else ""
    expect(got, f"{prefix}the query returned no rows", hint=rows_hint)
    widths = sorted({len(r) for r in got})
    expect(widths == [len(columns)], f"{prefix}each row should have {len(columns)} columns "
           f"({', '.join(columns)}), found {' or '.join(map(str, widths))}")
    extra = [r for r in got if r not in expected]
    missing = [r for r in expected if r not in got]
    if extra or missing or sorted(got, key=repr) != sorted(expected, key=repr):
        found = f"{len(got)} rows, expected {len(expected)}"
        if extra:
            found += f"; {len(extra)} not expected, e.g. {extra[0]!r}"
        if missing:
            found += f"; {len(missing)} expected rows missing"
        expect(False, f"{prefix}the rows are not right ({found})", hint=rows_hint)
    expect(got == expected, f"{prefix}the rows are right but not in order", hint=order_hint)
