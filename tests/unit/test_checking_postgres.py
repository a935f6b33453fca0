"""postgres.close_when_idle: a connection another thread is using is closed only after its query ends."""

from __future__ import annotations

import threading
import time

import psycopg

from infracourse import config, notebook
from infracourse.checking import postgres


def test_close_when_idle_waits_for_the_query_running_in_another_thread():
    notebook.require("postgres")
    conn = psycopg.connect(config.postgres_dsn(), autocommit=True)
    finished: list[object] = []
    worker = threading.Thread(target=lambda: finished.append(conn.execute("SELECT pg_sleep(0.5), 42").fetchone()[1]))
    worker.start()
    time.sleep(0.1)  # the worker is inside its query now
    postgres.close_when_idle(conn)
    worker.join(5)
    assert finished == [42] and conn.closed


def test_close_when_idle_leaves_a_connection_busy_for_too_long_open():
    notebook.require("postgres")
    conn = psycopg.connect(config.postgres_dsn(), autocommit=True)
    worker = threading.Thread(target=lambda: conn.execute("SELECT pg_sleep(1)"))
    worker.start()
    time.sleep(0.1)
    postgres.close_when_idle(conn, wait_s=0.2)
    assert not conn.closed
    worker.join(5)
    conn.close()
