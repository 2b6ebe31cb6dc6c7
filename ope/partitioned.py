"""Evaluation of a log partition by partition: the engine behind ``--spark``.

A log is a list of sources: dsjson files (date partitions) or the Parquet
files of a log table (:mod:`ope.logtable`). Each source is evaluated alone by
:func:`source_statistics`: its events are read with banditkit's dsjson codec,
cut into chunks of ``chunk_size`` activated events, each chunk turned into
rounds and one target per policy (:mod:`ope.dsjson`'s functions, the reward
model cross-fitted within the chunk) and into every estimator's mergeable
statistics (``ope/_statistics.py``). Merged, they give the estimates, as
:func:`ope.evaluation.evaluate_stream` does for the chunks of one process.

Who runs the sources is a :class:`Runner`: :class:`LocalRunner` loops in this
process; ``ope.spark.SparkRunner`` runs one Spark task per source, the
policies' VW models broadcast once. The driver holds the list of sources and
the merged statistics, never events.

A path is a local (or shared-mount) path, or a URI (``hdfs://``, ``s3a://``,
``file://``...) that only a Spark runner reads: it lists the files and reads
their bytes through Spark's Hadoop FileSystem, so the cluster's own
configuration decides what it can reach.

:func:`write_log_table` converts a dsjson log into the log table the same
way, one file at a time.

Numbers: the estimates are those of :func:`ope.dsjson.evaluate_dsjson` on
the same log. Importance-weighted ones (IPS, SNIPS, clipped IPS) merge
exactly, whatever the chunks; for Replay and the reward model of DM and the DR
family a first pass counts each source's activated events, so that Replay's
draws are keyed by each event's position in the whole log and the reward
model is cross-fitted on the whole log's chunks: a chunk that spans two
sources is joined from its pieces. Reward-model estimates are then equal up
to the ridge solver's tolerance (``lsqr``, 1e-4), which depends on the
floating-point order of the BLAS threads of each process.
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import reduce
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from banditkit.dsjson import JoinedEvent
from banditkit.errors import InvalidInputError
from banditkit.eventlog import log_files, parse_lines, read_events
from ope._statistics import RoundStatistics
from ope.base import OffPolicyEstimator, check_streamable
from ope.estimators import Replay
from ope.evaluation import DEFAULT_LOG_POLICIES, EvaluationReport
from ope.logtable import (
    TORN_LINE,
    ConversionSummary,
    check_log_table,
    check_output_folder,
    check_table_file,
    convert_file,
    read_log_table,
    read_table_file,
)
from ope.uri import is_uri
from ope.validation import check_integer_at_least

__all__ = [
    "LocalRunner",
    "PartialResult",
    "Plan",
    "PolicySpec",
    "Runner",
    "Source",
    "chunk_statistics",
    "convert_item",
    "ends_torn",
    "evaluate_partitions",
    "list_sources",
    "source_counts",
    "source_lines",
    "source_statistics",
    "write_log_table",
]

_TABLE_SUFFIXES = (".parquet", ".pq")
_NOT_LOG = "not a .dsjson or .parquet file"
_EXAMPLES = 5  # ignored files named per reason

#: ``listing(uri)``: the files under a URI (or the file it names) with their sizes in bytes.
Listing = Callable[[str], list[tuple[str, int]]]


class Source(NamedTuple):
    """One file of a log: ``kind`` is ``"dsjson"`` or ``"table"``.

    ``first_index`` is the position of its first activated event in the whole
    log (Replay's draws are keyed by it; 0 when no Replay runs). A file at a
    URI has its ``size`` in bytes, and inside a task the ``content`` Spark read
    for it: ``(byte offset, line)`` pairs of a dsjson file, a Parquet file's bytes.
    """

    index: int
    kind: str
    path: str
    first_index: int = 0
    size: int = -1
    content: Any = None


def _is_table(path: Path | str) -> bool:
    return str(path).lower().endswith(_TABLE_SUFFIXES)


def _kind(path: Path | str) -> str | None:
    if _is_table(path):
        return "table"
    return "dsjson" if str(path).endswith(".dsjson") else None


def _refuse_uri(uri: str) -> list[tuple[str, int]]:
    raise InvalidInputError(f"log path {uri} is a URI, which is read through Spark's Hadoop "
                            f"FileSystem: evaluate it with Spark (--spark MASTER, "
                            f"ope.spark.evaluate_spark)")


def list_sources(paths: Sequence[str | os.PathLike], *, listing: Listing | None = None
                 ) -> tuple[list[Source], dict[str, dict[str, object]]]:
    """The log's files in log order, and the files of its folders that are not read.

    Folders are searched recursively: dsjson files in the order of
    :func:`banditkit.eventlog.log_files`, Parquet files sorted. Anything else
    in a folder (``_SUCCESS``, ``.crc``, a stray note) is returned by reason
    with a count and a few examples, so that the caller reports it. A URI is
    listed by ``listing`` (a Spark runner's); its files are sorted by path
    (Spark's listing leaves out hidden files such as ``_SUCCESS``).

    Raises
    ------
    InvalidInputError
        When a path does not exist, no log file is found, dsjson files and
        Parquet files are mixed, or a URI comes without a ``listing``.
    """
    found: list[tuple[str, str, int]] = []
    ignored: list[str] = []
    for raw in paths:
        if is_uri(raw):
            for name, size in (listing or _refuse_uri)(str(raw)):
                kind = _kind(name)
                if kind is None:
                    ignored.append(name)
                else:
                    found.append((kind, name, size))
            continue
        path = Path(raw)
        if path.is_dir():
            found += [("dsjson", str(p), -1) for p in log_files([path])]
            found += [("table", str(p), -1) for p in sorted(path.rglob("*")) if _is_table(p)]
            ignored += [str(p) for p in sorted(path.rglob("*")) if p.is_file()
                        and p.suffix != ".dsjson" and not _is_table(p)]
        elif path.is_file():
            found.append(("table" if _is_table(path) else "dsjson", str(path), -1))
        else:
            raise InvalidInputError(f"log path does not exist: {path}")
    kinds = {kind for kind, _, _ in found}
    if not found:
        raise InvalidInputError(f"no .dsjson or .parquet files found in "
                                f"{[str(p) for p in paths]}")
    if len(kinds) > 1:
        raise InvalidInputError(f"logs must be dsjson files or one log table, not both; got "
                                f"{[str(p) for p in paths]}")
    sources = [Source(index, kind, path, size=size)
               for index, (kind, path, size) in enumerate(found)]
    notes = {} if not ignored else {
        _NOT_LOG: {"count": len(ignored), "examples": ignored[:_EXAMPLES]}}
    return sources, notes


class PolicySpec(NamedTuple):
    """A policy as shipped to a task: a name for ``make_policy``, or a VW model's bytes."""

    name: str
    spec: str
    vw_args: str | None = None
    model_data: bytes | None = None

    def build(self) -> Any:
        """The :class:`~ope.dsjson.EventPolicy` (a VW model is loaded here, once per task)."""
        from ope.dsjson import LearnerPolicy, make_policy

        if self.model_data is None:
            return make_policy(self.spec)
        from banditkit.vw import VWLearner

        return LearnerPolicy(learner=VWLearner(args=self.vw_args, model_data=self.model_data),
                             name=self.name)


@dataclass(frozen=True)
class Plan:
    """Everything a task needs, shipped once (Spark broadcasts it).

    Attributes
    ----------
    estimators : tuple of OffPolicyEstimator
    policies : tuple of PolicySpec
    chunk_size : int
    reward_model : HashedRewardModel or None
    n_total : int
        Activated events in the whole log when a first pass counted them (then
        chunks follow the whole log's, as in process); 0 otherwise.
    """

    estimators: tuple[OffPolicyEstimator, ...]
    policies: tuple[PolicySpec, ...]
    chunk_size: int
    reward_model: Any = None
    n_total: int = 0


@dataclass
class PartialResult:
    """What one or several sources gave; :meth:`merge` is associative.

    Attributes
    ----------
    first : int
        Smallest source index merged in.
    n_rounds : int
        Activated events evaluated.
    statistics : dict of str to dict of str to RoundStatistics
        ``statistics[policy][estimator]``.
    skipped_not_activated : int
        Events marked ``_skipLearn``, left out as the in-process engine does.
    skipped_lines : Counter of str
        Lines not read, by reason.
    error : tuple of (int, str) or None
        The first error in log order: (source index, message).
    min_probability : float
        Smallest logged propensity of the activated events.
    """

    first: int
    n_rounds: int = 0
    statistics: dict[str, dict[str, RoundStatistics]] = field(default_factory=dict)
    skipped_not_activated: int = 0
    skipped_lines: Counter = field(default_factory=Counter)
    error: tuple[int, str] | None = None
    min_probability: float = math.inf

    def merge(self, other: PartialResult) -> PartialResult:
        errors = [e for e in (self.error, other.error) if e is not None]
        return PartialResult(first=min(self.first, other.first),
                             n_rounds=self.n_rounds + other.n_rounds,
                             statistics=_merged(self.statistics, other.statistics),
                             skipped_not_activated=(self.skipped_not_activated
                                                    + other.skipped_not_activated),
                             skipped_lines=self.skipped_lines + other.skipped_lines,
                             error=min(errors) if errors else None,
                             min_probability=min(self.min_probability, other.min_probability))


def _merged(first: dict[str, dict[str, RoundStatistics]],
            second: dict[str, dict[str, RoundStatistics]]
            ) -> dict[str, dict[str, RoundStatistics]]:
    out = {policy: dict(by_name) for policy, by_name in first.items()}
    for policy, by_name in second.items():
        mine = out.setdefault(policy, {})
        for name, stats in by_name.items():
            mine[name] = stats if name not in mine else mine[name].merge(stats)
    return out


class Runner(Protocol):
    """Runs a function over sources: in process, or on a cluster."""

    def listing(self, uri: str) -> list[tuple[str, int]]:
        """The files under ``uri`` with their sizes (:data:`Listing`); a runner that
        cannot read URIs raises ``InvalidInputError`` saying which can."""

    def collect(self, function: Callable[[Source, Any], Any], sources: Sequence[Source],
                shared: Any) -> list[Any]:
        """``function(source, shared)`` for each source, in source order."""

    def group_reduce(self, function: Callable[[Source, Any], list[tuple[int, Any]]],
                     finish: Callable[[int, list[Any], Any], PartialResult],
                     sources: Sequence[Source], shared: Any, *,
                     shuffle: bool) -> PartialResult:
        """``function`` gives (key, value) pairs per source; the values of each key
        go to ``finish(key, values, shared)``, whose results are merged.
        ``shuffle`` False promises that no two sources give the same key."""


class LocalRunner:
    """Sources one after the other in this process (local paths; URIs are refused)."""

    def listing(self, uri: str) -> list[tuple[str, int]]:
        return _refuse_uri(uri)

    def collect(self, function: Callable[[Source, Any], Any], sources: Sequence[Source],
                shared: Any) -> list[Any]:
        return [function(source, shared) for source in sources]

    def group_reduce(self, function: Callable[[Source, Any], list[tuple[int, Any]]],
                     finish: Callable[[int, list[Any], Any], PartialResult],
                     sources: Sequence[Source], shared: Any, *,
                     shuffle: bool) -> PartialResult:
        groups: dict[int, list[Any]] = {}
        for source in sources:
            for key, value in function(source, shared):
                groups.setdefault(key, []).append(value)
        return reduce(PartialResult.merge,
                      (finish(key, values, shared) for key, values in groups.items()))


def source_lines(source: Source) -> Iterator[str]:
    """The lines of a dsjson file Spark read at a URI (its ``content``: ``(offset,
    line)`` pairs without their newlines), each with its newline but a torn last
    line's, as reading the file would give them."""
    previous: tuple[int, str] | None = None
    for pair in source.content:
        if previous is not None:
            yield previous[1] + "\n"
        previous = pair
    if previous is not None:
        offset, line = previous
        yield line if offset + len(line.encode("utf-8")) >= source.size else line + "\n"


def ends_torn(path: str | os.PathLike) -> bool:
    """Whether a local file's last byte is not a newline: a dsjson writer is still
    appending its last line."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        return bool(size) and os.pread(handle.fileno(), 1, size - 1) != b"\n"


def _counting_torn(lines: Iterator[str], skipped: Counter) -> Iterator[str]:
    for line in lines:
        if not line.endswith("\n"):
            skipped[TORN_LINE] += 1  # parse_lines leaves that line out
        yield line


def _events(source: Source, skipped: Counter) -> Iterator[JoinedEvent]:
    if source.content is not None:  # read by Spark at a URI
        if source.kind == "dsjson":
            return parse_lines(source.path, _counting_torn(source_lines(source), skipped))
        check_table_file(io.BytesIO(source.content), source.path)
        return read_table_file(io.BytesIO(source.content), source.path)
    if source.kind == "table":
        return read_log_table([source.path])
    if ends_torn(source.path):
        skipped[TORN_LINE] += 1  # read_events leaves that line out
    return read_events([source.path])


def _chunks(source: Source, *, size: int, aligned: bool, result: PartialResult
            ) -> Iterator[tuple[int, list[JoinedEvent]]]:
    """``(position in the log, events)`` of the activated events, ``size`` at a time.

    ``aligned`` cuts where the whole log's chunks end (positions multiple of
    ``size``), as the in-process reader does; else every ``size`` events.
    """
    chunk: list[JoinedEvent] = []
    start = source.first_index
    for event in _events(source, result.skipped_lines):
        if event.skip_learn:
            result.skipped_not_activated += 1
            continue
        chunk.append(event)
        end = start + len(chunk)
        if (end % size == 0) if aligned else len(chunk) == size:
            yield start, chunk
            start, chunk = end, []
    if chunk:
        yield start, chunk


def source_counts(source: Source, plan: Plan | None = None) -> PartialResult:
    """First pass: activated events and smallest propensity of one source."""
    result = PartialResult(first=source.index)
    try:
        for _, chunk in _chunks(source, size=65_536, aligned=False, result=result):
            result.n_rounds += len(chunk)
            result.min_probability = min(result.min_probability,
                                         min(e.probability for e in chunk))
    except ValueError as error:
        result.error = (source.index, str(error))
    return result


def _add_chunk(result: PartialResult, chunk: list[JoinedEvent], start: int,
               policies: list[Any], plan: Plan) -> None:
    from ope.dsjson import rounds_from_events, targets_from_events

    predictions = None if plan.reward_model is None else plan.reward_model.predict(chunk)
    rounds = rounds_from_events(chunk, first_index=start)
    targets = targets_from_events(chunk, policies, predictions=predictions)
    result.statistics = _merged(result.statistics, {
        policy: {e.name: e.statistics(rounds, target) for e in plan.estimators}
        for policy, target in targets.items()})
    result.n_rounds += len(chunk)


def source_statistics(source: Source, plan: Plan) -> list[tuple[int, Any]]:
    """Every estimator's statistics for every policy on the chunks inside one source.

    Returns ``(source.index, PartialResult)`` and, when chunks follow the whole
    log's (``plan.n_total`` known), ``(-1 - chunk number, (source index,
    position, events))`` for each piece of a chunk shared with a neighbouring
    source: :func:`chunk_statistics` joins those pieces. Errors (a line that is
    not a joined event, a propensity outside (0, 1]) are returned, not raised,
    so that the driver reports the first in log order.
    """
    result = PartialResult(first=source.index)
    pieces: list[tuple[int, Any]] = []
    try:
        policies = [spec.build() for spec in plan.policies]
        size, total = plan.chunk_size, plan.n_total
        for start, chunk in _chunks(source, size=size, aligned=total > 0, result=result):
            number = start // size
            whole = start == number * size and start + len(chunk) == min((number + 1) * size,
                                                                          total)
            if total > 0 and not whole:
                pieces.append((-1 - number, (source.index, start, chunk)))
            else:
                _add_chunk(result, chunk, start, policies, plan)
    except ValueError as error:
        result.error = (source.index, str(error))
    return [(source.index, result), *pieces]


def chunk_statistics(key: int, values: list[Any], plan: Plan) -> PartialResult:
    """A source's result as is (``key >= 0``), or the statistics of a chunk joined
    from the pieces its sources gave (``key < 0``)."""
    if key >= 0:
        return values[0]
    pieces = sorted(values, key=lambda piece: piece[1])
    result = PartialResult(first=pieces[0][0])
    try:
        _add_chunk(result, [event for _, _, chunk in pieces for event in chunk], pieces[0][1],
                   [spec.build() for spec in plan.policies], plan)
    except ValueError as error:
        result.error = (pieces[0][0], str(error))
    return result


def convert_item(item: tuple[int, str], out: str) -> ConversionSummary | str:
    """:func:`convert_file` of ``(index, path)``; an error comes back as its message,
    so that a task reports it rather than failing the job."""
    try:
        return convert_file(item[0], item[1], out)
    except ValueError as error:
        return str(error)


def write_log_table(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                    collect: Callable[..., list[Any]] | None = None) -> ConversionSummary:
    """Convert dsjson files or folders into a log table in ``out``.

    Parameters
    ----------
    paths : sequence of path
        dsjson files or folders (searched recursively for ``*.dsjson``).
    out : path
        A new or empty folder.
    collect : callable, default=None
        ``collect(function, items, out)`` runs :func:`convert_item` on every
        ``(index, path)``, giving the results in order; ``None`` runs them in
        this process (``ope.spark.to_parquet`` passes Spark's).

    Raises
    ------
    InvalidInputError
        ``out`` holds files, no dsjson file is found, or a line is not a joined
        event (the first in log order is named).
    """
    folder = check_output_folder(out)
    sources, ignored = list_sources(paths)
    if sources[0].kind != "dsjson":
        raise InvalidInputError(f"paths must name dsjson logs to convert, got Parquet files in "
                                f"{[str(p) for p in paths]}")
    results = (collect or LocalRunner().collect)(
        convert_item, [(source.index, source.path) for source in sources], str(folder))
    errors = [result for result in results if isinstance(result, str)]
    if errors:
        raise InvalidInputError(errors[0])
    summary = ConversionSummary(ignored_files=ignored)
    for result in results:
        summary = summary.merge(result)
    return summary


def _raise_first(result: PartialResult) -> None:
    if result.error is not None:
        raise InvalidInputError(result.error[1])


def _resolve_policies(specs: Sequence[str], *, model_args: str | None,
                      data_dir: str | os.PathLike | None,
                      database_url: str | None) -> tuple[PolicySpec, ...]:
    from ope.dsjson import LearnerPolicy, make_policy

    if "offline" in specs:
        raise ValueError("policy 'offline' trains one VW learner through the log in order, "
                         "which does not split into partitions; train it once and evaluate "
                         "it as model:PATH")
    out = []
    for spec in specs:
        policy = make_policy(spec, model_args=model_args, data_dir=data_dir,
                             database_url=database_url)
        if isinstance(policy, LearnerPolicy):
            out.append(PolicySpec(policy.name, spec, policy.learner.args,
                                  policy.learner.model_data))
        else:
            out.append(PolicySpec(policy.name, spec))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ValueError(f"policies must have distinct names, got {names}")
    return tuple(out)


def evaluate_partitions(paths: Sequence[str | os.PathLike], *,
                        estimators: Sequence[OffPolicyEstimator],
                        policies: Sequence[str] = DEFAULT_LOG_POLICIES,
                        chunk_size: int = 50_000, model_args: str | None = None,
                        data_dir: str | os.PathLike | None = None,
                        database_url: str | None = None, seed: int = 0,
                        runner: Runner | None = None,
                        notes: dict[str, object] | None = None) -> EvaluationReport:
    """Evaluate policies on a dsjson log or a log table, source by source.

    Parameters
    ----------
    paths : sequence of path
        dsjson files or folders, or a log table's folder or files; URIs
        (``hdfs://...``) when ``runner`` reads them (Spark's).
    estimators : sequence of OffPolicyEstimator
        From :func:`ope.evaluation.make_estimators`; ``ci_method`` "clt" or
        "bernstein".
    policies : sequence of str, default=("logged", "baseline", "uniform")
        ``logged``, ``baseline``, ``uniform``, ``model:PATH``, ``model:latest``.
    chunk_size : int, default=50000
        Activated events per chunk (reward-model cross-fitting unit).
    model_args : str, default=None
        VW arguments of ``model:PATH`` files (``None``: VWLearner's default).
    data_dir : path, default=None
        Data directory of ``model:latest``.
    database_url : str, default=None
        The PostgreSQL store of ``model:latest`` instead.
    seed : int, default=0
        Seeds the reward model's folds.
    runner : Runner, default=None
        ``None`` runs in this process (:class:`LocalRunner`).
    notes : dict, default=None
        Added to the report's notes (e.g. the engine).

    Returns
    -------
    EvaluationReport
        As :func:`ope.evaluation.evaluate_log`'s; ``notes`` also holds
        ``skipped_lines`` and ``ignored_files`` (by reason) when there are any.
    """
    from ope.dsjson import HashedRewardModel

    check_integer_at_least(chunk_size, 1, name="chunk_size")
    check_streamable(estimators, purpose="evaluate by partitions")
    specs = list(policies)
    if not specs:
        raise ValueError("policies must name at least one policy, got none")
    runner = runner or LocalRunner()
    sources, ignored = list_sources(paths, listing=runner.listing)
    if sources[0].kind == "table":  # files at URIs are checked by their tasks
        check_log_table(source.path for source in sources if not is_uri(source.path))
    resolved = _resolve_policies(specs, model_args=model_args, data_dir=data_dir,
                                 database_url=database_url)
    report_notes: dict[str, object] = {"skipped_not_activated": 0}
    estimators = list(estimators)
    needs_model = any(e.needs_model for e in estimators)
    n_total = 0
    if needs_model or any(isinstance(e, Replay) for e in estimators):
        # positions in the whole log: Replay's draws and the reward model's chunks
        counts = runner.collect(source_counts, sources, None)
        _raise_first(reduce(PartialResult.merge, counts))
        offsets = [0, *accumulate(c.n_rounds for c in counts)]
        sources = [s._replace(first_index=offsets[i]) for i, s in enumerate(sources)]
        n_total = offsets[-1]
        smallest = min((c.min_probability for c in counts), default=math.inf)
        smallest = 1.0 if math.isinf(smallest) else smallest
        estimators = [replace(e, max_weight=1.0 / smallest)
                      if isinstance(e, Replay) and e.max_weight is None else e
                      for e in estimators]
        if any(isinstance(e, Replay) for e in estimators):
            report_notes["replay_bound"] = 1.0 / smallest
    plan = Plan(estimators=tuple(estimators), policies=resolved, chunk_size=chunk_size,
                reward_model=HashedRewardModel(seed=seed) if needs_model else None,
                n_total=n_total)
    total = runner.group_reduce(source_statistics, chunk_statistics, sources, plan,
                                shuffle=n_total > 0)
    _raise_first(total)
    if total.n_rounds == 0:
        raise ValueError("the log holds no activated events to evaluate")
    report_notes["skipped_not_activated"] = total.skipped_not_activated
    if total.skipped_lines:
        report_notes["skipped_lines"] = dict(total.skipped_lines)
    if ignored:
        report_notes["ignored_files"] = ignored
    report_notes.update(notes or {})
    estimates = {spec.name: {e.name: e.estimate_from_statistics(
        total.statistics[spec.name][e.name]) for e in estimators} for spec in resolved}
    return EvaluationReport(n_rounds=total.n_rounds, estimates=estimates, notes=report_notes)
