"""Off-policy evaluation and the log table on Spark (PySpark), for logs one machine cannot read.

:func:`evaluate_spark` runs :func:`ope.partitioned.evaluate_partitions` with
one Spark task per log file (a date partition): each task reads its file with
banditkit's dsjson codec and returns the estimators' mergeable statistics (and
the pieces of the chunks it shares with the next file, joined by key in one
shuffle), the statistics are merged on the executors (``treeReduce``) and the
driver finishes the estimates. The plan (estimators, policies, VW models' bytes) is
broadcast once. :func:`to_parquet` writes the log table of
:mod:`ope.logtable`, one task per file. :class:`SparkCandidatePool` scores a
frozen window's candidate policies (Personalizer's evaluation jobs), one task
per candidate, the window broadcast once.

A log path is a local path or a URI. Tasks open a local path themselves, so
it must name the same file on every executor (a shared mount). A URI
(``hdfs://``, ``s3a://``, ``abfss://``, ``file://``...) is listed and read
through Spark's own Hadoop FileSystem (the ``binaryFile`` source lists it, a
dsjson file is streamed to its task line by line, a Parquet file comes as its
bytes), so the cluster's configuration decides what is reachable and how.
banditkit must be installed on the executors. Every
function takes a ``SparkSession`` or a master URL (``local[2]``,
``spark://host:7077``, ``yarn``, ``k8s://...``), so a notebook passes its
session and a job its master. PySpark is the ``banditkit[spark]`` extra and is
imported on first use.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from banditkit.errors import BanditkitError, InvalidInputError
from ope.base import OffPolicyEstimator
from ope.evaluation import DEFAULT_LOG_POLICIES, EvaluationReport
from ope.logtable import (
    SCHEMA,
    TORN_LINE,
    ConversionSummary,
    check_output_folder,
    table_rows,
)
from ope.partitioned import (
    PartialResult,
    Source,
    ends_torn,
    evaluate_partitions,
    list_sources,
    source_lines,
    write_log_table,
)
from ope.progressive import CandidateResult, Feature, Window, score_candidate, task_pairs
from ope.uri import is_uri

if TYPE_CHECKING:
    from pyspark import RDD, Broadcast, SparkContext
    from pyspark.sql import SparkSession

__all__ = [
    "INSTALL_HINT",
    "MASTER_ENV",
    "SparkCandidatePool",
    "SparkJobError",
    "SparkRunner",
    "check_master",
    "evaluate_spark",
    "list_uri",
    "require_pyspark",
    "spark_session",
    "to_parquet",
]

#: Environment variable read by ``--spark``'s default.
MASTER_ENV = "BANDITKIT_SPARK_MASTER"
_INSTALL = "pip install 'banditkit[spark]' (and Java 17, e.g. openjdk-17-jre-headless)"
INSTALL_HINT = f"--spark needs PySpark, which is not installed: {_INSTALL}"
_MASTER = re.compile(r"local(\[([0-9]+|\*)(,[0-9]+)?\])?|spark://[^/]+|yarn|k8s://.+|"
                     r"mesos://.+")
_CONNECT_SECONDS = 5.0
_TEXT_INPUT = "org.apache.hadoop.mapreduce.lib.input.TextInputFormat"
#: One split per file: a task reads a whole dsjson file, in order.
_WHOLE_FILES = {"mapreduce.input.fileinputformat.split.minsize": str(2 ** 62)}


def require_pyspark(what: str = "--spark") -> None:
    """Raise ``ModuleNotFoundError`` saying how to install PySpark when it is missing.

    Parameters
    ----------
    what : str, default="--spark"
        What needs it, named first in the message (:data:`INSTALL_HINT` by default).
    """
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError(f"{what} needs PySpark, which is not installed: "
                                  f"{_INSTALL}") from None


def check_master(master: str, *, connect: bool = True) -> None:
    """Refuse a malformed master URL, and (``connect``) a standalone master nobody answers at.

    Spark itself retries an unreachable standalone master for a minute before
    failing; a TCP connect says the same in at most five seconds.

    Raises
    ------
    InvalidInputError
        Naming the master and what is wrong with it.
    """
    if not isinstance(master, str) or not _MASTER.fullmatch(master):
        raise InvalidInputError(f"Spark master must be local, local[N], local[*], "
                                f"spark://HOST:PORT[,HOST:PORT], yarn or k8s://URL; got "
                                f"{master!r}")
    if connect and master.startswith("spark://"):
        for address in master[len("spark://"):].split(","):
            host, _, port = address.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=_CONNECT_SECONDS):
                    return
            except (OSError, ValueError) as error:
                reason = error
        raise InvalidInputError(f"cannot reach the Spark master {master}: {reason}")


@contextmanager
def spark_session(spark: SparkSession | str, *, app_name: str = "banditkit",
                  driver_memory: str = "1g") -> Iterator[SparkSession]:
    """A session for ``spark``: the session itself, or one for a master URL.

    A session this function starts is stopped on exit. When the process
    already runs a session with that master (a notebook's, a test's), it is
    used and left running.

    Parameters
    ----------
    spark : SparkSession or str
        A session, or a master URL.
    app_name : str, default="banditkit"
    driver_memory : str, default="1g"
        ``spark.driver.memory`` of a session started here (the driver holds
        statistics, not events; in ``local`` mode the tasks share it).

    Raises
    ------
    ModuleNotFoundError
        PySpark is missing (the message says how to install it).
    InvalidInputError
        The master URL is malformed or unreachable, Java is missing, or
        another master's session is already running in this process.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    if isinstance(spark, SparkSession):
        yield spark
        return
    if not isinstance(spark, str):
        raise TypeError(f"spark must be a SparkSession or a master URL, got "
                        f"{type(spark).__name__}")
    master = spark.strip()
    check_master(master)
    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise InvalidInputError(f"a Spark session with master {running} already runs in "
                                    f"this process; pass that session, or its master, "
                                    f"instead of {master}")
        yield active
        return
    try:
        session = (SparkSession.builder.master(master).appName(app_name)
                   .config("spark.driver.memory", driver_memory)
                   .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    except Exception as error:  # py4j and the JVM raise many kinds
        raise InvalidInputError(f"cannot start Spark with master {master}: "
                                f"{str(error).strip().splitlines()[0]} (Spark needs Java 17: "
                                f"is 'java' on PATH?)") from None
    try:
        yield session
    finally:
        session.stop()


def _java_reason(text: str) -> str:
    """The deepest Java exception a JVM error's text names, else its first line."""
    causes = re.findall(r"^(?:Caused by: |: )?((?:[a-z0-9_$]+\.)+[A-Za-z0-9_$]*"
                        r"(?:Exception|Error)\b.*)$", text, re.MULTILINE)
    if causes:
        return causes[-1].strip()
    lines = text.strip().splitlines()
    return lines[0] if lines else "unknown error"


class SparkJobError(BanditkitError, RuntimeError):
    """A Spark job failed after Spark's own retries: a task failed as many times as
    the cluster allows (``spark.task.maxFailures``; ``local[N,F]`` for a local master)."""


_STAGE_FAILURE = re.compile(r"Job aborted due to stage failure: (.+?)(?: Consider setting|$)",
                            re.MULTILINE)


def _job_failure(error: Exception) -> SparkJobError | None:
    """The one-line reason of a Spark job that failed, or None for another error."""
    found = _STAGE_FAILURE.search(str(error))
    if found is None:
        return None
    return SparkJobError(f"the Spark job failed: {found.group(1).strip()}")


@contextmanager
def _spark_job() -> Iterator[None]:
    """Run a Spark action, a failed job raised as :class:`SparkJobError` with its reason
    (not py4j's Java stack)."""
    try:
        yield
    except Exception as error:  # py4j and the JVM raise many kinds
        failure = _job_failure(error)
        if failure is None:
            raise
        raise failure from None


def list_uri(spark: SparkSession, uri: str) -> list[tuple[str, int]]:
    """The files under ``uri`` (or the file it names) and their sizes, sorted by path,
    listed by Spark's ``binaryFile`` source through the cluster's Hadoop FileSystem.

    Raises
    ------
    InvalidInputError
        The path does not exist, or its file system cannot be listed (a scheme
        the cluster has no connector for, refused credentials), with Spark's reason.
    """
    try:
        rows = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
                .load(uri).select("path", "length").collect())
    except Exception as error:  # py4j and the JVM raise many kinds
        text = str(error)
        if "PATH_NOT_FOUND" in text or "Path does not exist" in text:
            raise InvalidInputError(f"log path does not exist: {uri}") from None
        raise InvalidInputError(f"cannot list {uri} through Spark's Hadoop FileSystem: "
                                f"{_java_reason(text)}") from None
    return sorted(((row.path, row.length) for row in rows),
                  key=lambda item: item[0].split("/"))


