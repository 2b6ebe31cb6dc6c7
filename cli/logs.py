"""``banditkit logs``: the decision log for analysts (``to-parquet``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from banditkit.errors import BanditkitError
from cli.evaluate import LogPath

__all__ = ["logs"]


@click.group("logs")
def logs() -> None:
    """The joined decision log (dsjson date partitions) in other forms."""


@logs.command("to-parquet")
@click.argument("paths", nargs=-1, required=True, type=LogPath())
@click.option("--out", required=True, type=LogPath(folder=True),
              help="New or empty folder of the table (dt=YYYY-MM-DD/ partitions); a URI "
                   "(hdfs://, s3a://...) with --spark.")
@click.option("--spark", "spark_master", default=None, metavar="MASTER",
              envvar="BANDITKIT_SPARK_MASTER", show_envvar=True,
              help="Convert on Spark, one task per log file (local[2], spark://HOST:PORT, ...); "
                   "needs banditkit[spark].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def to_parquet(paths: tuple[Path | str, ...], out: Path | str, spark_master: str | None,
               as_json: bool) -> None:
    """Write dsjson logs as a Parquet table partitioned by date, for Spark SQL and pandas.

    One row per joined event: ids, time, model version, the chosen action, its
    probability, the ranked actions and probabilities, reward, outcomes, and
    the context and action features as JSON (docs/evaluation.md, "The log as a
    table"). ``banditkit evaluate OUT`` evaluates the table as the log. With
    --spark, logs and OUT may be URIs, which Spark reads and writes through the
    cluster's Hadoop FileSystem.
    """
    uris = [p for p in (*paths, out) if isinstance(p, str)]
    if uris and spark_master is None:
        raise click.UsageError(f"{uris[0]} is a URI, which only Spark reads and writes: add "
                               f"--spark MASTER (or set BANDITKIT_SPARK_MASTER)")
    try:
        if spark_master is None:
            from ope.partitioned import write_log_table

            summary = write_log_table(paths, out)
        else:
            from ope.spark import to_parquet as spark_to_parquet

            summary = spark_to_parquet(spark_master, paths, out)
    except (ValueError, ModuleNotFoundError, BanditkitError) as error:
        raise click.ClickException(str(error)) from None
    result = {"out": str(out), **summary.to_dict()}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['events']:,} events in {result['files']} files, "
               f"{result['partitions']} date partitions: {out}")
    for reason, count in summary.skipped_lines.items():
        click.echo(f"skipped: {count} line(s), {reason}")
    for reason, ignored in summary.ignored_files.items():
        click.echo(f"ignored: {ignored['count']} file(s), {reason}, e.g. "
                   f"{', '.join(ignored['examples'])}")
