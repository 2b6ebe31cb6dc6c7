"""The job runner: Personalizer's evaluations and feature importances, off the request path.

HTTP workers only queue jobs (:class:`banditkit.store.jobs.JobStore`); one
:class:`JobRunner` runs them, one at a time, oldest first. It is a thread of
the learner process of ``banditkit serve`` (one per data directory, under
``learner.lock``), or of the app whose learner runs in a thread. A job's
policies run in a ``spawn`` process pool of ``JOBS_WORKERS`` children
(:class:`ope.progressive.CandidatePool`), which inherit the learner process's
niceness, so ranking keeps its cores first (docs/server.md, "Jobs"). With
``JOBS_SPARK_MASTER`` set they run on that master's executors instead
(:class:`ope.spark.SparkCandidatePool`); the runner thread waits for them, the
server does not.

When the runner starts, a job some earlier runner left ``Running`` (the server
stopped or was killed mid-job) is queued again, or ``Failed`` naming why after
``JOBS_MAX_ATTEMPTS`` attempts: no job stays ``Running`` once a runner is back.

Auto-optimization (Personalizer's ``isAutoOptimizationEnabled``): when due, the
runner queues an ``Auto`` evaluation with policy optimization over the last
``autoOptimizationFrequency``; it applies the optimum only when the lower
bound of its interval is above the upper bound of the online policy's
(``OptimalPolicyApplied``), and otherwise keeps the online policy
(``OnlinePolicyRetained``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from banditkit.errors import InvalidInputError
from banditkit.rows.engine import ccb_args
from banditkit.store.jobs import FAILED, SUCCEEDED, Job, JobStore
from serving.analyst import json_ready, partition_files
from serving.contract.fields import utc_text

if TYPE_CHECKING:
    from banditkit.engine import Engine
    from banditkit.eventlog import EventLogWriter
    from banditkit.rows import RowEngine
    from banditkit.store import DecisionStore
    from ope.progressive import CandidateRunner, Window
    from serving.config import ServerConfig

__all__ = ["AUTO_OPTIMIZATION_MIN_SECONDS", "AutoOptimization", "EVALUATION_INTERVAL_MINUTES",
           "JobLimits", "JobRunner", "ROUNDS_ARTIFACT", "model_artifact", "publish_model",
           "rounds_artifact", "run_job", "spark_problem", "without_epsilon"]

#: Artefact of an evaluation: its per-event arrays (``ope.personalizer.EvaluationRounds``).
ROUNDS_ARTIFACT = "rounds"
#: The time series interval of an evaluation's stored result (Personalizer's default).
EVALUATION_INTERVAL_MINUTES = 5
#: Shortest ``autoOptimizationFrequency``: each run evaluates that much of the log.
AUTO_OPTIMIZATION_MIN_SECONDS = 3600.0
_AUTO_OPTIMIZATION_KEY = "personalizer.auto_optimization"
_logger = logging.getLogger("banditkit.jobs")


def without_epsilon(arguments: str) -> str:
    """``arguments`` without ``--epsilon``: under epsilon-greedy the service's
    explorationPercentage sets the epsilon (``LoopSettings.learner_args``)."""
    kept: list[str] = []
    skip = False
    for token in shlex.split(arguments):
        if skip:
            skip = False
        elif token == "--epsilon":
            skip = True
        elif not token.startswith("--epsilon="):
            kept.append(token)
    return shlex.join(kept)


def publish_model(engine: Engine, model: bytes) -> int | None:
    """Publish an evaluated policy's model (origin ``apply``) when it ranks under the live
    options; its version, or None when it was trained under another exploration (the
    policy then starts from the fresh model its change published)."""
    try:
        return engine.replace_model(model, origin="apply")
    except InvalidInputError as error:
        _logger.info("the evaluation's model does not rank under the live settings: %s",
                     error)
        return None


@dataclass(frozen=True)
class AutoOptimization:
    """Personalizer's auto-optimization settings, kept in the decision store's settings.

    Parameters
    ----------
    enabled : bool, default=False
    frequency_seconds : float, default=604800.0
        Between runs, and the span of log each run evaluates (P7D).
    start_at : float or None, default=None
        Unix seconds of the first run; None: as soon as enabled.
    last_run_at : float or None, default=None
    """

    enabled: bool = False
    frequency_seconds: float = 7 * 86400.0
    start_at: float | None = None
    last_run_at: float | None = None

    @classmethod
    def read(cls, store: DecisionStore) -> AutoOptimization:
        """The settings in ``store`` (defaults when never set)."""
        return cls(**(store.get_setting(_AUTO_OPTIMIZATION_KEY) or {}))

    def write(self, store: DecisionStore) -> None:
        store.put_setting(_AUTO_OPTIMIZATION_KEY, dataclasses.asdict(self))

    def due(self, now: float) -> bool:
        """Whether a run should start at ``now``."""
        if not self.enabled or (self.start_at is not None and now < self.start_at):
            return False
        return self.last_run_at is None or now >= self.last_run_at + self.frequency_seconds


def rounds_artifact(slot_id: str) -> str:
    """The artefact name of an evaluation's per-event arrays of one slot (``""``: the
    single-slot log, or a multi-slot evaluation's whole page)."""
    return f"{ROUNDS_ARTIFACT}:{slot_id}" if slot_id else ROUNDS_ARTIFACT


