"""Options of the `sql` storage plugin. Importing this module never imports SQLAlchemy (plugin listing stays fast)."""

from __future__ import annotations

import dataclasses
import math
import re
from urllib.parse import urlsplit

from fleetbench.interfaces import option

# Back ends this plugin is tested against. A bare `postgresql://` URL means psycopg 3 here, not SQLAlchemy's default
# psycopg2, so the one driver we test is the one users get.
_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_SCHEME = re.compile(r"^([A-Za-z0-9+_-]+)://")


@dataclasses.dataclass
class SqlOptions:
    """`url`: SQLAlchemy URL (`sqlite:///path.db` or `postgresql://user@host/db`, which uses psycopg 3);
    `echo`: log every SQL statement; `busy_timeout_s`: how long a SQLite writer waits for another one's lock;
    `idle_transaction_timeout_s`: PostgreSQL ends a session of ours left idle inside a transaction this long (a worker
    stopped mid-transaction, SIGSTOP or Ctrl-Z, would otherwise hold its row locks, and every other worker of the plan,
    until continued; continued, it runs the transaction again on a new connection)."""

    url: str = option("sqlite:///fleetbench.db", affects_result=False)
    echo: bool = option(False, affects_result=False)
    busy_timeout_s: float = option(30.0, affects_result=False)
    idle_transaction_timeout_s: float = option(30.0, affects_result=False)

    def __post_init__(self) -> None:
        self.url = normalized_url(self.url)
        # SQLite keeps its busy timeout in a 32-bit number of milliseconds: a larger one silently became 0 (no wait).
        if not math.isfinite(self.busy_timeout_s) or not 0 <= self.busy_timeout_s <= 86400:
            raise ValueError(f"busy_timeout_s: must be from 0 to 86400 seconds, got {self.busy_timeout_s!r}")
        idle = self.idle_transaction_timeout_s
        if not math.isfinite(idle) or not 1 <= idle <= 86400:
            raise ValueError(f"idle_transaction_timeout_s: must be from 1 to 86400 seconds, got {idle!r}")

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"


def normalized_url(url: str) -> str:
    """The URL with its scheme mapped to the driver we use; ValueError naming `url` when it is not supported."""
    text = url.strip()
    match = _SCHEME.match(text)
    if match is None:
        raise ValueError(f"url: {_masked(text)!r} is not a database URL; e.g. sqlite:///fleetbench.db")
    scheme = match.group(1).lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"url: scheme {scheme!r} is not supported; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    rest = text[match.end() :]
    if _SCHEMES[scheme] == "sqlite" and rest in ("", "/", "/:memory:"):
        # Every pooled connection of an in-memory database would see its own empty database.
        raise ValueError("url: SQLite needs a file path (sqlite:///PATH); in-memory databases are not shared")
    if _SCHEMES[scheme] != "sqlite":
        _check_server_url(rest)
    return f"{_SCHEMES[scheme]}://{rest}"


def _check_server_url(rest: str) -> None:
    """A server URL names a database, and its port (if any) is a number; without a database psycopg would connect to
    the one named after the user, with the schema created there."""
    parts = urlsplit(f"db://{rest}")
    try:
        parts.port  # noqa: B018 - reading it is the check
    except ValueError:
        port = parts.netloc.rsplit(":", 1)[-1]
        raise ValueError(f"url: port {port!r} is not a number; e.g. postgresql://USER@HOST:5432/DB") from None
    if not parts.path.strip("/"):
        raise ValueError(
            f"url: {_masked('postgresql://' + rest)!r} names no database; write postgresql://USER@HOST:PORT/DB"
        )


def _masked(url: str) -> str:
    """The URL without a password, for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
