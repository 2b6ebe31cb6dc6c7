"""The decision log: Vowpal Wabbit dsjson, one joined event per line (docs/architecture.md §3).

Lines are appended to date partitions, ``<root>/dt=YYYY-MM-DD/events.dsjson``,
a layout that object storage, Spark and ``vw --dsjson`` all read as is. Our own
fields live under the single key ``_banditkit``, which VW ignores.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Set
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from banditkit.dsjson import EXTRA_KEY, JoinedEvent, dsjson_context, parse_event
from banditkit.errors import InvalidInputError

_log = logging.getLogger(__name__)

__all__ = [
    "EXTRA_KEY",
    "EventLogWriter",
    "JoinedEvent",
    "dsjson_context",
    "iso_timestamp",
    "log_files",
    "parse_event",
    "parse_lines",
    "read_events",
]

PARTITION_FILE = "events.dsjson"
_BLOCK = 1 << 16  # bytes read at a time when reading a partition from its end


def iso_timestamp(unix_seconds: float) -> str:
    """UTC ISO-8601 with microseconds and a ``Z``, as Personalizer wrote it.

    Every decision is stamped, so the date and time of a second are formatted
    once (``_second_text``) and only the microseconds per call; they round as
    :meth:`datetime.fromtimestamp` does (half to even), so the text is the same.
    """
    fraction, second = math.modf(unix_seconds)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        micro, second = micro - 1_000_000, second + 1.0
    elif micro < 0:
        micro, second = micro + 1_000_000, second - 1.0
    return f"{_second_text(int(second))}.{micro:06d}Z"


@functools.lru_cache(maxsize=8)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).isoformat(timespec="seconds")[:-6]


class EventLogWriter:
    """Appends joined dsjson lines to date partitions under ``root``.

    A partition whose last line lacks its newline (its writer was killed
    mid-append) is repaired before the next append: the fragment is cut off
    and kept in ``rejects_dir`` with its reason, so that no later line is glued
    onto it. The lines of a killed learner's batch are written again from the
    store (:meth:`banditkit.loop.LoopEngine.process_due`).

    Parameters
    ----------
    root : path
        Folder of the partitions; created on first write.
    fsync : bool, default=True
        Flush each batch to disk before :meth:`append` returns, so an event is
        never marked joined in the store before its line is durable.
    rejects_dir : path, default=None
        Where cut-off fragments go, one JSON file each; ``<root>-rejects``
        beside ``root`` if None (outside the partitions that readers scan).
    """

    def __init__(self, *, root: Path, fsync: bool = True, rejects_dir: Path | None = None
                 ) -> None:
        self.root = root
        self.fsync = fsync
        self.rejects_dir = rejects_dir

    def partition(self, timestamp: str) -> Path:
        return Path(self.root) / f"dt={timestamp[:10]}" / PARTITION_FILE

    def append(self, lines: Iterable[tuple[str, str]]) -> list[Path]:
        """Append ``(timestamp, json_line)`` pairs; returns the files written."""
        by_day: dict[str, list[str]] = {}
        for timestamp, line in lines:
            by_day.setdefault(timestamp[:10], []).append(line)
        by_file = {self.partition(day): batch for day, batch in by_day.items()}
        for path, batch in by_file.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as handle:
                self._repair_tail(path, handle)
                handle.write(("\n".join(batch) + "\n").encode("utf-8"))
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
        return list(by_file)

    def _repair_tail(self, path: Path, handle: BinaryIO) -> None:
        """Cut a torn last line off ``path`` (open for appending as ``handle``)."""
        size = handle.seek(0, os.SEEK_END)
        if size == 0 or os.pread(handle.fileno(), 1, size - 1) == b"\n":
            return
        start = _last_line_start(handle.fileno(), size)
        fragment = os.pread(handle.fileno(), size - start, start)
        reason = "torn last line (its writer was killed mid-append); cut off before appending"
        rejects = Path(self.rejects_dir or Path(self.root).with_name(
            f"{Path(self.root).name}-rejects"))
        rejects.mkdir(parents=True, exist_ok=True)
        kept = rejects / f"{path.parent.name}-{size}-{uuid.uuid4().hex[:8]}.json"
        kept.write_text(json.dumps({"file": str(path), "offset": start, "reason": reason,
                                    "fragment": fragment.decode("utf-8", "replace")}) + "\n")
        os.truncate(handle.fileno(), start)
        handle.seek(start)
        _log.warning("%s: %s; the %d bytes are kept in %s", path, reason, size - start, kept)

    def event_ids_at_end(self, path: Path, candidates: Set[str]) -> set[str]:
        """Which of ``candidates`` the last lines of ``path`` hold, reading from the end.

        Reading stops at the first complete line (from the end) whose event is not
        a candidate: what a killed learner's batch left is the end of the file,
        so recovery reads that much, not the whole partition.
        """
        found: set[str] = set()
        if not path.exists():
            return found
        with open(path, "rb") as handle:
            for line in _lines_from_end(handle):
                try:
                    event_id = json.loads(line)["EventId"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn tail: the next append cuts it off
                if event_id not in candidates:
                    break
                found.add(event_id)
        return found


def _last_line_start(fd: int, size: int) -> int:
    """Offset just past the last newline before ``size`` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _lines_from_end(handle: BinaryIO) -> Iterator[bytes]:
    """The lines of a file, last first, read backwards in blocks."""
    end = handle.seek(0, os.SEEK_END)
    rest = b""
    while end > 0:
        start = max(0, end - _BLOCK)
        handle.seek(start)
        block = handle.read(end - start) + rest
        end = start
        lines = block.split(b"\n")
        rest = lines.pop(0) if end > 0 else b""
        for line in reversed(lines):
            if line.strip():
                yield line
    if rest.strip():
        yield rest


def log_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (searched recursively for ``*.dsjson``) in sorted order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.rglob("*.dsjson")))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInputError(f"log path does not exist: {path}")
    return files


def read_events(paths: Iterable[str | os.PathLike]) -> Iterator[JoinedEvent]:
    """Read joined single-slot events from dsjson files or folders.

    A last line without its newline is being appended by the learner right
    now: it is left for the next read, with a logged warning.

    Raises
    ------
    InvalidInputError
        Naming the file and line of the first line that is not a joined CB event;
        nothing is skipped silently.
    """
    for path in log_files(paths):
        with open(path, encoding="utf-8") as handle:
            yield from parse_lines(str(path), handle)


def parse_lines(name: str, lines: Iterable[str]) -> Iterator[JoinedEvent]:
    """The joined events of one dsjson file's lines (each with its newline), as
    :func:`read_events` reads them; ``name`` names the file in messages.

    Readers that get a file's lines elsewhere (Spark's, for a URI) share the rules.
    """
    for number, line in enumerate(lines, start=1):
        if not line.endswith("\n"):
            _log.warning("%s:%d: line still being written; not read", name, number)
            break
        if not line.strip():
            continue
        try:
            yield parse_event(json.loads(line))
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise InvalidInputError(f"{name}:{number}: not a joined dsjson event: "
                                    f"{error}") from None
