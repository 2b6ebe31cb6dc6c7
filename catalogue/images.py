"""Image bytes by content hash, in one folder of the data directory (docs/architecture.md §3).

The catalogue's rows name images by the SHA-256 of their bytes; the bytes
live here, at ``<folder>/<aa>/<sha256>``, each written atomically and synced
before it is named, so a reader never meets a partial image.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from catalogue.records import check_content_hash

__all__ = ["ImageFiles"]


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
