"""API keys with roles, stored hashed in SQLite in the data directory.

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

from banditkit.store import ThreadConnections

__all__ = ["DB_FILENAME", "ROLES", "ApiKey", "KeyStore", "default_path", "hash_key"]

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
"""


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


def hash_key(key: str) -> str:
    """SHA-256 hex digest of ``key``, the only form the store keeps."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """API keys in a SQLite file (table ``api_keys``).

    Parameters
    ----------
    path : path-like
        The SQLite file; created with its table on first use.
    """

    def __init__(self, *, path: str | Path) -> None:
        self.path = path
        self._connections = ThreadConnections(path=path, schema=_SCHEMA)

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
        self._connections.get().execute(
            "INSERT INTO api_keys (key_id, key_hash, role, name, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (key_id, hash_key(key), role, name, record.created_at),
        )
        return key, record

    def lookup(self, key: str) -> ApiKey | None:
        """The valid (not revoked) key record matching ``key``, or None."""
        if not key.startswith(_PREFIX) or len(key) > 200:
            return None
        row = self._connections.get().execute(
            "SELECT key_id, role, name, created_at, revoked_at FROM api_keys"
            " WHERE key_hash = ? AND revoked_at IS NULL",
            (hash_key(key),),
        ).fetchone()
        return ApiKey(*row) if row else None

    def list(self) -> list[ApiKey]:
        """Every key record, oldest first, revoked ones included."""
        rows = self._connections.get().execute(
            "SELECT key_id, role, name, created_at, revoked_at FROM api_keys"
            " ORDER BY created_at"
        ).fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke the key with ``key_id``; False if no valid key has that id."""
        cursor = self._connections.get().execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return cursor.rowcount == 1
