"""The decision log as a Parquet table, the form analysts query with Spark SQL.

One row per joined dsjson event, in date partitions ``OUT/dt=YYYY-MM-DD/``
(the decision's ``Timestamp`` date, as the log's own partitions), one file per
source file (``part-NNNNN.parquet``, ``NNNNN`` the source's position in the
log), so the table's order is the log's: partitions in date order, then
source file, then line. Columns (:data:`SCHEMA`):

==========================  =====================================================
``event_id``, ``timestamp``  ``EventId`` and ``Timestamp`` as logged
``event_time``              the same instant as a UTC timestamp (null if unparsable)
``version``                 ``Version``
``model_version``           ``VWState.m``, the model that decided
``chosen_action``           ``_label_Action`` (1-based)
``chosen_index``            ``_labelIndex`` (0-based in ``_multi``)
``probability``             ``_label_probability``, the chosen action's propensity
``reward``                  minus ``_label_cost``
``ranked_actions``          ``a``: 1-based action ids in ranked order, chosen first
``ranked_probabilities``    ``p``, aligned with ``ranked_actions``
``action_ids``              the callers' action ids (``_banditkit.actionIds``)
``outcomes``                ``o``, JSON
``skip_learn``, ``deferred``  ``_skipLearn`` and ``DeferredAction`` (null when absent)
``context``                 ``c`` without ``_multi``: the shared namespaces, JSON
``action_features``         ``c._multi``: one namespaced object per action, JSON
``extra``                   ``_banditkit``, JSON
``other``                   every other top-level key, JSON (null when none)
==========================  =====================================================

Features stay JSON because a feature's value is a string (categorical) or a
number (numeric), a distinction a map column would lose; Spark SQL reads them
with ``from_json`` or ``get_json_object``. :func:`record_of_row` gives the
dsjson record back, every field of it (the round trip is tested), and
:func:`read_log_table` reads the table back as events through banditkit's
dsjson codec, so evaluation reads a table and a dsjson log alike.
:func:`ope.partitioned.write_log_table` converts a whole log, in process or
with Spark.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from banditkit.dsjson import EXTRA_KEY, JoinedEvent, parse_event
from banditkit.errors import InvalidInputError

__all__ = [
    "REQUIRED_COLUMNS",
    "SCHEMA",
    "TORN_LINE",
    "ConversionSummary",
    "check_log_table",
    "check_output_folder",
    "check_table_file",
    "convert_file",
    "read_log_table",
    "read_table_file",
    "record_of_row",
    "row_of_record",
    "table_rows",
]

SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("timestamp", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")),
    ("version", pa.string()),
    ("model_version", pa.string()),
    ("chosen_action", pa.int64()),
    ("chosen_index", pa.int64()),
    ("probability", pa.float64()),
    ("reward", pa.float64()),
    ("ranked_actions", pa.list_(pa.int64())),
    ("ranked_probabilities", pa.list_(pa.float64())),
    ("action_ids", pa.list_(pa.string())),
    ("outcomes", pa.string()),
    ("skip_learn", pa.bool_()),
    ("deferred", pa.bool_()),
    ("context", pa.string()),
    ("action_features", pa.string()),
    ("extra", pa.string()),
    ("other", pa.string()),
])
#: Columns an evaluation reads (the others are for analysts and the round trip).
REQUIRED_COLUMNS = ("event_id", "timestamp", "model_version", "chosen_action", "chosen_index",
                    "probability", "reward", "ranked_actions", "ranked_probabilities",
                    "skip_learn", "deferred", "context", "action_features", "extra", "other",
                    "version", "outcomes")
#: Reason counted when a file's last line has no newline (its writer is still appending).
TORN_LINE = "torn last line (no newline: still being written), not read"
_MAPPED = {"EventId", "Timestamp", "Version", "VWState", "_label_Action", "_labelIndex",
           "_label_probability", "_label_cost", "a", "p", "o", "_skipLearn", "DeferredAction",
           "c", EXTRA_KEY}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BATCH = 8192  # rows per Parquet write and read


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _event_time(timestamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(timestamp)
    except ValueError:
        return None


def row_of_record(record: dict) -> dict[str, Any]:
    """One joined dsjson record as a table row (the record must parse as a joined event).

    A key whose value does not have its column's type (a numeric ``EventId``,
    a ``VWState`` with more than ``m``) is kept as is under ``other`` too, so
    :func:`record_of_row` gives it back unchanged.
    """
    parse_event(record)  # the codec's own check: a joined single-decision event
    other = {key: value for key, value in record.items() if key not in _MAPPED}
    for key in ("EventId", "Timestamp", "Version"):
        if key in record and not isinstance(record[key], str):
            other[key] = record[key]
    state = record.get("VWState")
    if state is not None and (not isinstance(state, dict) or set(state) != {"m"}
                              or not isinstance(state["m"], str)):
        other["VWState"] = state
    for key in ("_skipLearn", "DeferredAction"):
        if key in record and not isinstance(record[key], bool):
            other[key] = record[key]
    shared = dict(record["c"])
    actions = shared.pop("_multi")
    extra = record.get(EXTRA_KEY)
    model = state.get("m") if isinstance(state, dict) else None
    skip, deferred = record.get("_skipLearn"), record.get("DeferredAction")
    return {
        "event_id": str(record["EventId"]),
        "timestamp": str(record["Timestamp"]),
        "event_time": _event_time(str(record["Timestamp"])),
        "version": None if record.get("Version") is None else str(record["Version"]),
        "model_version": None if model is None else str(model),
        "chosen_action": record.get("_label_Action"),
        "chosen_index": record["_labelIndex"],
        "probability": float(record["_label_probability"]),
        "reward": -float(record["_label_cost"]),
        "ranked_actions": [int(a) for a in record["a"]],
        "ranked_probabilities": [float(p) for p in record["p"]],
        "action_ids": None if not isinstance(extra, dict) or "actionIds" not in extra
        else [str(i) for i in extra["actionIds"]],
        "outcomes": None if "o" not in record else _json(record["o"]),
        "skip_learn": skip if isinstance(skip, bool) else None,
        "deferred": deferred if isinstance(deferred, bool) else None,
        "context": _json(shared),
        "action_features": _json(actions),
        "extra": None if extra is None else _json(extra),
        "other": _json(other) if other else None,
    }


def record_of_row(row: dict[str, Any]) -> dict:
    """The dsjson record a table row was made from (:func:`row_of_record` reversed)."""
    record: dict[str, Any] = {"EventId": row["event_id"], "Timestamp": row["timestamp"]}
    if row.get("version") is not None:
        record["Version"] = row["version"]
    if row.get("model_version") is not None:
        record["VWState"] = {"m": row["model_version"]}
    if row.get("chosen_action") is not None:
        record["_label_Action"] = row["chosen_action"]
    record["_labelIndex"] = row["chosen_index"]
    record["_label_probability"] = row["probability"]
    record["_label_cost"] = -row["reward"]
    record["a"] = list(row["ranked_actions"])
    record["p"] = list(row["ranked_probabilities"])
    if row.get("outcomes") is not None:
        record["o"] = json.loads(row["outcomes"])
    if row.get("skip_learn") is not None:
        record["_skipLearn"] = row["skip_learn"]
    if row.get("deferred") is not None:
        record["DeferredAction"] = row["deferred"]
    record["c"] = {**json.loads(row["context"]), "_multi": json.loads(row["action_features"])}
    if row.get("extra") is not None:
        record[EXTRA_KEY] = json.loads(row["extra"])
    if row.get("other") is not None:
        record.update(json.loads(row["other"]))
    return record


@dataclass
class ConversionSummary:
    """What a conversion wrote and what it did not read, with the reasons.

    Attributes
    ----------
    events : int
        Rows written.
    files : list of str
        Parquet files written.
    skipped_lines : Counter of str
        Lines not written, by reason (a torn last line is the only one: any
        other unreadable line is an error).
    ignored_files : dict of str to dict
        Files of the log's folders that are not dsjson, by reason, with a
        count and examples.
    """

    events: int = 0
    files: list[str] = field(default_factory=list)
    skipped_lines: Counter = field(default_factory=Counter)
    ignored_files: dict[str, dict[str, object]] = field(default_factory=dict)

    def merge(self, other: ConversionSummary) -> ConversionSummary:
        return ConversionSummary(events=self.events + other.events,
                                 files=sorted(self.files + other.files),
                                 skipped_lines=self.skipped_lines + other.skipped_lines,
                                 ignored_files={**self.ignored_files, **other.ignored_files})

    def to_dict(self) -> dict[str, object]:
        return {"events": self.events, "files": len(self.files),
                "partitions": len({Path(f).parent.name for f in self.files}),
                "skipped_lines": dict(self.skipped_lines),
                "ignored_files": self.ignored_files}


def table_rows(name: str, lines: Iterable[str], skipped: Counter
               ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(date, row)`` of each joined event among a dsjson file's ``lines``.

    Each line comes with its newline; a last line without one (its writer is
    still appending) is counted in ``skipped`` and not read. ``date`` is the
    ``Timestamp``'s, the partition the row belongs to.

    Raises
    ------
    InvalidInputError
        Naming the file ``name`` and the line of a line that is not a joined
        event, or whose ``Timestamp`` does not start with a date.
    """
    for number, line in enumerate(lines, start=1):
        if not line.endswith("\n"):
            skipped[TORN_LINE] += 1
            break
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            row = row_of_record(record)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise InvalidInputError(f"{name}:{number}: not a joined dsjson event: "
                                    f"{error}") from None
        day = row["timestamp"][:10]
        if not _DATE.fullmatch(day):
            raise InvalidInputError(f"{name}:{number}: Timestamp {record['Timestamp']!r} "
                                    f"does not start with a date YYYY-MM-DD")
        yield day, row


