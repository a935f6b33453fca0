"""Lab 00 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

import threading

import pytest
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse.checks import lab00 as checks


def test_add_rejects_print_instead_of_return():
    assert_fails(checks.add(lambda a, b: print(a + b)), "returned None")


def test_add_accepts_sum():
    assert_passes(checks.add(lambda a, b: a + b))


@pytest.fixture
def visits(conn):
    conn.execute("CREATE TABLE visits (id serial PRIMARY KEY, country text)")
    conn.execute("INSERT INTO visits (country) SELECT unnest(ARRAY['DE','DE','US','US','US','FR','BR','BR'])")
    return conn


def test_visits_unsorted_fails_on_order(visits):
    query = "SELECT country, count(*) FROM visits GROUP BY country ORDER BY country"
    assert_fails(checks.visits_per_country(query, visits), "not in order")


def test_visits_wrong_count_fails(visits):
    query = "SELECT country, count(DISTINCT country) FROM visits GROUP BY country ORDER BY 2 DESC, 1"
    assert_fails(checks.visits_per_country(query, visits), "rows are not right")


def test_visits_sql_error_is_reported_short(visits):
    assert_fails(checks.visits_per_country("SELEC country FROM visits", visits), "rejected", hint=False)


def test_visits_right_answer_passes(visits):
    assert_passes(checks.visits_per_country(checks.EXPECTED_VISITS_SQL, visits))


@pytest.fixture
def key_for(pg_ns):
    return lambda user: pg_ns.key("visits", user)


def test_count_visit_without_expiry_fails(r, key_for):
    assert_fails(checks.count_visit(lambda client, user: client.incr(key_for(user)), r, key_for), "never expires")


def test_count_visit_wrong_key_fails(r, key_for):
    def wrong_key(client, user):
        count = client.incr(f"visits:{user}")
        client.expire(f"visits:{user}", 60)
        return count

    try:
        result = checks.count_visit(wrong_key, r, key_for)
    finally:
        r.delete("visits:checker")
    assert_fails(result, "nothing is stored")


def test_count_visit_unsolved_is_not_done(r, key_for):
    def stub(client, user):
        raise NotImplementedError

    assert_not_done(checks.count_visit(stub, r, key_for))


def test_visits_ties_not_by_country_fails(visits):
    query = "SELECT country, count(*) AS visits FROM visits GROUP BY country ORDER BY visits DESC, country DESC"
    assert_fails(checks.visits_per_country(query, visits), "not in order", in_hint=("ties",))


def test_visits_misnamed_column_fails(visits):
    query = "SELECT country, count(*) FROM visits GROUP BY country ORDER BY count(*) DESC, country"
    assert_fails(checks.visits_per_country(query, visits), "columns are country, count", "visits")


def test_count_visit_returning_the_old_count_fails(r, key_for):
    def old_count(client, user):
        before = int(client.get(key_for(user)) or 0)
        client.incr(key_for(user))
        client.expire(key_for(user), 60)
        return before

    assert_fails(checks.count_visit(old_count, r, key_for), "call 1 returned 0", in_hint=("new value",))


def test_count_visit_short_expiry_fails(r, key_for):
    def ten_seconds(client, user):
        count = client.incr(key_for(user))
        client.expire(key_for(user), 10)
        return count

    assert_fails(checks.count_visit(ten_seconds, r, key_for), "lives 10 s", "60 s")


def test_count_visit_expiry_set_only_on_first_visit_fails(r, key_for):
    def first_only(client, user):
        count = client.incr(key_for(user))
        if count == 1:
            client.expire(key_for(user), 60)
        return count

    assert_fails(checks.count_visit(first_only, r, key_for), "55 s after", in_hint=("LAST visit",))


def test_count_visit_reference_passes(r, key_for):
    def reference(client, user):
        with client.pipeline() as pipe:
            pipe.incr(key_for(user))
            pipe.expire(key_for(user), 60)
            count, _ = pipe.execute()
        return count

    assert_passes(checks.count_visit(reference, r, key_for))


REQUIREMENTS = {
    "1": {
        "returns one row per country: the country and its number of visits": "test_visits_wrong_count_fails",
        "most visits first": "test_visits_unsorted_fails_on_order",
        "(ties broken by country name)": "test_visits_ties_not_by_country_fails",
        "Columns: `country`, `visits`.": "test_visits_misnamed_column_fails",
    },
    "2": {
        "add one to the visit counter of `user`": "test_count_visit_returning_the_old_count_fails",
        "stored at the key `visit_key(user)`": "test_count_visit_wrong_key_fails",
        "make the counter expire 60 seconds": ("test_count_visit_without_expiry_fails",
                                               "test_count_visit_short_expiry_fails"),
        "after the last visit": "test_count_visit_expiry_set_only_on_first_visit_fails",
        "and return the new count": "test_count_visit_returning_the_old_count_fails",
    },
}


def test_count_visit_that_never_returns_is_cut_short(r, key_for, monkeypatch):
    monkeypatch.setattr(checks, "LIMIT_S", 1)
    stop = threading.Event()

    def spins(client, user):
        while not stop.is_set():
            stop.wait(0.01)

    try:
        result = checks.count_visit(spins, r, key_for)
    finally:
        stop.set()
    assert_fails(result, "did not return within 1 s")
