"""Postgres: embedded server, connection pool, migrations."""