def model_artifact(policy_name: str) -> str:
    """The artefact name of the model a learned policy ended an evaluation with."""
    return f"model:{policy_name}"


@dataclass(frozen=True)
class JobLimits:
    """What a job may spend (the ``JOBS_`` config keys).

    Parameters
    ----------
    workers : int, default=2
    max_attempts : int, default=2
    poll_seconds : float, default=1.0
    search_cpu_seconds : float, default=240.0
    search_max_candidates : int, default=48
    search_samples : int, default=24
    max_features : int, default=64
    spark_master : str or None, default=None
        Where a job's policies run: a Spark master URL, or None for ``workers``
        local processes.
    """

    workers: int = 2
    max_attempts: int = 2
    poll_seconds: float = 1.0
    search_cpu_seconds: float = 240.0
    search_max_candidates: int = 48
    search_samples: int = 24
    max_features: int = 64
    spark_master: str | None = None

    @classmethod
    def from_config(cls, config: ServerConfig) -> JobLimits:
        """The limits a server's configuration sets."""
        return cls(workers=config.jobs_workers, max_attempts=config.jobs_max_attempts,
                   poll_seconds=config.jobs_poll_seconds,
                   search_cpu_seconds=config.jobs_search_cpu_seconds,
                   search_max_candidates=config.jobs_search_max_candidates,
                   search_samples=config.jobs_search_samples,
                   max_features=config.jobs_max_features,
                   spark_master=config.jobs_spark_master)

    @property
    def where(self) -> str:
        """Where a job's policies run, as its description says it."""
        if self.spark_master is None:
            return f"{self.workers} local process{'es' if self.workers > 1 else ''}"
        return f"Spark {self.spark_master}"


def spark_problem(master: str) -> str | None:
    """Why jobs cannot run on Spark master ``master`` (PySpark missing, master malformed or
    not answering), or None."""
    from ope.spark import check_master, require_pyspark

    try:
        require_pyspark("JOBS_SPARK_MASTER")
        check_master(master)
    except (ModuleNotFoundError, InvalidInputError) as error:
        return str(error)
    return None


@contextmanager
def _candidate_pool(window: Window, limits: JobLimits) -> Iterator[CandidateRunner]:
    """The pool a job's policies run in: local processes, or Spark executors.

    Raises
    ------
    InvalidInputError
        When Spark cannot run them (the message says why).
    """
    from ope.progressive import CandidatePool

    if limits.spark_master is None:
        with CandidatePool.open(window, workers=limits.workers) as pool:
            yield pool
        return
    from ope.spark import SparkCandidatePool, spark_session

    problem = spark_problem(limits.spark_master)
    if problem is not None:
        raise InvalidInputError(f"cannot run the job on Spark: {problem}")
    with spark_session(limits.spark_master, app_name="banditkit-jobs") as session, \
            SparkCandidatePool.open(window, spark=session) as pool:
        yield pool


def _day(unix_seconds: float) -> Any:
    return datetime.fromtimestamp(unix_seconds, UTC).date()


