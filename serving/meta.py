"""Small named values the HTTP layer keeps beside the engine's settings.

Personalizer's policy has a ``name`` next to its arguments; the engine's
:class:`~banditkit.settings.LoopSettings` has no place for it (nor should it),
so the server stores it here, in its own SQLite file, shared by all workers.
"""

from __future__ import annotations

from pathlib import Path

from banditkit.store import ThreadConnections

__all__ = ["MetaStore"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS service_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


class MetaStore:
    """String values by key in a SQLite file (table ``service_meta``).

    Parameters
    ----------
    path : path-like
        The server's SQLite file (:data:`~serving.keys.DB_FILENAME`, beside the
        keys); ``service_meta`` is created on first use.
    """

    def __init__(self, *, path: str | Path) -> None:
        self.path = path
        self._connections = ThreadConnections(path=path, schema=_SCHEMA)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value stored under ``key``, or ``default``."""
        row = self._connections.get().execute(
            "SELECT value FROM service_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        self._connections.get().execute(
            "INSERT INTO service_meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
