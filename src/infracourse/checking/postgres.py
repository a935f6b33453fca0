"""What the PostgreSQL labs' checks share: a clean transaction state, named fixture tables, and closing
connections that learner threads may still be using."""

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
