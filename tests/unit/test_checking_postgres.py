"""The PostgreSQL part of the check harness: closing connections learner threads use, learner SQL run and
compared with a reference."""

from __future__ import annotations

import threading
import time

import psycopg

from infracourse import config, notebook
from infracourse.checking import CheckFailed, postgres


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


def _compare(got, expected):
    try:
        postgres.compare_rows(got, expected, columns=("country", "visits"), what="with n=2", rows_hint="GROUP BY",
                              order_hint="ORDER BY")
    except CheckFailed as exc:
        return str(exc), exc.hint
    return None


def test_compare_rows_names_the_first_difference():
    expected = [("US", 3), ("DE", 2)]
    assert _compare(expected, expected) is None
    assert _compare([], expected) == ("with n=2: the query returned no rows", "GROUP BY")
    assert _compare([("US",), ("DE",)], expected)[0] == ("with n=2: each row should have 2 columns "
                                                        "(country, visits), found 1")
    assert _compare([("US", 3), ("DE", 9)], expected) == (
        "with n=2: the rows are not right (2 rows, expected 2; 1 not expected, e.g. ('DE', 9); "
        "1 expected rows missing)", "GROUP BY")
    assert _compare([("DE", 2), ("US", 3)], expected) == ("with n=2: the rows are right but not in order",
                                                          "ORDER BY")


def test_learner_rows_reports_a_rejected_query_in_one_line():
    notebook.require("postgres")
    with psycopg.connect(config.postgres_dsn()) as conn:
        assert postgres.learner_rows(conn, "SELECT %(n)s::int + 1", {"n": 1}) == [(2,)]
        for query, message in [("SELEC 1", "PostgreSQL rejected the query: syntax error"),
                               ("SELECT %(m)s", "psycopg could not bind the parameter"), (42, "an SQL string")]:
            try:
                postgres.learner_rows(conn, query, {"n": 1})
            except CheckFailed as exc:
                assert message in str(exc) and "\n" not in str(exc)
            else:
                raise AssertionError(f"{query!r} was accepted")
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the failed query left no aborted transaction