def run_job(job: Job, *, log: EventLogWriter, online_args: str, limits: JobLimits,
            rows_log: EventLogWriter | None = None,
            rows_args: str = "") -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run one job over the joined log; its result JSON and its artefacts.

    Parameters
    ----------
    job : Job
        Its request holds ``start`` and ``end`` (Unix seconds, the window
        ``[start, end)`` of decision times), and for an evaluation ``policies``
        (``[{"name", "arguments"}]``) and ``enablePolicyOptimization``.
    log : EventLogWriter
        The joined log (its date partitions).
    online_args : str
        The live policy's VW arguments: the Online policy, the search's
        exploration and seed, what feature importance explains.
    limits : JobLimits
    rows_log : EventLogWriter, default=None
        The row engine's joined log, which an evaluation with ``multiSlot``
        reads instead of ``log``.
    rows_args : str, default=""
        The row engine's VW arguments (its Online policy).

    Raises
    ------
    InvalidInputError, ValueError
        When the window holds no event, or the job cannot run as asked (the
        message says why; the job fails with it).
    """
    from ope.progressive import freeze_window

    request = job.request
    start, end = float(request["start"]), float(request["end"])
    if request.get("multiSlot"):
        return _run_slots(rows_log, start=start, end=end, online_args=rows_args)
    files = partition_files(log, _day(start), _day(end))
    if not files:
        raise InvalidInputError("the log holds no event in the job's time range any more")
    window = freeze_window(files, start=start, end=end)
    with _candidate_pool(window, limits) as pool:
        return _run_in(pool, job, online_args=online_args, limits=limits)


def _run_in(pool: CandidateRunner, job: Job, *, online_args: str,
            limits: JobLimits) -> tuple[dict[str, Any], dict[str, bytes]]:
    """:func:`run_job` once its window is frozen, its policies run in ``pool``."""
    from ope.importance import feature_importance
    from ope.personalizer import evaluate_window
    from ope.search import SearchBudget

    request, window = job.request, pool.window
    head = {"onlineArgs": online_args, "nEvents": len(window),
            "skippedNotActivated": window.n_skipped, "ranOn": limits.where}
    if job.kind == "featureImportance":
        scores = feature_importance(window, args=online_args, pool=pool,
                                    max_features=limits.max_features)
        return json_ready({**head, "featureScores": [s.to_dict() for s in scores]}), {}
    result = evaluate_window(
        window, online_args=online_args,
        custom=[(p["name"], p["arguments"]) for p in request["policies"]],
        optimize=bool(request["enablePolicyOptimization"]),
        interval_minutes=EVALUATION_INTERVAL_MINUTES,
        budget=SearchBudget(cpu_seconds=limits.search_cpu_seconds,
                            max_candidates=limits.search_max_candidates,
                            stage_b_samples=limits.search_samples),
        pool=pool)
    artifacts = {model_artifact(name): model for name, model in result.models.items()}
    artifacts[ROUNDS_ARTIFACT] = result.rounds().to_bytes()
    return json_ready({**head, **result.to_dict()}), artifacts


def _run_slots(log: EventLogWriter | None, *, start: float, end: float,
               online_args: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A multi-slot evaluation over the row engine's log: its result and per-slot arrays."""
    from ope.personalizer import evaluate_slots, freeze_page_window

    files = [] if log is None else partition_files(log, _day(start), _day(end))
    if not files:
        raise InvalidInputError("the multi-slot log holds no page in the job's time range "
                                "any more")
    result = evaluate_slots(freeze_page_window(files, start=start, end=end),
                            online_args=online_args,
                            interval_minutes=EVALUATION_INTERVAL_MINUTES)
    artifacts = {rounds_artifact(slot): rounds.to_bytes()
                 for slot, rounds in result.slot_rounds.items()}
    return json_ready({"onlineArgs": online_args, **result.to_dict()}), artifacts


