"""The `sql` storage plugin (SQLAlchemy 2: SQLite by default, PostgreSQL via psycopg 3; alembic migrations)."""

from .options import SqlOptions
from .store import SqlStorage

__all__ = ["SqlOptions", "SqlStorage"]