def convert_file(index: int, path: str | os.PathLike, out: str | os.PathLike
                 ) -> ConversionSummary:
    """Write one dsjson file's events as ``out/dt=DATE/part-{index:05d}.parquet`` files.

    Memory is one batch of rows per date the file holds.

    Raises
    ------
    InvalidInputError
        As :func:`table_rows`.
    """
    summary = ConversionSummary()
    writers: dict[str, pq.ParquetWriter] = {}
    pending: dict[str, list[dict]] = {}

    def flush(day: str) -> None:
        if day not in writers:
            target = Path(out) / f"dt={day}" / f"part-{index:05d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            writers[day] = pq.ParquetWriter(target, SCHEMA)
            summary.files.append(str(target))
        writers[day].write_table(pa.Table.from_pylist(pending.pop(day), schema=SCHEMA))

    try:
        with open(path, encoding="utf-8") as handle:
            for day, row in table_rows(str(path), handle, summary.skipped_lines):
                pending.setdefault(day, []).append(row)
                summary.events += 1
                if len(pending[day]) >= _BATCH:
                    flush(day)
        for day in list(pending):
            flush(day)
    finally:
        for writer in writers.values():
            writer.close()
    summary.files.sort()
    return summary


def check_output_folder(out: str | os.PathLike) -> Path:
    """``out`` as a Path, refused when it already holds files (tables are never mixed)."""
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInputError(f"out must be a new or empty folder, got {folder}, which "
                                f"already holds files")
    return folder


