"""Compare several target policies with several estimators: the data scientist's entry point.

:func:`evaluate` runs on rounds in memory; :func:`evaluate_stream` on chunks
(any iterable of a :class:`~ope.rounds.LoggedRounds` and one
:class:`~ope.rounds.TargetRounds` per policy), merging per-chunk
statistics so that memory is that of one chunk. Both return an
:class:`EvaluationReport`, which turns into a pandas DataFrame
(:meth:`EvaluationReport.to_frame`) or the JSON of ``banditkit evaluate --json``
(:meth:`EvaluationReport.to_dict`).

:func:`evaluate_log` is what ``banditkit evaluate`` (and the server's
``POST /v1/evaluations``) runs on banditkit's own dsjson log.

:func:`read_table` loads a CSV or Parquet log with a column map, through pyarrow:
pandas costs more to import than a million rounds cost to evaluate, so it is
imported only when a DataFrame is asked for (:meth:`EvaluationReport.to_frame`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ope.base import Estimate, OffPolicyEstimator
from ope.estimators import DM, DR, IPS, SNDR, SNIPS, ClippedIPS, DRos, Replay, SwitchDR
from ope.rounds import LoggedRounds, TargetRounds

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "DEFAULT_DROS_SHRINKAGE",
    "DEFAULT_ESTIMATORS",
    "DEFAULT_LOG_POLICIES",
    "DEFAULT_MAX_WEIGHT",
    "DEFAULT_OFFLINE_ARGS",
    "DEFAULT_SWITCH_TAU",
    "ESTIMATOR_NAMES",
    "EvaluationReport",
    "TableLog",
    "check_estimator_names",
    "evaluate",
    "evaluate_log",
    "evaluate_stream",
    "make_estimators",
    "read_table",
]

#: Names accepted by :func:`make_estimators` (and ``--estimators``).
ESTIMATOR_NAMES = ("replay", "ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr",
                   "dros")
#: What ``banditkit evaluate`` runs when no estimator is named.
DEFAULT_ESTIMATORS = ("ips", "snips", "dr")
#: The policies :func:`evaluate_log` compares when none is named.
DEFAULT_LOG_POLICIES = ("logged", "baseline", "uniform")
#: VW arguments of the ``offline`` policy of :func:`evaluate_log`.
DEFAULT_OFFLINE_ARGS = "--cb_explore_adf --epsilon 0.05 -q ::"
_CLASSES: dict[str, type[OffPolicyEstimator]] = {
    "replay": Replay, "ips": IPS, "clipped_ips": ClippedIPS, "snips": SNIPS, "dm": DM,
    "dr": DR, "sndr": SNDR, "switch_dr": SwitchDR, "dros": DRos}
#: Defaults of :func:`make_estimators`' thresholds (and of the CLI and HTTP options).
DEFAULT_MAX_WEIGHT = 100.0
DEFAULT_SWITCH_TAU = 100.0
DEFAULT_DROS_SHRINKAGE = 100.0 ** 2
#: File names :func:`read_table` reads as CSV (tab-separated for ``.tsv``) and as Parquet.
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def check_estimator_names(names: Iterable[str]) -> list[str]:
    """Estimator names normalised (``"Clipped-IPS"`` -> ``"clipped_ips"``) and checked.

    Parameters
    ----------
    names : iterable of str
        Names as a user typed them; blank ones are dropped.

    Returns
    -------
    list of str
        Names among :data:`ESTIMATOR_NAMES`, in the order given.

    Raises
    ------
    ValueError
        When no name is left or one is unknown (the message lists them).
    """
    given = list(names)
    cleaned = [name.strip().lower().replace("-", "_") for name in given if name.strip()]
    if not cleaned:
        raise ValueError(f"estimator names must name at least one of "
                         f"{', '.join(ESTIMATOR_NAMES)}; got {given!r}")
    unknown = [name for name in cleaned if name not in ESTIMATOR_NAMES]
    if unknown:
        raise ValueError(f"estimator names must be among {', '.join(ESTIMATOR_NAMES)}; "
                         f"got unknown {', '.join(map(repr, unknown))}")
    return cleaned


def make_estimators(names: Sequence[str], *, max_weight: float = DEFAULT_MAX_WEIGHT,
                    switch_tau: float = DEFAULT_SWITCH_TAU,
                    dros_shrinkage: float = DEFAULT_DROS_SHRINKAGE,
                    confidence_level: float = 0.95, ci_method: str = "clt",
                    seed: int = 0) -> list[OffPolicyEstimator]:
    """Estimators by name, with the thresholds stated explicitly.

    Parameters
    ----------
    names : sequence of str
        Any of :data:`ESTIMATOR_NAMES`.
    max_weight : float, default=100.0
        The cap :math:`\\lambda` of ``clipped_ips``: ``min(w, max_weight)``.
        Replay's rejection bound is always the largest weight in the log.
    switch_tau : float, default=100.0
        The threshold :math:`\\tau` of ``switch_dr``, on the scale of the
        weights: rounds with ``w > switch_tau`` keep only the model's term.
    dros_shrinkage : float, default=10000.0
        The shrinkage :math:`\\lambda` of ``dros``, which replaces ``w`` by
        ``λw / (w² + λ)``. That shrunk weight peaks at ``sqrt(λ) / 2`` where
        ``w = sqrt(λ)``, so λ is on the scale of a squared weight: the default
        ``100**2`` stays within 1 % of ``w`` up to ``w = 10`` and never exceeds
        50, the order of the clipped-IPS cap.
    confidence_level : float, default=0.95
    ci_method : {"clt", "bernstein", "bootstrap"}, default="clt"
        ``"bernstein"`` applies to mean-type estimators only; ratio estimators
        (replay, snips, sndr) then keep "clt".
    seed : int, default=0
    """
    thresholds = {"clipped_ips": {"max_weight": max_weight},
                  "switch_dr": {"tau": switch_tau},
                  "dros": {"shrinkage": dros_shrinkage}}
    common = {"confidence_level": confidence_level, "seed": seed}
    out: list[OffPolicyEstimator] = []
    for name in names:
        if name not in ESTIMATOR_NAMES:
            raise ValueError(f"estimator names must be among {ESTIMATOR_NAMES}, got {name!r}")
        ratio = name in ("replay", "snips", "sndr")
        method = "clt" if (ci_method == "bernstein" and ratio) else ci_method
        kw = {**common, "ci_method": method}
        kw.update(thresholds.get(name, {}))
        out.append(_CLASSES[name](**kw))
    return out


@dataclass(frozen=True)
class EvaluationReport:
    """Estimates for several policies.

    Attributes
    ----------
    n_rounds : int
        Rounds evaluated.
    estimates : dict of str to dict of str to Estimate
        ``estimates[policy][estimator]``, policies in the order given.
    true_values : dict of str to float
        Known ground truth per policy (simulations only); empty otherwise.
    notes : dict of str to object
        Anything the reader should know (skipped events, the reward model).
    """

    n_rounds: int
    estimates: dict[str, dict[str, Estimate]]
    true_values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Estimates no logged round informs: every importance weight 0 (ESS 0).

        Then the policy never chose what the logging policy showed (for
        slates: never the same slot or page the weighting needs). An
        importance-weighted value is 0 by construction, with an interval
        collapsed to [0, 0] that looks certain and tells nothing; a model-based
        one is the reward model's guess alone. Slate estimators weight pages
        differently, so one may be informed where another is not.
        """
        out = []
        for policy, by_estimator in self.estimates.items():
            blind = [name for name, estimate in by_estimator.items()
                     if not estimate.diagnostics.effective_sample_size > 0]
            if blind:
                out.append(f"{policy}, {', '.join(blind)}: no logged round has a positive "
                           f"importance weight (ESS 0), so the logged rewards do not inform "
                           f"these estimates and their intervals are not certainty")
        return out

    def rows(self) -> list[dict[str, object]]:
        """One dict per (policy, estimator): value, ci_low, ci_high, ess, weight quantiles, ..."""
        rows = []
        for policy, by_estimator in self.estimates.items():
            for estimate in by_estimator.values():
                row = {"policy": policy, **estimate.to_row()}
                if policy in self.true_values:
                    row["true_value"] = self.true_values[policy]
                rows.append(row)
        return rows

    def to_frame(self) -> pd.DataFrame:
        """:meth:`rows` as a DataFrame (pandas is imported here, on first use)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def to_dict(self) -> dict[str, object]:
        """The ``--json`` shape: ``{"n_rounds", "estimates", "policies"}``, with
        ``"notes"`` and ``"warnings"`` when there are any.

        ``estimates`` holds the first policy's results, exactly
        ``{"ips": {"value", "ci", "ess", ...}, ...}``; ``policies`` maps every
        policy (the first included) to ``{"estimates": ...}`` and, when known,
        ``"true_value"``.
        """
        policies: dict[str, object] = {}
        for policy, by_estimator in self.estimates.items():
            entry: dict[str, object] = {
                "estimates": {name: e.to_dict() for name, e in by_estimator.items()}}
            if policy in self.true_values:
                entry["true_value"] = self.true_values[policy]
            policies[policy] = entry
        first = next(iter(policies.values()), {"estimates": {}})
        out: dict[str, object] = {"n_rounds": self.n_rounds,
                                  "estimates": first["estimates"],  # type: ignore[index]
                                  "policies": policies}
        if self.notes:
            out["notes"] = self.notes
        if self.warnings:
            out["warnings"] = self.warnings
        return out


def _check_inputs(targets: Mapping[str, object],
                  estimators: Sequence[OffPolicyEstimator] | None
                  ) -> list[OffPolicyEstimator]:
    if not targets:
        raise ValueError("targets must name at least one policy, got none")
    if estimators is None:
        with_model = all(isinstance(t, TargetRounds) and t.model_value is not None
                         and t.model_reward is not None for t in targets.values())
        names = DEFAULT_ESTIMATORS if with_model else ("ips", "snips")
        estimators = make_estimators(names)
    estimators = list(estimators)
    if not estimators:
        raise ValueError("estimators must hold at least one estimator, got none")
    for estimator in estimators:
        if not isinstance(estimator, OffPolicyEstimator):
            raise TypeError(f"estimators must be OffPolicyEstimator instances, got "
                            f"{type(estimator).__name__}")
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"estimators must have distinct names, got {names}")
    return estimators


def evaluate(rounds: LoggedRounds, targets: Mapping[str, TargetRounds | np.ndarray], *,
             estimators: Sequence[OffPolicyEstimator] | None = None,
             true_values: Mapping[str, float] | None = None) -> EvaluationReport:
    """Every estimator on every target policy, on rounds held in memory.

    Parameters
    ----------
    rounds : LoggedRounds
    targets : mapping of str to TargetRounds or ndarray of shape (n_rounds,)
        Policy name to its behaviour on the rounds.
    estimators : sequence of OffPolicyEstimator, default=None
        ``None`` means IPS, SNIPS and DR (:data:`DEFAULT_ESTIMATORS`), DR only
        when every target carries reward-model values.
    true_values : mapping of str to float, default=None
        Ground truth to show next to the estimates (simulations).

    Returns
    -------
    EvaluationReport
    """
    estimators = _check_inputs(targets, estimators)
    estimates = {policy: {e.name: e.estimate(rounds, target) for e in estimators}
                 for policy, target in targets.items()}
    return EvaluationReport(n_rounds=len(rounds), estimates=estimates,
                            true_values=dict(true_values or {}))


def evaluate_stream(chunks: Iterable[tuple[LoggedRounds, Mapping[str, TargetRounds]]], *,
                    estimators: Sequence[OffPolicyEstimator],
                    true_values: Mapping[str, float] | None = None,
                    notes: Mapping[str, object] | None = None) -> EvaluationReport:
    """Like :func:`evaluate`, chunk by chunk (every chunk must name the same policies).

    Estimators must stream: ``ci_method`` "clt" or "bernstein", and Replay
    with an explicit ``max_weight``.
    """
    if estimators is None:
        raise ValueError("estimators must be given to evaluate_stream (which policies carry "
                         "a reward model is only known once chunks arrive)")
    estimators = _check_inputs({"_": None}, estimators)
    totals: dict[str, dict[str, object]] = {}
    policies: list[str] | None = None
    n_rounds = 0
    for rounds, targets in chunks:
        if policies is None:
            policies = list(targets)
            totals = {p: {} for p in policies}
        elif list(targets) != policies:
            raise ValueError(f"every chunk must give the policies {policies}, "
                             f"got {list(targets)}")
        n_rounds += len(rounds)
        for policy, target in targets.items():
            for estimator in estimators:
                stats = estimator.statistics(rounds, target)
                previous = totals[policy].get(estimator.name)
                totals[policy][estimator.name] = stats if previous is None \
                    else previous.merge(stats)  # type: ignore[attr-defined]
    if policies is None:
        raise ValueError("chunks must yield at least one chunk, got none")
    estimates = {policy: {e.name: e.estimate_from_statistics(totals[policy][e.name])
                          for e in estimators} for policy in policies}
    return EvaluationReport(n_rounds=n_rounds, estimates=estimates,
                            true_values=dict(true_values or {}), notes=dict(notes or {}))


def evaluate_log(paths: Sequence[str | Path], *, estimators: Sequence[OffPolicyEstimator],
                 policies: Sequence[str] = DEFAULT_LOG_POLICIES, chunk_size: int = 50_000,
                 train_fraction: float = 0.5, offline_args: str = DEFAULT_OFFLINE_ARGS,
                 model_args: str | None = None, data_dir: str | Path | None = None,
                 database_url: str | None = None, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> EvaluationReport:
    """Off-policy evaluation of named policies on banditkit's dsjson decision log.

    What ``banditkit evaluate LOG`` and ``POST /v1/evaluations`` run: the
    policies are resolved by :func:`ope.dsjson.make_policy`, and
    estimators that need a reward model (DM and the DR family) get a
    :class:`~ope.dsjson.HashedRewardModel` cross-fitted within each chunk.

    Parameters
    ----------
    paths : sequence of path
        dsjson files or folders (searched recursively for ``*.dsjson``).
    estimators : sequence of OffPolicyEstimator
        From :func:`make_estimators`; they must stream (``ci_method`` "clt"
        or "bernstein").
    policies : sequence of str, default=("logged", "baseline", "uniform")
        ``logged``, ``baseline``, ``uniform``, ``offline``, ``model:PATH``,
        ``model:latest``; empty means the default.
    chunk_size : int, default=50000
        Events per chunk (memory and reward-model cross-fitting unit).
    train_fraction : float, default=0.5
        Share of the log that trains ``offline`` (then held out from evaluation).
    offline_args : str, default="--cb_explore_adf --epsilon 0.05 -q ::"
        VW arguments of ``offline``.
    model_args : str, default=None
        VW arguments of ``model:PATH`` files (``None``: VWLearner's default).
    data_dir : path, default=None
        Data directory of ``model:latest``.
    database_url : str, default=None
        The PostgreSQL store of ``model:latest`` instead.
    seed : int, default=0
        Seeds the reward model's folds.
    progress : callable, default=None
        Called with the number of events just read.

    Returns
    -------
    EvaluationReport
    """
    from ope.dsjson import HashedRewardModel, evaluate_dsjson

    needs_model = any(e.needs_model for e in estimators)
    return evaluate_dsjson(
        list(paths), policies=list(policies) or list(DEFAULT_LOG_POLICIES),
        estimators=estimators,
        reward_model=HashedRewardModel(seed=seed) if needs_model else None,
        chunk_size=chunk_size, train_fraction=train_fraction, offline_args=offline_args,
        model_args=model_args, data_dir=data_dir, database_url=database_url,
        progress=progress)


@dataclass(frozen=True, eq=False)
class TableLog:
    """A CSV/Parquet log read through a column map.

    Attributes
    ----------
    rounds : LoggedRounds
    targets : dict of str to TargetRounds
        One per target-probability column (named after it), plus ``"logged"``
        when asked for.
    """

    rounds: LoggedRounds
    targets: dict[str, TargetRounds]


def read_table(paths: Sequence[str | Path], *, reward_col: str, propensity_col: str,
               action_col: str | None = None, n_actions_col: str | None = None,
               target_prob_cols: Sequence[str] = (), model_reward_col: str | None = None,
               model_value_col: str | None = None,
               include_logged: bool = False) -> TableLog:
    """Read CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``) files into rounds.

    Files are read by pyarrow, only the named columns are kept, and pandas is
    never imported.

    Parameters
    ----------
    paths : sequence of path
        Files, concatenated in order. Each must have every named column; a
        column's type may widen from file to file (integers to floats).
    reward_col, propensity_col : str
        Reward and logging propensity of the logged action.
    action_col : str, default=None
        Logged action: a non-negative integer index, or any other values,
        coded 0..K-1 in order of appearance.
    n_actions_col : str, default=None
        Actions offered per round; default: the number of distinct actions.
    target_prob_cols : sequence of str, default=()
        Each column holds one target policy's probability of the logged action.
    model_reward_col, model_value_col : str, default=None
        Reward model's prediction for the logged action and its expectation
        under the target (needed by DM and the DR family; shared by all targets).
    include_logged : bool, default=False
        Add the logged policy itself (target probability = propensity).

    Raises
    ------
    ValueError
        When a file does not exist or is not a table, a named column is absent,
        has an empty cell or (except the action) holds something other than
        numbers, or the files hold no row.
    """
    if not paths:
        raise ValueError("paths must name at least one file, got none")
    wanted = [reward_col, propensity_col, action_col, n_actions_col, model_reward_col,
              model_value_col, *target_prob_cols]
    columns = list(dict.fromkeys(c for c in wanted if c is not None))
    floats = [c for c in (reward_col, propensity_col, model_reward_col, model_value_col,
                          *target_prob_cols) if c is not None]
    table = _concatenate([_read_file(Path(raw), columns, floats) for raw in paths])
    if table.num_rows == 0:
        raise ValueError(f"log files must hold at least one row, got none in "
                         f"{[str(p) for p in paths]}")
    action: np.ndarray = np.zeros(table.num_rows, dtype=np.int64)
    n_actions: np.ndarray | int = 1
    if action_col is not None:
        action, n_actions = _action_index(table, action_col)
    if n_actions_col is not None:
        n_actions = _numbers(table, n_actions_col)
    rounds = LoggedRounds(reward=_numbers(table, reward_col),
                          action=action, probability=_numbers(table, propensity_col),
                          n_actions=n_actions)
    model_reward = None if model_reward_col is None else _numbers(table, model_reward_col)
    model_value = None if model_value_col is None else _numbers(table, model_value_col)
    targets: dict[str, TargetRounds] = {}
    if include_logged:
        targets["logged"] = TargetRounds(probability=rounds.probability,
                                         model_reward=model_reward, model_value=model_value)
    for column in target_prob_cols:
        targets[column] = TargetRounds(probability=_numbers(table, column),
                                       model_reward=model_reward, model_value=model_value)
    return TableLog(rounds=rounds, targets=targets)



def _read_file(path: Path, columns: list[str], floats: list[str]) -> pa.Table:
    """The named columns of one CSV or Parquet file; only those are read.

    A CSV's ``floats`` columns are parsed as float64 straight away, which
    spares pyarrow inferring their type; a file where that fails (a column
    missing, or not all numbers) is read again with inferred types, so that
    the checks name the problem as they would anyway.
    """
    if not path.is_file():
        raise ValueError(f"log file does not exist: {path}")
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as parquet:
            _check_columns(columns, parquet.schema_arrow.names, path)
            return parquet.read(columns=columns)
    if name.endswith(_CSV_SUFFIXES):
        import pyarrow as pa
        import pyarrow.csv as pv

        parse = pv.ParseOptions(delimiter="\t" if name.endswith(".tsv") else ",")
        try:
            return pv.read_csv(path, parse_options=parse, convert_options=pv.ConvertOptions(
                include_columns=columns, column_types=dict.fromkeys(floats, pa.float64()),
                strings_can_be_null=True))
        except (pa.ArrowInvalid, pa.ArrowKeyError):
            pass
        # An empty cell is missing in a text column too, as in pandas.
        table = pv.read_csv(path, parse_options=parse,
                            convert_options=pv.ConvertOptions(strings_can_be_null=True))
        _check_columns(columns, table.column_names, path)
        return table.select(columns)
    raise ValueError(f"log files must be .dsjson, .csv or .parquet, got {path}")


def _check_columns(wanted: list[str], present: list[str], path: Path) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; {path} has {present}")


def _concatenate(tables: list[pa.Table]) -> pa.Table:
    """One table from the files' tables, integer columns widened to float where files differ."""
    if len(tables) == 1:
        return tables[0]
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(f"log files must give each column one type; {error}") from None


