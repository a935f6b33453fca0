"""Lab 00 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

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
