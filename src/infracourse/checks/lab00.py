"""Checks of labs/00_start_here.ipynb: one exercise against PostgreSQL, one against Redis."""

from __future__ import annotations

import psycopg

from infracourse.checking import exercise, expect, postgres, time_limit

LIMIT_S = 10  # for one call of learner code: a loop that never ends gets a message, not a hung notebook


@exercise("0", "Warm-up: add two numbers", points=0)
def add(fn) -> None:
    for a, b in [(2, 3), (-1, 1), (10, 0)]:
        got = time_limit.call(LIMIT_S, fn, a, b)
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
    postgres.expect_columns(conn, query, ("country", "visits"))
    return f"{len(got)} countries"


@exercise("2", "Count a visit with an expiry (Redis)")
def count_visit(fn, r, key_for) -> str:
    user = "checker"
    key = key_for(user)
    r.delete(key)
    for expected in (1, 2, 3):
        got = time_limit.call(LIMIT_S, fn, r, user)
        expect(int(got) == expected, f"call {expected} returned {got!r}, expected {expected}",
               hint="INCR returns the new value")
    stored = r.get(key)
    expect(stored is not None, f"nothing is stored at {key!r}", hint="use the key built by key_for(user)")
    ttl = r.ttl(key)
    expect(ttl > 0, "the counter never expires", hint="give the key a time to live with EXPIRE")
    expect(ttl <= 60, f"the counter lives {ttl} s; the exercise asks for at most 60 s")
    expect(ttl >= 55, f"the counter lives {ttl} s; the exercise asks for 60 s", hint="EXPIRE key 60")
    r.expire(key, 5)  # as if the last visit were 55 s ago: the next visit must restart the 60 s
    time_limit.call(LIMIT_S, fn, r, user)
    refreshed = r.ttl(key)
    r.delete(key)
    expect(refreshed >= 55, f"a visit 55 s after the previous one left the counter {refreshed} s to live",
           hint="set the expiry on every visit, not only the first: 60 s after the LAST visit")
    return f"TTL {ttl} s, renewed on every visit"
