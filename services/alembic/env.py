"""How Alembic reaches the course database: one schema per notebook (its tables and its alembic_version), a
lock_timeout on every migration's connection so DDL that waits for a lock fails fast instead of queueing every
reader behind it, and one transaction per revision (PostgreSQL's DDL is transactional).

Settings, from the Python API (Config.attributes) or the command line (-x key=value):
    schema        the notebook's schema (required)
    lock_timeout  how long DDL may wait for a lock, default 2s
    url           a SQLAlchemy URL; default: the course's PostgreSQL endpoint with psycopg 3
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import URL

from infracourse import config as course

settings = {**context.get_x_argument(as_dictionary=True), **context.config.attributes}
schema = settings.get("schema")
if not schema:
    raise SystemExit("say which schema to migrate: -x schema=NAME (or Config.attributes['schema'])")
lock_timeout = settings.get("lock_timeout", "2s")
ep = course.endpoint("postgres")
url = settings.get("url") or URL.create("postgresql+psycopg", ep.user, ep.password, ep.host, ep.port, ep.database)
quoted = '"' + schema.replace('"', '""') + '"'
options = {"version_table_schema": schema, "transaction_per_migration": True}

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, **options)
    with context.begin_transaction():
        context.execute(f"SET search_path TO {quoted}")
        context.execute(f"SET lock_timeout = '{lock_timeout}'")
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text(f"SET search_path TO {quoted}"))
        connection.execute(text("SELECT set_config('lock_timeout', :t, false)"), {"t": lock_timeout})
        connection.commit()
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