def _read_uri(context: SparkContext, source: Source) -> RDD:
    """One partition holding what a task reads of ``source``: the (offset, line) pairs
    of a dsjson file, or a Parquet file's bytes; nothing for a local path."""
    if not is_uri(source.path):
        return context.parallelize([], 1)
    if source.kind == "table":
        return context.binaryFiles(source.path, 1).values()
    return context.newAPIHadoopFile(source.path, _TEXT_INPUT, "org.apache.hadoop.io.LongWritable",
                                    "org.apache.hadoop.io.Text", conf=_WHOLE_FILES)


def _with_content(source: Source, content: Iterator[Any]) -> Source:
    if not is_uri(source.path):
        return source
    return source._replace(content=content if source.kind == "dsjson" else b"".join(content))


class SparkRunner:
    """Runs one Spark task per source; shared data is broadcast once.

    Parameters
    ----------
    spark : SparkSession
    """

    def __init__(self, *, spark: SparkSession) -> None:
        self.spark = spark

    def listing(self, uri: str) -> list[tuple[str, int]]:
        return list_uri(self.spark, uri)

    def _sources(self, sources: Sequence[Any]) -> RDD:
        """One partition per source; files at URIs come with what Spark read of them."""
        context = self.spark.sparkContext
        sources = list(sources)
        if not any(isinstance(s, Source) and is_uri(s.path) for s in sources):
            return context.parallelize(sources, len(sources))
        return context.union([_read_uri(context, s) for s in sources]).mapPartitionsWithIndex(
            lambda index, content: [_with_content(sources[index], content)])

    def collect(self, function: Callable[[Any, Any], Any], sources: Sequence[Any],
                shared: Any) -> list[Any]:
        context = self.spark.sparkContext
        shipped = context.broadcast(shared)
        try:
            with _spark_job():
                return self._sources(sources).map(
                    lambda source: function(source, shipped.value)).collect()
        finally:
            shipped.destroy()

    def group_reduce(self, function: Callable[[Source, Any], list[tuple[int, Any]]],
                     finish: Callable[[int, list[Any], Any], PartialResult],
                     sources: Sequence[Source], shared: Any, *,
                     shuffle: bool) -> PartialResult:
        context = self.spark.sparkContext
        shipped = context.broadcast(shared)
        try:
            pairs = self._sources(sources).flatMap(
                lambda source: function(source, shipped.value))
            if shuffle:
                groups = pairs.groupByKey(min(len(sources), context.defaultParallelism))
            else:
                groups = pairs.map(lambda pair: (pair[0], [pair[1]]))
            with _spark_job():
                return (groups.map(lambda group: finish(group[0], list(group[1]),
                                                        shipped.value))
                        .treeReduce(PartialResult.merge))
        finally:
            shipped.destroy()