def check_log_table(files: Iterable[str | os.PathLike]) -> None:
    """Refuse Parquet files that lack a column evaluation reads, naming them.

    Reads only each file's footer.
    """
    for path in files:
        check_table_file(path, str(path))


def check_table_file(source: str | os.PathLike | BinaryIO, name: str) -> None:
    """:func:`check_log_table` of one file, a path or an open file named ``name``."""
    try:
        names = set(pq.read_schema(source).names)
    except (OSError, pa.ArrowException) as error:
        raise InvalidInputError(f"{name}: not a readable Parquet file: {error}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InvalidInputError(f"{name}: the log table lacks columns {missing} (written "
                                f"by 'banditkit logs to-parquet'?); it has {sorted(names)}")


def read_log_table(files: Iterable[str | os.PathLike]) -> Iterator[JoinedEvent]:
    """The events of log-table files, in order, through banditkit's dsjson codec.

    Raises
    ------
    InvalidInputError
        Naming the file and row of a row that is not a joined event.
    """
    for path in files:
        yield from read_table_file(path, str(path))


def read_table_file(source: str | os.PathLike | BinaryIO, name: str) -> Iterator[JoinedEvent]:
    """The events of one log-table file, a path or an open file named ``name``
    (the bytes Spark read at a URI)."""
    number = 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=_BATCH,
                                                     columns=list(REQUIRED_COLUMNS)):
        for row in batch.to_pylist():
            number += 1
            try:
                if row["reward"] is None or not math.isfinite(row["reward"]):
                    raise ValueError(f"reward must be a finite number, got {row['reward']}")
                event = parse_event(record_of_row(row))
            except (ValueError, KeyError, TypeError, IndexError) as error:
                raise InvalidInputError(f"{name}: row {number}: not a joined event: "
                                        f"{error}") from None
            yield event
