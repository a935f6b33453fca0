"""The shop the caching lessons query: products and a few hundred thousand orders, the same on every run.

    shop_data.create(conn)   # in the notebook's schema (conn from ns.postgres_dsn())

Values come from arithmetic on the row number rather than random(), so every run, machine and
PostgreSQL version gets exactly the same rows and the same reports.
"""

from __future__ import annotations

import psycopg

CATEGORIES = (
    "audio", "baby", "beauty", "books", "camera", "food", "games", "garden", "health", "home",
    "jewelry", "kitchen", "music", "office", "outdoor", "pets", "shoes", "sports", "tools", "toys",
)
PRODUCTS = 2_000


def create(conn: psycopg.Connection, orders: int = 300_000) -> dict[str, int]:
    """Create and fill `products` and `orders` (no index on the order columns: reports scan); row counts."""
    conn.execute("""
        CREATE TABLE products (
            product_id int PRIMARY KEY,
            name text NOT NULL,
            category text NOT NULL,
            price numeric(10, 2) NOT NULL,
            views bigint NOT NULL DEFAULT 0
        )""")
    conn.execute(
        """
        INSERT INTO products (product_id, name, category, price)
        SELECT p, (%(categories)s::text[])[1 + p %% 20] || '-' || lpad(p::text, 4, '0'),
               (%(categories)s::text[])[1 + p %% 20], 5 + (p * 37 %% 9500) / 100.0
        FROM generate_series(1, %(products)s) AS p""",
        {"categories": list(CATEGORIES), "products": PRODUCTS},
    )
    conn.execute("""
        CREATE TABLE orders (
            order_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            product_id int NOT NULL REFERENCES products,
            quantity int NOT NULL,
            amount numeric(12, 2) NOT NULL,
            ordered_at timestamptz NOT NULL
        )""")
    # Popular products get more orders: product = 1 + (g^2 mod big prime) mod PRODUCTS is lumpy enough.
    conn.execute(
        """
        INSERT INTO orders (product_id, quantity, amount, ordered_at)
        SELECT s.p, s.q, s.q * pr.price, timestamptz '2025-01-01 00:00+00' + (g %% 525600) * interval '1 minute'
        FROM (SELECT g, 1 + ((g::bigint * g) %% 1000003) %% %(products)s AS p, 1 + g %% 3 AS q
              FROM generate_series(1, %(orders)s) AS g) AS s
        JOIN products AS pr ON pr.product_id = s.p""",
        {"products": PRODUCTS, "orders": orders},
    )
    conn.execute("ANALYZE products, orders")
    return {
        "products": conn.execute("SELECT count(*) FROM products").fetchone()[0],
        "orders": conn.execute("SELECT count(*) FROM orders").fetchone()[0],
    }
