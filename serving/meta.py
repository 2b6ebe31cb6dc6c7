"""Small named values the HTTP layer keeps beside the engine's settings.

Personalizer's policy has a ``name`` next to its arguments; the engine's
:class:`~banditkit.settings.LoopSettings` has no place for it (nor should it),
so the server stores it here, beside the API keys (:func:`serving.keys.open_server_database`:
the server's SQLite file, or the PostgreSQL schema every host shares).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from banditkit.store.database import Database

__all__ = ["SCHEMA", "MetaStore"]

#: The table, as SQLite creates it on each connection of the server's file.
SCHEMA = "CREATE TABLE IF NOT EXISTS service_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


class MetaStore:
    """String values by key (table ``service_meta``).

    Parameters
    ----------
    database : Database
        The server's tables, those of its :class:`~serving.keys.KeyStore`.
    """

    def __init__(self, *, database: Database) -> None:
        self.database = database

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value stored under ``key``, or ``default``."""
        with self.database.read() as db:
            row = db.execute("SELECT value FROM service_meta WHERE key = ?",
                             (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        with self.database.transaction() as db:
            db.execute("INSERT INTO service_meta (key, value) VALUES (?, ?)"
                       " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
