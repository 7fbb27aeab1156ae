"""Alembic migration scripts of the `sql` storage; run them with `SqlStorage.migrate()` (no alembic.ini needed)."""
