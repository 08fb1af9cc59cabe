"""Alembic migrations of the arrears schema (run through arrears.store.migrate)."""