class JobRunner:
    """Runs queued jobs one at a time, in a daemon thread (:meth:`start`) or a step at a
    time (:meth:`run_once`), and queues auto-optimization runs when due.

    Parameters
    ----------
    jobs : JobStore
    engine : Engine
        Its log is what the jobs read, its settings give the online policy, and
        an auto-optimization applies through it.
    limits : JobLimits, default=JobLimits()
    rows : RowEngine, default=None
        The row engine, whose log and page policy multi-slot evaluations read.
    """

    def __init__(self, *, jobs: JobStore, engine: Engine, limits: JobLimits = JobLimits(),
                 rows: RowEngine | None = None) -> None:
        self.jobs = jobs
        self.engine = engine
        self.limits = limits
        self.rows = rows
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recover(self) -> list[Job]:
        """Queue again (or fail) the jobs an earlier runner left ``Running``."""
        recovered = self.jobs.recover(max_attempts=self.limits.max_attempts)
        for job in recovered:
            _log("job recovered", job, status=job.status, reason=job.message)
        return recovered

    def schedule(self, now: float | None = None) -> Job | None:
        """Queue an auto-optimization run when one is due at ``now``; the job, or None."""
        now = time.time() if now is None else now
        settings = AutoOptimization.read(self.engine.store)
        if not settings.due(now):
            return None
        start = now - settings.frequency_seconds
        stamp = utc_text(now)
        job, _ = self.jobs.create(
            "evaluation", f"auto-{stamp.replace(':', '').replace('-', '')}",
            name=f"Auto-optimization {stamp}", job_type="Auto",
            request={"name": f"Auto-optimization {stamp}", "startTime": utc_text(start),
                     "endTime": stamp, "start": start, "end": now, "policies": [],
                     "enablePolicyOptimization": True})
        dataclasses.replace(settings, last_run_at=now).write(self.engine.store)
        _log("auto-optimization queued", job)
        return job

    def run_once(self) -> Job | None:
        """Claim the oldest queued job and run it to its end; None when none waits.

        A job that cannot run as asked ends ``Failed`` with the reason; so does
        one whose run raised anything else (logged with its traceback).
        """
        job = self.jobs.claim_next(where=self.limits.where)
        if job is None:
            return None
        _log("job started", job, attempt=job.attempts, on=self.limits.where)
        started = time.monotonic()
        result: dict[str, Any] | None = None
        artifacts: dict[str, bytes] = {}
        try:
            rows = self.rows
            result, artifacts = run_job(
                job, log=self.engine.log, online_args=self.engine.settings.learner_args(),
                limits=self.limits, rows_log=None if rows is None else rows.log,
                rows_args="" if rows is None else ccb_args(rows.settings.learner_args()))
        except (InvalidInputError, ValueError) as error:
            status, message = FAILED, str(error)
        except Exception as error:
            _logger.exception("job %s %s failed", job.kind, job.job_id)
            status, message = FAILED, f"the job failed: {type(error).__name__}: {error}"
        else:
            status, message = SUCCEEDED, f"evaluated {result['nEvents']} events " \
                                         f"on {self.limits.where}"
            if job.job_type == "Auto":
                status, message = self._auto_apply(result, artifacts)
        kept = self.jobs.finish(job, status=status, message=message, result=result,
                                artifacts=artifacts)
        _log("job finished" if kept else "job deleted while it ran", job, status=status,
             seconds=round(time.monotonic() - started, 3), reason=message)
        return self.jobs.get(job.kind, job.job_id) or job

    def _auto_apply(self, result: dict[str, Any],
                    artifacts: dict[str, bytes]) -> tuple[str, str]:
        """Apply an auto-optimization's optimum if it beats the online policy beyond both
        intervals: its status (``OptimalPolicyApplied`` or ``OnlinePolicyRetained``) and why.

        The best of many noisy candidates is biased upward (the winner's curse), so
        the bar is that the intervals do not overlap, not a higher point estimate.
        """
        from ope.personalizer import OPTIMIZED

        policies = {p["name"]: p for p in result["value"]}
        online, best = policies["Online"], policies[OPTIMIZED]
        low = best["summary"]["confidenceInterval"][0]
        high = online["summary"]["confidenceInterval"][1]
        if low is None or high is None or not low > high:
            versus = f"the optimum's interval does not lie above the online policy's " \
                     f"(lower bound {low} vs upper bound {high})"
            return "OnlinePolicyRetained", f"online policy retained: {versus}"
        versus = f"the optimum's lower bound {low:.4f} is above the online upper bound " \
                 f"{high:.4f}"
        try:
            settings = self.engine.settings.with_policy_args(without_epsilon(best["arguments"]))
            self.engine.update_settings(settings)
        except InvalidInputError as error:
            return "OnlinePolicyRetained", f"online policy retained: the optimum's arguments " \
                                           f"were refused ({error})"
        version = publish_model(self.engine, artifacts[model_artifact(OPTIMIZED)])
        return "OptimalPolicyApplied", (f"applied {best['arguments']!r} "
                                        f"(model version {version}): {versus}")

    def run(self, stop: threading.Event) -> None:
        """Recover, then schedule and run jobs until ``stop`` is set (every ``poll_seconds``).

        A store that fails (a locked SQLite file while another process opens it)
        is retried at the next poll, recovery included: the thread never dies of it.
        A Spark master that cannot run jobs is named in the log here, once; each job
        then fails with the reason until it can.
        """
        master = self.limits.spark_master
        problem = None if master is None else spark_problem(master)
        if problem is not None:
            _logger.warning(json.dumps({"message": "jobs cannot run on Spark until this is "
                                                   "fixed", "JOBS_SPARK_MASTER": master,
                                        "reason": problem}))
        recovered = False
        while not stop.is_set():
            try:
                if not recovered:
                    self.recover()
                    recovered = True
                self.schedule()
                ran = self.run_once()
            except Exception:  # the store itself failed: log, wait, try again
                _logger.exception("the job runner could not claim or record a job")
                ran = None
            if ran is None:
                stop.wait(self.limits.poll_seconds)

    def start(self) -> None:
        """Run in a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,),
                                        name="banditkit-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` s. A job under way finishes
        first; if the process exits before, the next runner queues it again."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _log(message: str, job: Job, **fields: Any) -> None:
    _logger.info(json.dumps({"message": message, "kind": job.kind, "id": job.job_id,
                                **fields}))