def _wait_for_executors(spark: SparkSession, seconds: float) -> None:
    """Return once an executor has joined ``spark``'s application, or raise after ``seconds``.

    Spark waits for resources without end: a standalone master with no free
    worker would keep a job's tasks pending forever. ``local`` masters run
    tasks in the driver, and under dynamic allocation executors join only
    once tasks are pending, so neither waits here.
    """
    context = spark.sparkContext
    if context.master.startswith("local") or \
            spark.conf.get("spark.dynamicAllocation.enabled", "false") == "true":
        return
    deadline = time.monotonic() + seconds
    while len(context.statusTracker().getExecutorInfos()) < 2:  # the driver is listed too
        if time.monotonic() >= deadline:
            raise InvalidInputError(f"no Spark executor joined the application on "
                                    f"{context.master} within {seconds:g} s: are its workers "
                                    f"up, with free cores and memory?")
        time.sleep(0.5)


def _score_task(task: tuple[str, Feature | None], window: Window) -> CandidateResult:
    args, drop = task
    return score_candidate(window, args, drop=drop)


class SparkCandidatePool:
    """Scores a window's candidate policies on Spark executors, one task per candidate.

    The window is broadcast once when the pool opens, so the stages of a search
    and the ablations of feature importance share it, as the children of a
    :class:`ope.progressive.CandidatePool` do; it has that pool's interface
    (:class:`ope.progressive.CandidateRunner`). Each task runs
    :func:`ope.progressive.score_candidate`, so the results are those of a
    local run, whatever executor runs them.

    Parameters
    ----------
    window : Window
    spark : SparkSession
    shipped : Broadcast
        ``window`` broadcast on ``spark``.
    """

    def __init__(self, *, window: Window, spark: SparkSession, shipped: Broadcast) -> None:
        self.window = window
        self.spark = spark
        self.shipped = shipped

    @classmethod
    def open(cls, window: Window, *, spark: SparkSession,
             executor_wait_seconds: float = 120.0) -> SparkCandidatePool:
        """Broadcast ``window`` on ``spark`` once an executor is there to run tasks.

        Parameters
        ----------
        window : Window
        spark : SparkSession
        executor_wait_seconds : float, default=120.0
            How long a cluster master may take to give the application an executor.

        Raises
        ------
        InvalidInputError
            When no executor joined within ``executor_wait_seconds`` (a master
            with no free worker), rather than tasks pending without end.
        """
        _wait_for_executors(spark, executor_wait_seconds)
        return cls(window=window, spark=spark,
                   shipped=spark.sparkContext.broadcast(window))

    def run(self, tasks: Sequence[str | tuple[str, Feature | None]]) -> list[CandidateResult]:
        """Score ``tasks`` (VW arguments, or (arguments, feature to drop)), in their order.

        Raises
        ------
        InvalidInputError
            On forbidden or invalid arguments, before any task runs.
        """
        pairs = task_pairs(tasks)
        if not pairs:
            return []
        shipped = self.shipped
        with _spark_job():
            return (self.spark.sparkContext.parallelize(pairs, len(pairs))
                    .map(lambda task: _score_task(task, shipped.value)).collect())

    def close(self) -> None:
        """Drop the broadcast window from the executors."""
        self.shipped.destroy()

    def __enter__(self) -> SparkCandidatePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def evaluate_spark(spark: SparkSession | str, paths: Sequence[str | os.PathLike], *,
                   estimators: Sequence[OffPolicyEstimator],
                   policies: Sequence[str] = DEFAULT_LOG_POLICIES, chunk_size: int = 50_000,
                   model_args: str | None = None, data_dir: str | os.PathLike | None = None,
                   database_url: str | None = None, seed: int = 0) -> EvaluationReport:
    """Evaluate policies on a dsjson log or a log table with Spark.

    The same policies, estimators and report as
    :func:`ope.evaluation.evaluate_log` (``notes["engine"]`` is ``"spark"``);
    see :func:`ope.partitioned.evaluate_partitions` for the parameters and for
    which estimates are equal to the in-process ones.

    Parameters
    ----------
    spark : SparkSession or str
        A session (a notebook's) or a master URL (``local[2]``, ``spark://...``).
    paths : sequence of path or str
        dsjson files or date-partition folders, or a log table's folder: local
        paths reachable at the same path from every executor, or URIs
        (``hdfs://``, ``s3a://``, ``file://``...) read through Spark's Hadoop
        FileSystem.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    SparkJobError
        When a task failed more often than the cluster retries it (an executor
        lost each time); a task that succeeds on a retry gives the same numbers.
    """
    with spark_session(spark) as session:
        return evaluate_partitions(paths, estimators=estimators, policies=policies,
                                   chunk_size=chunk_size, model_args=model_args,
                                   data_dir=data_dir, database_url=database_url, seed=seed,
                                   runner=SparkRunner(spark=session),
                                   notes={"engine": "spark"})


