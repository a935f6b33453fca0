-- Run once in the course database, by docker-entrypoint-initdb.d (compose) or `course up` (native).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