def _complete_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """A column, refused when a cell is empty (a float NaN is left to the rounds' checks)."""
    column = table.column(name)
    if column.null_count:
        import pyarrow.compute as pc

        first = int(pc.index(pc.is_null(column), True).as_py())
        raise ValueError(f"column {name!r} must have a value in every row, got "
                         f"{column.null_count} empty, the first at position {first}")
    return column


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A complete column of integers or floats as one numpy array.

    Through DLPack, because pyarrow's ``to_numpy`` imports pandas.
    """
    return np.from_dlpack(column.combine_chunks())


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    """A column of numbers (booleans as 0/1) as float64, or integers as int64."""
    import pyarrow as pa

    column = _complete_column(table, name)
    kind = column.type
    if pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        column = column.cast(pa.float64())
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise ValueError(f"column {name!r} must hold numbers, got {kind} values")
    values = _to_numpy(column)
    return values.astype(np.int64 if values.dtype.kind in "iu" else np.float64, copy=False)


def _action_index(table: pa.Table, name: str) -> tuple[np.ndarray, int]:
    """The logged action's index and the number of actions: a non-negative integer
    column as it is, any other column coded 0..K-1 in order of appearance."""
    import pyarrow as pa

    column = _complete_column(table, name)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = _numbers(table, name)
        if values.dtype.kind == "i" and values.min() >= 0:
            return values, int(values.max()) + 1
        if np.isnan(values).any():
            raise ValueError(f"column {name!r} must have a value in every row, got NaN at "
                             f"position {int(np.flatnonzero(np.isnan(values))[0])}")
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    uniques = pc.unique(column)
    codes = _to_numpy(pc.index_in(column, value_set=uniques))
    return codes.astype(np.int64), max(len(uniques), 1)
