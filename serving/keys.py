"""API keys with roles, stored hashed: in SQLite in the data directory, or in PostgreSQL
(schema ``banditkit_serving``) where every host sharing the database finds them.

A key is shown once, when created; the store keeps only its SHA-256 digest.
Keys are 256-bit random tokens, so a fast hash is enough: there is nothing to
brute-force that a slow password hash would protect (unlike a password).
Lookups go by digest, so no secret is ever compared byte by byte.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from banditkit.store.database import Database, open_database
from serving.meta import SCHEMA as META_SCHEMA

__all__ = ["DB_FILENAME", "MIGRATIONS", "POSTGRES_SCHEMA", "ROLES", "ApiKey", "KeyStore",
           "default_path", "hash_key", "open_server_database"]

#: Roles from least to most privileged. ``admin`` may do everything the others may.
ROLES = ("client", "marketer", "analyst", "admin")
#: The server's own SQLite file in the data directory (keys, policy name).
DB_FILENAME = "serving.sqlite3"
_PREFIX = "bk_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    revoked_at  REAL
);
""" + META_SCHEMA
#: The PostgreSQL schema of the server's tables (keys and metadata).
POSTGRES_SCHEMA = "banditkit_serving"
#: Its migrations, ``(name, SQL)`` in the order they apply; released ones never change.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001-keys-and-meta", """
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    created_at  DOUBLE PRECISION NOT NULL,
    revoked_at  DOUBLE PRECISION
);
CREATE TABLE service_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""),
)


@dataclass(frozen=True)
class ApiKey:
    """What the store knows about one key (never the key itself).

    Parameters
    ----------
    key_id : str
        Public identifier, also embedded in the key (``bk_<key_id>_<secret>``).
    role : str
        One of :data:`ROLES`.
    name : str
        Free text saying who holds the key.
    created_at : float
        Unix time of creation.
    revoked_at : float or None
        Unix time of revocation; None while the key is valid.
    """

    key_id: str
    role: str
    name: str
    created_at: float
    revoked_at: float | None = None


def default_path(data_dir: str | Path) -> Path:
    """Where the key store lives in ``data_dir`` unless configured otherwise."""
    return Path(data_dir) / DB_FILENAME


def open_server_database(data_dir: str | Path, *, database_url: str | None = None,
                         path: str | Path | None = None) -> Database:
    """The server's own tables (API keys, :class:`~serving.meta.MetaStore`'s values):
    ``path`` or ``<data_dir>/serving.sqlite3``, or with ``database_url`` the PostgreSQL
    schema :data:`POSTGRES_SCHEMA` that every host shares (``path`` is then unused)."""
    return open_database(path=path or default_path(data_dir), sqlite_schema=_SCHEMA,
                         database_url=database_url, schema=POSTGRES_SCHEMA,
                         migrations=MIGRATIONS)


def hash_key(key: str) -> str:
    """SHA-256 hex digest of ``key``, the only form the store keeps."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys (table ``api_keys``). Build it with :meth:`open`.

    Parameters
    ----------
    database : Database, default=None
        The server's tables (:func:`open_server_database`).
    path : path-like, default=None
        Instead of ``database``: a SQLite file, created with its tables on first use.
    """

    def __init__(self, *, database: Database | None = None,
                 path: str | Path | None = None) -> None:
        if (database is None) == (path is None):
            raise ValueError("KeyStore takes a database or a SQLite path, exactly one")
        self.database = database if database is not None else open_server_database(
            Path(path).parent, path=path)

    @classmethod
    def open(cls, data_dir: str | Path, *, database_url: str | None = None,
             path: str | Path | None = None) -> KeyStore:
        """The keys of a data directory (``serving.sqlite3``, or ``path``), or with
        ``database_url`` those every host sharing the PostgreSQL database reads."""
        return cls(database=open_server_database(data_dir, database_url=database_url,
                                                 path=path))

    def create(self, *, role: str, name: str = "") -> tuple[str, ApiKey]:
        """Create a key for ``role``.

        Parameters
        ----------
        role : str
            One of :data:`ROLES`.
        name : str, default=""
            Who or what holds the key.

        Returns
        -------
        key : str
            The secret, to hand to its holder; it cannot be recovered later.
        record : ApiKey
            What is stored.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
        key_id = secrets.token_hex(6)
        key = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id=key_id, role=role, name=name, created_at=time.time())
        with self.database.transaction() as db:
            db.execute("INSERT INTO api_keys (key_id, key_hash, role, name, created_at)"
                       " VALUES (?, ?, ?, ?, ?)",
                       (key_id, hash_key(key), role, name, record.created_at))
        return key, record

    def lookup(self, key: str) -> ApiKey | None:
        """The valid (not revoked) key record matching ``key``, or None."""
        if not key.startswith(_PREFIX) or len(key) > 200:
            return None
        with self.database.read() as db:
            row = db.execute("SELECT key_id, role, name, created_at, revoked_at FROM api_keys"
                             " WHERE key_hash = ? AND revoked_at IS NULL",
                             (hash_key(key),)).fetchone()
        return ApiKey(*row) if row else None

    def list(self) -> list[ApiKey]:
        """Every key record, oldest first, revoked ones included."""
        with self.database.read() as db:
            rows = db.execute("SELECT key_id, role, name, created_at, revoked_at FROM api_keys"
                              " ORDER BY created_at").fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke the key with ``key_id``; False if no valid key has that id."""
        with self.database.transaction() as db:
            revoked = db.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? "
                                 "AND revoked_at IS NULL", (time.time(), key_id)).rowcount
        return revoked == 1

    def close(self) -> None:
        """Close the store's connections (the next use opens them again)."""
        self.database.close()