def to_parquet(spark: SparkSession | str, paths: Sequence[str | os.PathLike],
               out: str | os.PathLike) -> ConversionSummary:
    """Write a dsjson log as the log table of :mod:`ope.logtable` with Spark.

    Local paths (each at the same path on every executor) are converted one
    task per file into the files of :func:`ope.partitioned.write_log_table`.
    When the log or ``out`` is a URI, Spark's own Parquet writer writes the
    table through the cluster's Hadoop FileSystem (:func:`_write_through_spark`):
    the same columns, rows and order, under Spark's file names.

    Raises
    ------
    InvalidInputError
        ``out`` holds files already, or a line is not a joined event (one is
        named; with local paths the first in log order).
    SparkJobError
        When a task failed more often than the cluster retries it.
    """
    with spark_session(spark) as session:
        if is_uri(out) or any(is_uri(path) for path in paths):
            return _write_through_spark(session, paths, out)
        return write_log_table(paths, out, collect=SparkRunner(spark=session).collect)


#: A row's position in its file: sorting by it keeps the table in the log's order.
_POSITION = "_position"
#: Spark writes timestamps as INT96 unless told; the table's are microseconds in UTC.
_TIMESTAMP_TYPE = "spark.sql.parquet.outputTimestampType"


def _source_rows(source: Source) -> Iterator[tuple]:
    """One dsjson file's rows as tuples of the table's columns, its date and position
    (a torn last line is counted by the driver, :func:`_ends_torn`)."""
    if source.content is None:
        with open(source.path, encoding="utf-8") as handle:
            yield from _row_tuples(source.path, handle)
    else:
        yield from _row_tuples(source.path, source_lines(source))


