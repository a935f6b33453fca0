"""What the PostgreSQL labs' checks share: a clean transaction state and named fixture tables."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg


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
