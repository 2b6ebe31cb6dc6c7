"""CSV and Parquet logs with a column map, read into rounds through pyarrow.

Only the named columns are read and pandas is never imported. This module
imports none of the estimators, so that ``banditkit evaluate`` can read a table
in a thread (pyarrow's parse releases the GIL) while the estimators' modules
load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ope.rounds import LoggedRounds, TargetRounds

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TableLog", "read_table"]

#: File names :func:`read_table` reads as CSV (tab-separated for ``.tsv``) and as Parquet.
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")


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