def _row_tuples(name: str, lines: Iterable[str]) -> Iterator[tuple]:
    for position, (day, row) in enumerate(table_rows(name, lines, Counter())):
        yield (*(row[column] for column in SCHEMA.names), day, position)


def _hadoop_path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    """A Hadoop ``Path`` and its ``FileSystem``, for the driver's reads of a URI
    through the cluster's configuration (PySpark reaches Hadoop only through its
    gateway, ``_jvm``)."""
    context = spark.sparkContext
    path = context._jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(context._jsc.hadoopConfiguration())


def _ends_torn(spark: SparkSession, source: Source) -> bool:
    """Whether a dsjson file's last byte is not a newline (its writer is still
    appending), read on the driver, one byte per file."""
    if not is_uri(source.path):
        return ends_torn(source.path)
    if source.size <= 0:
        return False
    path, file_system = _hadoop_path(spark, source.path)
    stream = file_system.open(path)
    try:
        stream.seek(source.size - 1)
        return stream.read() != ord("\n")
    finally:
        stream.close()


def _new_table(spark: SparkSession, out: str | os.PathLike) -> str:
    """``out`` as the URI Spark writes to, refused unless it is new or an empty
    folder (tables are never mixed); a local path becomes a ``file:`` URI, written
    as Hadoop paths are (a space stays a space)."""
    if not is_uri(out):
        return f"file://{check_output_folder(out).resolve()}"
    try:
        path, file_system = _hadoop_path(spark, str(out))
        used = file_system.exists(path) and (not file_system.getFileStatus(path).isDirectory()
                                             or len(file_system.listStatus(path)) > 0)
    except Exception as error:  # py4j and the JVM raise many kinds
        raise InvalidInputError(f"cannot write the log table to {out} through Spark's Hadoop "
                                f"FileSystem: {_java_reason(str(error))}") from None
    if used:
        raise InvalidInputError(f"out must be a new or empty folder, got {out}, which "
                                f"already holds files")
    return str(out)


def _task_error(error: Exception, out: str) -> InvalidInputError | SparkJobError:
    """The error of a failed write: a task's InvalidInputError (a bad line, named), a
    job that failed for another reason, or Spark's refusal to write ``out``."""
    text = str(error)
    found = re.search(r"InvalidInputError: (.+)", text)
    if found:
        return InvalidInputError(found.group(1).strip())
    failure = _job_failure(error)
    if failure is not None:
        return failure
    return InvalidInputError(f"cannot write the log table to {out} through Spark: "
                             f"{_java_reason(text)}")


def _write_through_spark(spark: SparkSession, paths: Sequence[str | os.PathLike],
                         out: str | os.PathLike) -> ConversionSummary:
    """The log table written by Spark's Parquet writer, for logs or tables at URIs.

    One task per dsjson file makes its rows with :func:`ope.logtable.table_rows`;
    each task sorts them by date and position in the file, so the files
    (``dt=DATE/part-NNNNN-*.parquet``, ``NNNNN`` the file's position in the
    log) hold the log's order, as :func:`ope.partitioned.write_log_table`'s do.
    Spark's committer publishes the files only when every task has succeeded.
    """
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import LongType, StringType

    runner = SparkRunner(spark=spark)
    sources, ignored = list_sources(paths, listing=runner.listing)
    if sources[0].kind != "dsjson":
        raise InvalidInputError(f"paths must name dsjson logs to convert, got Parquet files in "
                                f"{[str(p) for p in paths]}")
    target = _new_table(spark, out)
    schema = (from_arrow_schema(SCHEMA).add("dt", StringType(), False)
              .add(_POSITION, LongType(), False))
    frame = spark.createDataFrame(runner._sources(sources).flatMap(_source_rows), schema,
                                  verifySchema=False)
    previous = spark.conf.get(_TIMESTAMP_TYPE, None)
    spark.conf.set(_TIMESTAMP_TYPE, "TIMESTAMP_MICROS")
    try:
        (frame.sortWithinPartitions("dt", _POSITION).drop(_POSITION)
         .write.partitionBy("dt").mode("append").parquet(target))
    except Exception as error:  # py4j and the JVM raise many kinds
        raise _task_error(error, str(out)) from None
    finally:
        if previous is None:
            spark.conf.unset(_TIMESTAMP_TYPE)
        else:
            spark.conf.set(_TIMESTAMP_TYPE, previous)
    torn = sum(_ends_torn(spark, source) for source in sources)
    return ConversionSummary(
        events=spark.read.parquet(target).count(),
        files=[path for path, _ in list_uri(spark, target) if path.endswith(".parquet")],
        skipped_lines=Counter({TORN_LINE: torn} if torn else {}), ignored_files=ignored)
