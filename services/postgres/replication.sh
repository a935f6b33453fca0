#!/bin/sh
# Compose only (docker-entrypoint-initdb.d): let the read replica's container stream from this primary.
# Native mode adds its own line, for 127.0.0.1 only, when `course up` first copies the replica.
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
