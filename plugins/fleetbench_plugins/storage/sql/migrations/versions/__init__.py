"""One module per schema revision; alembic loads them by path (this file is skipped)."""
