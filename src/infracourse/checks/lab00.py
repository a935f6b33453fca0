"""Checks of labs/00_start_here.ipynb: one exercise against PostgreSQL, one against Redis."""

from __future__ import annotations

import psycopg

from infracourse.checking import exercise, expect, postgres


@exercise("0", "Warm-up: add two numbers", points=0)
def add(fn) -> None:
    for a, b in [(2, 3), (-1, 1), (10, 0)]:
        got = fn(a, b)
        expect(got == a + b, f"add({a}, {b}) returned {got!r}", hint="return the sum, do not print it")


EXPECTED_VISITS_SQL = """
    SELECT country, count(*) AS visits FROM visits
    GROUP BY country ORDER BY visits DESC, country
"""


@exercise("1", "Visits per country (PostgreSQL)")
def visits_per_country(query: str, conn: psycopg.Connection) -> str:
    got = postgres.learner_rows(conn, query)
    postgres.compare_rows(got, postgres.reference_rows(conn, EXPECTED_VISITS_SQL), columns=("country", "visits"),
                          rows_hint="GROUP BY country and count(*) the rows of each group",
                          order_hint="most visits first; break ties by country name")
    return f"{len(got)} countries"


@exercise("2", "Count a visit with an expiry (Redis)")
def count_visit(fn, r, key_for) -> str:
    user = "checker"
    key = key_for(user)
    r.delete(key)
    for expected in (1, 2, 3):
        got = fn(r, user)
        expect(int(got) == expected, f"call {expected} returned {got!r}, expected {expected}",
               hint="INCR returns the new value")
    stored = r.get(key)
    expect(stored is not None, f"nothing is stored at {key!r}", hint="use the key built by key_for(user)")
    ttl = r.ttl(key)
    expect(ttl > 0, "the counter never expires", hint="give the key a time to live with EXPIRE")
    expect(ttl <= 60, f"the counter lives {ttl} s; the exercise asks for at most 60 s")
    r.delete(key)
    return f"TTL {ttl} s"
