"""Append-only per-process journals: how a decision becomes durable in microseconds.

A committed SQLite transaction per decision costs more than the decision
itself (``benchmarks/bench_loop.py``). Instead each process appends what it
records (decisions, rewards, activations) to its own journal file with one
``write`` per call; once ``write`` returns the bytes are in the kernel's page
cache, so a killed process loses nothing, the same guarantee as SQLite's WAL
with ``synchronous=NORMAL`` (``fsync=True`` adds power-loss durability at one
fsync per call). The learner, or any process that needs an event the store has
not seen yet, ingests the journals into the store in one transaction
(:meth:`banditkit.store.Store.ingest`).

Each writer holds an exclusive ``flock`` on its file for as long as it lives,
so a reader can tell a finished journal (lock free, everything read) from a
live one and delete it.

Line format (UTF-8, one record per line; JSON never contains a raw newline)::

    d <event id> <created_at> <deferred 0|1> <context_at or -> <tag or -> <decision JSON>
    r <event id> <received_at> <value>
    a <event id> <at>
    s <event id> <received_at> <value> <slot id>     (a reward of one slot of a row page)

An event id, tag or slot id is written as it is when it has no whitespace and
does not start with ``"`` (and a tag is not ``-``); otherwise as a JSON string.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["JournalLine", "JournalReader", "JournalWriter"]

_SUFFIX = ".journal"
_UNNAMED = ".new"  # a file its writer has not locked and named yet
# A writer keeps its file unnamed for microseconds; one older than this is empty
# and abandoned (its writer died in between).
_ABANDONED_SECONDS = 60.0
_PLAIN_ID = re.compile(r'[^\s"]\S*')
_DECODER = json.JSONDecoder()
# This process's id, renewed in a forked child: a writer compares it on every
# append, and ``os.getpid()`` is a system call.
_pid = os.getpid()


def _renew_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)


def encode_event_id(event_id: str) -> str:
    return event_id if _PLAIN_ID.fullmatch(event_id) else json.dumps(event_id)


def _encode_tag(tag: str | None) -> str:
    return "-" if tag is None else json.dumps(tag) if tag == "-" else encode_event_id(tag)


def _split_event_id(rest: str) -> tuple[str, str]:
    """The leading event id of ``rest`` and what follows it (without the space)."""
    if rest.startswith('"'):
        event_id, end = _DECODER.raw_decode(rest)
        return event_id, rest[end + 1:]
    event_id, _, tail = rest.partition(" ")
    return event_id, tail


class JournalLine(NamedTuple):
    """One parsed journal record.

    A named tuple: ingestion builds one per line, and a frozen dataclass costs
    five times as much to construct.
    """

    kind: str          # "d", "r", "a", "s", or "?" when unreadable
    event_id: str
    at: float
    deferred: bool = False
    value: float = 0.0
    payload: str = ""  # the decision JSON of "d", the slot id of "s", the line of "?"
    context_at: int | None = None
    tag: str | None = None


def parse_line(line: str) -> JournalLine:
    """The record of one line; an unreadable line (a torn or foreign write) is kind ``"?"``
    with the line as payload, for the store to keep aside rather than stall on."""
    try:
        return _parse(line)
    except (ValueError, IndexError):
        return JournalLine("?", "", 0.0, payload=line)


def _parse(line: str) -> JournalLine:
    kind = line[0]
    if kind == "d" and line[2] != '"':  # a plain event id: one split copies the payload once
        _, event_id, at, deferred, context_at, tag, payload = line.split(" ", 6)
        if tag[0] != '"':
            return JournalLine("d", event_id, float(at), deferred == "1", 0.0, payload,
                               None if context_at == "-" else int(context_at),
                               None if tag == "-" else tag)
    rest = line[2:]
    event_id, tail = _split_event_id(rest)
    if kind == "d":
        at, deferred, context_at, rest = tail.split(" ", 3)
        tag, payload = (None, rest[2:]) if rest.startswith("- ") else _split_event_id(rest)
        return JournalLine("d", event_id, float(at), deferred == "1", 0.0, payload,
                           None if context_at == "-" else int(context_at), tag)
    if kind == "r":
        at, value = tail.split(" ")
        return JournalLine("r", event_id, float(at), False, float(value))
    if kind == "a":
        return JournalLine("a", event_id, float(tail))
    if kind == "s":
        at, value, slot = tail.split(" ", 2)
        slot_id, rest = _split_event_id(slot)
        if rest:
            raise ValueError(f"text after the slot id: {rest!r}")
        return JournalLine("s", event_id, float(at), False, float(value), slot_id)
    raise ValueError(f"unknown journal record kind {kind!r}")


class JournalWriter:
    """This process's journal in ``folder``; reopened after a fork, rotated by size.

    Parameters
    ----------
    folder : path
    fsync : bool, default=False
        fsync after every append (survives power loss, costs a disk flush).
    max_bytes : int, default=64 MiB
        Start a new file past this size, so finished ones can be deleted.
    """

    def __init__(self, folder: Path, *, fsync: bool = False, max_bytes: int = 64 << 20) -> None:
        self.folder = folder
        self.fsync = fsync
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = -1
        self._size = 0

    def append(self, text: str) -> None:
        """Append whole lines (``text`` ends with a newline) with one ``write``."""
        data = text.encode("utf-8")
        with self._lock:
            if self._fd is None or self._pid != _pid or self._size >= self.max_bytes:
                self._open()
            written = os.write(self._fd, data)
            while written < len(data):  # a regular file writes all at once; be safe anyway
                written += os.write(self._fd, data[written:])
            self._size += len(data)
            if self.fsync:
                os.fsync(self._fd)

    def _open(self) -> None:
        if self._fd is not None:
            # Rotation: the finished file's lock goes with it. After a fork: the
            # child drops its copy, so the parent's file is freed when the parent is.
            os.close(self._fd)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex}"
        # Locked before it is named a journal: a reader that found it unlocked would
        # take it for finished and delete it, and every line written to it would be lost.
        unnamed = self.folder / f"{name}{_UNNAMED}"
        fd = os.open(unnamed, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(unnamed, self.folder / f"{name}{_SUFFIX}")
        self._fd, self._pid, self._size = fd, _pid, 0

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == _pid:
                os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class JournalChunk:
    """New complete lines of one journal file, and where reading stopped."""

    name: str
    lines: list[JournalLine]
    offset: int        # the next unread byte
    finished: bool     # its writer is gone and every line was read
    torn: str = ""     # a dead writer's unfinished last line, never to be completed


class JournalReader:
    """Reads what journal files gained since given offsets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        if not self.folder.exists():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.name.endswith(_SUFFIX))

    def read(self, names: Sequence[str], offsets: dict[str, int]) -> Iterator[JournalChunk]:
        """What the files ``names`` (from :meth:`names`) gained since ``offsets``."""
        for name in names:
            start = offsets.get(name, 0)
            try:
                handle = open(self.folder / name, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue
            with handle:
                # Test the writer's lock before reading: a writer gone now wrote its last line.
                writer_gone = _try_lock(handle.fileno())
                handle.seek(start)
                data = handle.read()
            end = data.rfind(b"\n") + 1
            lines = [parse_line(line) for line in data[:end].decode("utf-8").splitlines()]
            torn = ""
            if writer_gone and end < len(data):  # killed mid-write: the rest never comes
                torn, end = data[end:].decode("utf-8", "replace"), len(data)
            yield JournalChunk(name, lines, start + end, writer_gone, torn)

    def remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    def remove_abandoned(self) -> None:
        """Delete the unnamed files of writers that died before naming them."""
        if not self.folder.exists():
            return
        cutoff = time.time() - _ABANDONED_SECONDS
        for path in self.folder.glob(f"*{_UNNAMED}"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def decision_line(event_id: str, created_at: float, deferred: bool, decision: str,
                  context_at: int | None = None, tag: str | None = None) -> str:
    at = "-" if context_at is None else context_at
    return (f"d {encode_event_id(event_id)} {float(created_at)!r} {int(deferred)} {at} "
            f"{_encode_tag(tag)} {decision}\n")


def reward_line(event_id: str, received_at: float, value: float) -> str:
    return f"r {encode_event_id(event_id)} {float(received_at)!r} {float(value)!r}\n"


def slot_reward_line(event_id: str, received_at: float, slot_id: str, value: float) -> str:
    return (f"s {encode_event_id(event_id)} {float(received_at)!r} {float(value)!r} "
            f"{encode_event_id(slot_id)}\n")


def activation_line(event_id: str, at: float) -> str:
    return f"a {encode_event_id(event_id)} {float(at)!r}\n"
