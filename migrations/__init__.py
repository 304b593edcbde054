"""Alembic migrations: they own the schema. Apply with `madoguchi db upgrade`."""
