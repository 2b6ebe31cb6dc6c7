"""Image bytes by content hash, in one folder of the data directory (docs/architecture.md §3).

The catalogue's rows name images by the SHA-256 of their bytes; the bytes
live here, at ``<folder>/<aa>/<sha256>``, each written atomically and synced
before it is named, so a reader never meets a partial image. With a catalogue
in PostgreSQL (:class:`StoredImages`) the bytes are rows of its
``image_bytes`` table, which every host reads, and the folder is this host's
cache of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from catalogue.records import check_content_hash

__all__ = ["ImageFiles", "StoredImages"]


class ImageFiles:
    """The image files of one catalogue.

    Parameters
    ----------
    folder : Path
        Where the files are stored by content hash.
    """

    def __init__(self, *, folder: Path) -> None:
        self.folder = folder

    def path(self, content_hash: str) -> Path:
        """Where the bytes of ``content_hash`` live (whether or not they exist)."""
        check_content_hash(content_hash)
        return self.folder / content_hash[:2] / content_hash

    def write(self, data: bytes) -> str:
        """Store bytes under their SHA-256, atomically; returns the hash."""
        content_hash = hashlib.sha256(data).hexdigest()
        path = self.path(content_hash)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise
        return content_hash

    def record(self, db: Any, content_hash: str, data: bytes) -> None:
        """Keep the bytes with the catalogue's rows, in the write transaction ``db`` that
        adds the ``images`` row (the file already holds them)."""

    def load(self, db: Any, content_hash: str) -> Path | None:
        """The file of a stored image, or None when it has none; ``db`` reads the rows."""
        path = self.path(content_hash)
        return path if path.is_file() else None

    def ensure(self, content_hash: str, data: bytes) -> None:
        """Write ``data`` again if its file is gone.

        A concurrent delete of the last other user may have removed the file
        between the caller's write and its commit; the row now says it is used.
        """
        if not self.path(content_hash).is_file():
            self.write(bytes(data))

    def unlink(self, hashes: Sequence[str]) -> None:
        """Remove the files of ``hashes`` (those already gone are skipped)."""
        for content_hash in hashes:
            with contextlib.suppress(FileNotFoundError):
                self.path(content_hash).unlink()


class StoredImages(ImageFiles):
    """Image bytes in the catalogue's database (table ``image_bytes``), ``folder`` being
    this host's cache: a host that never saw an upload writes the file from the row
    the first time it serves the image."""

    def record(self, db: Any, content_hash: str, data: bytes) -> None:
        db.execute("INSERT INTO image_bytes (content_hash, data) VALUES (?, ?) "
                   "ON CONFLICT DO NOTHING", (content_hash, bytes(data)))

    def load(self, db: Any, content_hash: str) -> Path | None:
        path = super().load(db, content_hash)
        if path is not None:
            return path
        row = db.execute("SELECT data FROM image_bytes WHERE content_hash = ?",
                         (content_hash,)).fetchone()
        if row is None:
            return None
        self.write(bytes(row[0]))
        return self.path(content_hash)
