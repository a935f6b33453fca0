"""Lab 00 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

from infracourse.checking import FAILED, PASSED
from infracourse.checks import lab00 as checks


def test_add_rejects_print_instead_of_return():
    result = checks.add(lambda a, b: print(a + b))
    assert result.status == FAILED and "returned None" in result.message and result.hint


def test_add_accepts_sum():
    assert checks.add(lambda a, b: a + b).status == PASSED


def _visits(conn):
    conn.execute("CREATE TABLE visits (id serial PRIMARY KEY, country text)")
    conn.execute("INSERT INTO visits (country) SELECT unnest(ARRAY['DE','DE','US','US','US','FR','BR','BR'])")


def test_visits_unsorted_fails_on_order(conn):
    _visits(conn)
    result = checks.visits_per_country("SELECT country, count(*) FROM visits GROUP BY country ORDER BY country", conn)
    assert result.status == FAILED and "order" in result.message


def test_visits_wrong_count_fails(conn):
    _visits(conn)
    result = checks.visits_per_country(
        "SELECT country, count(DISTINCT country) FROM visits GROUP BY country ORDER BY 2 DESC, 1", conn
    )
    assert result.status == FAILED and "counts" in result.message


def test_visits_sql_error_is_reported_short(conn):
    _visits(conn)
    result = checks.visits_per_country("SELEC country FROM visits", conn)
    assert result.status == FAILED and "rejected" in result.message


def test_visits_right_answer_passes(conn):
    _visits(conn)
    assert checks.visits_per_country(checks.EXPECTED_VISITS_SQL, conn).status == PASSED


def test_count_visit_without_expiry_fails(r, pg_ns):
    def no_ttl(client, user):
        return client.incr(pg_ns.key("visits", user))

    result = checks.count_visit(no_ttl, r, lambda user: pg_ns.key("visits", user))
    assert result.status == FAILED and "never expires" in result.message


def test_count_visit_wrong_key_fails(r, pg_ns):
    def wrong_key(client, user):
        count = client.incr(f"visits:{user}")
        client.expire(f"visits:{user}", 60)
        return count

    try:
        result = checks.count_visit(wrong_key, r, lambda user: pg_ns.key("visits", user))
    finally:
        r.delete("visits:checker")
    assert result.status == FAILED and "nothing is stored" in result.message


def test_count_visit_unsolved_is_not_done(r, pg_ns):
    def stub(client, user):
        raise NotImplementedError

    assert checks.count_visit(stub, r, lambda user: pg_ns.key("visits", user)).status == "not_done"
