from infracourse.lessons import shop_data


def test_create_is_deterministic_and_reports_counts(conn):
    assert shop_data.create(conn, orders=5_000) == {"products": 2_000, "orders": 5_000}
    first = conn.execute("SELECT sum(amount), count(DISTINCT product_id) FROM orders").fetchone()
    categories = conn.execute("SELECT count(DISTINCT category) FROM products").fetchone()[0]
    conn.execute("DROP TABLE orders, products")
    shop_data.create(conn, orders=5_000)
    assert conn.execute("SELECT sum(amount), count(DISTINCT product_id) FROM orders").fetchone() == first
    assert categories == len(shop_data.CATEGORIES)
