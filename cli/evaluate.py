"""``banditkit evaluate`` and ``banditkit simulate``: thin shells over ope and simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli._options import data_dir_option, database_url_option

if TYPE_CHECKING:
    from ope.evaluation import EvaluationReport

__all__ = ["LogPath", "evaluate", "simulate"]

_TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
_SHOWN = ["policy", "estimator", "value", "ci_low", "ci_high", "ci_method", "ess",
          "max_weight", "unsupported_share"]


class LogPath(click.ParamType):
    """An existing local path (a ``Path``), or with ``folder=True`` a folder to write
    (existing or not), or a URI kept as text, which --spark reads and writes."""

    name = "path"

    def __init__(self, *, folder: bool = False) -> None:
        self.folder = folder

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> Path | str:
        from ope.uri import is_uri

        if isinstance(value, str) and is_uri(value):
            return value
        local = (click.Path(file_okay=False, path_type=Path) if self.folder
                 else click.Path(exists=True, path_type=Path))
        return local.convert(value, param, ctx)


def _estimator_names(text: str) -> list[str]:
    from ope.evaluation import ESTIMATOR_NAMES, check_estimator_names

    try:
        return check_estimator_names(text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected a comma-separated list of "
                                 f"{', '.join(ESTIMATOR_NAMES)}; got {text!r}",
                                 param_hint="--estimators") from None


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _text_table(rows: list[dict[str, object]], columns: list[str]) -> str:
    """Right-aligned columns under their names, the way a terminal reader scans them."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(line[i]) for line in cells])
              for i, column in enumerate(columns)]
    return "\n".join(" ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
                     for line in [columns, *cells])


def _print(report: EvaluationReport, as_json: bool) -> None:
    if as_json:
        payload = report.to_dict()
        if "engine" in report.notes:
            payload["engine"] = report.notes["engine"]
        click.echo(json.dumps(payload, default=str))
        return
    rows = report.rows()
    present = {key for row in rows for key in row}
    columns = [c for c in _SHOWN + ["true_value", "acceptance_rate"] if c in present]
    click.echo(f"{report.n_rounds:,} rounds")
    click.echo(_text_table(rows, columns))
    for key, value in report.notes.items():
        click.echo(f"note: {key} = {value}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}")


@click.command("evaluate")
@data_dir_option
@database_url_option
@click.argument("logs", nargs=-1, required=True, type=LogPath())
@click.option("--policy", "policies", multiple=True,
              help="Policy to evaluate (repeatable). dsjson logs: logged, baseline, uniform, "
                   "offline (VW trained on the first --train-fraction of the log; then all "
                   "policies are evaluated on the rest), model:PATH (a saved VW model), "
                   "model:latest (the latest model published in --data-dir, or in the "
                   "PostgreSQL store of --database-url). "
                   "[default: logged, baseline, uniform]. Tables: logged; target policies "
                   "come from --target-prob-col.")
@click.option("--estimators", "estimator_text", default=None,
              help="Comma-separated: replay, ips, clipped_ips, snips, dm, dr, sndr, switch_dr, "
                   "dros. For tables, model-based ones need --model-reward-col and "
                   "--model-value-col. [default: ips,snips,dr; for a table without model "
                   "columns ips,snips]")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"n_rounds": N, "estimates": {"ips": {"value", "ci", "ess", ...}}, '
                   '"policies": {...}} (estimates: the first policy).')
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write an HTML report with plots into this folder.")
@click.option("--reward-col", default="reward", show_default=True, help="Table: reward column.")
@click.option("--propensity-col", default="propensity", show_default=True,
              help="Table: logging propensity of the logged action.")
@click.option("--action-col", default=None, help="Table: logged action column.")
@click.option("--n-actions-col", default=None, help="Table: actions offered per round.")
@click.option("--target-prob-col", "target_prob_cols", multiple=True,
              help="Table: a target policy's probability of the logged action (repeatable; "
                   "each column is one policy).")
@click.option("--model-reward-col", default=None,
              help="Table: reward model's prediction for the logged action.")
@click.option("--model-value-col", default=None,
              help="Table: reward model's expected value under the target policy.")
@click.option("--max-weight", type=click.FloatRange(min=0, min_open=True), default=100.0,
              show_default=True, help="clipped_ips: the cap of each weight, min(w, cap).")
@click.option("--switch-tau", type=click.FloatRange(min=0), default=100.0, show_default=True,
              help="switch_dr: rounds whose weight exceeds tau keep only the model's term.")
@click.option("--dros-shrinkage", type=click.FloatRange(min=0, min_open=True),
              default=10_000.0, show_default=True,
              help="dros: lambda of the shrunk weight lambda*w/(w^2+lambda), which peaks at "
                   "sqrt(lambda)/2; a squared-weight scale.")
@click.option("--ci-method", type=click.Choice(["clt", "bernstein", "bootstrap"]),
              default="clt", show_default=True,
              help="Interval kind (bootstrap: tables only, it needs every round in memory).")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.95, show_default=True)
@click.option("--chunk-size", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="dsjson: events per chunk (memory and reward-model cross-fitting unit).")
@click.option("--train-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.5, show_default=True, help="dsjson: share used to train 'offline'.")
@click.option("--offline-args", default="--cb_explore_adf --epsilon 0.05 -q ::",
              show_default=True, help="dsjson: VW arguments of the 'offline' policy.")
@click.option("--model-args", default=None,
              help="dsjson: VW arguments of model:PATH policies [default: VWLearner's].")
@click.option("--page-reward", "--slate-reward", "page_reward",
              type=click.Choice(["slots", "page"]), default="slots", show_default=True,
              help="Row logs: per-slot rewards, or the page reward alone.")
@click.option("--custom", "custom", multiple=True, metavar="[NAME=]ARGS",
              help="dsjson: a Custom policy's VW arguments, scored Personalizer's way by "
                   "progressive validation over the log (repeatable). Any of --custom, "
                   "--optimize and --feature-importance switches to Personalizer's "
                   "evaluation: Online, Baseline, Random, each Custom and the optimum.")
@click.option("--optimize", is_flag=True,
              help="dsjson: search learning arguments (interactions, -l, --power_t, --l2, "
                   "--cb_type) with --online-args' exploration.")
@click.option("--feature-importance", "importance", is_flag=True,
              help="dsjson: score every feature by the drop in the online arguments' value "
                   "when it is removed.")
@click.option("--online-args", default="--cb_explore_adf --epsilon 0.2 -q ::",
              show_default=True, help="dsjson: the live policy's VW arguments (exploration "
                                      "kept by the search; explained by feature importance).")
@click.option("--interval-minutes", type=click.Choice(["5", "60", "360", "720", "1440"]),
              default="60", show_default=True, help="Time series bucket.")
@click.option("--window", "window_kind", type=click.Choice(["expanding", "rolling"]),
              default="expanding", show_default=True,
              help="Time series: everything up to each bucket, or each bucket alone.")
@click.option("--start", type=click.DateTime(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"]), default=None,
              help="Evaluate decisions from this UTC time on.")
@click.option("--end", type=click.DateTime(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"]), default=None,
              help="Evaluate decisions before this UTC time.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes running learned policies.")
@click.option("--budget-cpu-seconds", type=click.FloatRange(min=0, min_open=True),
              default=240.0, show_default=True, help="--optimize: CPU-seconds for candidates.")
@click.option("--max-candidates", type=click.IntRange(min=1), default=48, show_default=True,
              help="--optimize: most candidates tried.")
@click.option("--spark", "spark_master", default=None, metavar="MASTER",
              envvar="BANDITKIT_SPARK_MASTER", show_envvar=True,
              help="Evaluate a dsjson log or a log table on Spark (local[2], spark://HOST:PORT, "
                   "yarn, ...): one task per file, the same estimates (docs/evaluation.md). "
                   "LOGS may then be URIs (hdfs://, s3a://, file://...) read through Spark's "
                   "Hadoop FileSystem. Needs banditkit[spark].")
@click.option("--seed", type=int, default=0, show_default=True)
def evaluate(data_dir: Path, database_url: str | None, logs: tuple[Path | str, ...],
             policies: tuple[str, ...],
             estimator_text: str | None,
             as_json: bool, report_dir: Path | None, reward_col: str, propensity_col: str,
             action_col: str | None, n_actions_col: str | None,
             target_prob_cols: tuple[str, ...], model_reward_col: str | None,
             model_value_col: str | None, max_weight: float, switch_tau: float,
             dros_shrinkage: float, ci_method: str,
             confidence: float, chunk_size: int, train_fraction: float, offline_args: str,
             model_args: str | None, page_reward: str, custom: tuple[str, ...],
             optimize: bool, importance: bool, online_args: str, interval_minutes: str,
             window_kind: str, start: datetime | None, end: datetime | None, workers: int,
             budget_cpu_seconds: float, max_candidates: int, spark_master: str | None,
             seed: int) -> None:
    """Off-policy evaluation of policies on logged decisions (dsjson, CSV or Parquet).

    Row-ordering logs (the row engine's CCB dsjson, ``DATA_DIR/rows/logs``) are
    recognised and evaluated with slate estimators (rips, sips, iips, pi) and
    page policies (logged, uniform, editorial, model:PATH, greedy:PATH).

    With --custom, --optimize or --feature-importance, dsjson logs get
    Personalizer's evaluation instead (docs/evaluation.md, "Policy evaluation
    and search").

    A folder of Parquet files written by ``banditkit logs to-parquet`` (a log
    table) is evaluated as its dsjson log would be; --spark runs either on Spark.
    """
    from ope.evaluation import make_estimators

    uris = [p for p in logs if isinstance(p, str)]
    if uris and spark_master is None:
        raise click.UsageError(f"{uris[0]} is a URI, which is read through Spark's Hadoop "
                               f"FileSystem: add --spark MASTER (e.g. --spark 'local[2]', or "
                               f"the cluster's master)")
    if spark_master is not None and (custom or optimize or importance):
        raise click.UsageError("--spark evaluates fixed policies; --custom, --optimize and "
                               "--feature-importance run in process")
    if custom or optimize or importance:
        _evaluate_window(logs, custom=custom, optimize=optimize, importance=importance,
                         online_args=online_args, interval_minutes=int(interval_minutes),
                         window_kind=window_kind.capitalize(), start=start, end=end,
                         workers=workers, budget_cpu_seconds=budget_cpu_seconds,
                         max_candidates=max_candidates, confidence=confidence, seed=seed,
                         as_json=as_json, report_dir=report_dir)
        return

    tables = [p for p in logs if str(p).lower().endswith(_TABLE_SUFFIXES)]
    if (database_url is not None and "model:latest" in policies and spark_master is None
            and (tables or _is_row_log(logs))):
        raise click.UsageError("model:latest from --database-url is evaluated on dsjson "
                               "decision logs and log tables; for page (row) logs save it "
                               "and pass model:PATH")
    if spark_master is not None and tables:
        raise click.UsageError("--spark reads dsjson logs and log tables (folders written by "
                               "'banditkit logs to-parquet'), not files with a column map")
    if spark_master is not None or _is_log_table(logs):
        _evaluate_partitioned(logs, policies, estimator_text, spark_master, max_weight=max_weight,
                              switch_tau=switch_tau, dros_shrinkage=dros_shrinkage,
                              confidence=confidence, ci_method=ci_method, seed=seed,
                              chunk_size=chunk_size, model_args=model_args, data_dir=data_dir,
                              database_url=database_url, as_json=as_json,
                              report_dir=report_dir)
        return
    if not tables and _is_row_log(logs):
        _evaluate_rows(logs, policies, estimator_text, page_reward=page_reward,
                       model_args=model_args, confidence=confidence, as_json=as_json,
                       report_dir=report_dir)
        return
    if tables and len(tables) != len(logs):
        raise click.UsageError("LOG arguments must be all dsjson or all tables (CSV/Parquet)")
    if estimator_text is None:
        without_model = tables and (model_reward_col is None or model_value_col is None)
        estimator_text = "ips,snips" if without_model else "ips,snips,dr"
    names = _estimator_names(estimator_text)
    try:
        estimators = make_estimators(names, max_weight=max_weight, switch_tau=switch_tau,
                                     dros_shrinkage=dros_shrinkage,
                                     confidence_level=confidence, ci_method=ci_method,
                                     seed=seed)
        if tables:
            report = _evaluate_table(tables, policies, estimators, reward_col=reward_col,
                                     propensity_col=propensity_col, action_col=action_col,
                                     n_actions_col=n_actions_col,
                                     target_prob_cols=target_prob_cols,
                                     model_reward_col=model_reward_col,
                                     model_value_col=model_value_col)
        else:
            report = _evaluate_dsjson(logs, policies, estimators, chunk_size=chunk_size,
                                      train_fraction=train_fraction,
                                      offline_args=offline_args, model_args=model_args,
                                      data_dir=data_dir, database_url=database_url, seed=seed)
    except (ValueError, TypeError) as error:
        raise click.ClickException(str(error)) from None
    _finish(report, as_json, report_dir)


def _is_log_table(paths: tuple[Path, ...]) -> bool:
    """True when a folder holds Parquet files (a log table) and no dsjson."""
    folders = [p for p in paths if p.is_dir()]
    return bool(folders) and all(
        next(p.rglob("*.parquet"), None) is not None and next(p.rglob("*.dsjson"), None) is None
        for p in folders)


def _evaluate_partitioned(logs: tuple[Path | str, ...], policies: tuple[str, ...],
                          estimator_text: str | None, spark_master: str | None, *,
                          max_weight: float, switch_tau: float, dros_shrinkage: float,
                          confidence: float, ci_method: str, seed: int, chunk_size: int,
                          model_args: str | None, data_dir: Path, database_url: str | None,
                          as_json: bool, report_dir: Path | None) -> None:
    """A dsjson log or a log table, file by file: on Spark, or in process for a table."""
    from banditkit.errors import BanditkitError
    from ope.evaluation import make_estimators
    from ope.partitioned import evaluate_partitions

    if _is_row_log(tuple(p for p in logs if isinstance(p, Path))):
        raise click.UsageError("--spark evaluates single-decision logs; page (row) logs run "
                               "in process")
    names = _estimator_names(estimator_text or "ips,snips,dr")
    options = {"policies": list(policies) or ["logged", "baseline", "uniform"],
               "chunk_size": chunk_size, "model_args": model_args, "data_dir": data_dir,
               "database_url": database_url, "seed": seed}
    try:
        estimators = make_estimators(names, max_weight=max_weight, switch_tau=switch_tau,
                                     dros_shrinkage=dros_shrinkage, confidence_level=confidence,
                                     ci_method=ci_method, seed=seed)
        if spark_master is None:
            report = evaluate_partitions(logs, estimators=estimators, **options)
        else:
            from ope.spark import evaluate_spark

            report = evaluate_spark(spark_master, logs, estimators=estimators, **options)
    except (ValueError, TypeError, ModuleNotFoundError, BanditkitError) as error:
        raise click.ClickException(str(error)) from None
    _finish(report, as_json, report_dir)


def _custom_policies(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    """``[NAME=]ARGS`` options as (name, args); unnamed ones are ``custom-1``, ``custom-2``..."""
    out = []
    for number, text in enumerate(texts, start=1):
        name, sep, args = text.partition("=")
        if not sep or name.startswith("-") or " " in name.strip():
            name, args = f"custom-{number}", text
        out.append((name.strip(), args.strip()))
    return out


def _evaluate_window(logs: tuple[Path, ...], *, custom: tuple[str, ...], optimize: bool,
                     importance: bool, online_args: str, interval_minutes: int,
                     window_kind: str, start: datetime | None, end: datetime | None,
                     workers: int, budget_cpu_seconds: float, max_candidates: int,
                     confidence: float, seed: int, as_json: bool,
                     report_dir: Path | None) -> None:
    from banditkit.errors import InvalidInputError
    from ope.personalizer import evaluate_window
    from ope.progressive import freeze_window
    from ope.search import SearchBudget
    from ope.timeseries import default_estimators

    try:
        window = freeze_window(logs, start=start and start.replace(tzinfo=UTC),
                               end=end and end.replace(tzinfo=UTC))
        result = evaluate_window(
            window, online_args=online_args, custom=_custom_policies(custom),
            optimize=optimize, importance=importance, interval_minutes=interval_minutes,
            window_kind=window_kind, estimators=default_estimators(confidence),
            budget=SearchBudget(cpu_seconds=budget_cpu_seconds, max_candidates=max_candidates,
                                seed=seed),
            workers=workers)
    except (ValueError, InvalidInputError) as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo(f"{len(window):,} events ({window.n_skipped} never activated, left out)")
        for policy in result.policies:
            estimate = policy.summary
            click.echo(f"{policy.name:>20} {policy.policy_source:<22} {estimate.value:.4f} "
                       f"[{estimate.ci[0]:.4f}, {estimate.ci[1]:.4f}]  {policy.arguments}")
        if result.search is not None:
            click.echo(f"search: {result.search.n_candidates} candidates, "
                       f"{result.search.cpu_seconds:.1f} CPU-s; best {result.search.best.args}")
        for score in result.feature_scores or ():
            click.echo(f"feature {score.namespace}.{score.feature_name}: {score.score:.3f} "
                       f"(drop {score.drop:+.4f} [{score.ci[0]:+.4f}, {score.ci[1]:+.4f}])")
    if report_dir is not None:
        from ope.report import write_report

        index = write_report(result.to_report(), report_dir, search=result.search,
                             feature_scores=result.feature_scores)
        if not as_json:
            click.echo(f"report: {index}")


def _is_row_log(paths: tuple[Path, ...]) -> bool:
    """True when the first logged event is a multi-slot (CCB) page."""
    from banditkit.eventlog import log_files

    for path in log_files(paths):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    return '"_outcomes"' in line
    return False


def _evaluate_rows(paths: tuple[Path, ...], policies: tuple[str, ...],
                   estimator_text: str | None, *, page_reward: str, model_args: str | None,
                   confidence: float, as_json: bool, report_dir: Path | None) -> None:
    from ope.rows_ope import evaluate_pages

    try:
        report = evaluate_pages(
            list(paths), policies=list(policies) or ["logged", "uniform", "editorial"],
            estimators=[n.strip() for n in (estimator_text or "rips,sips").split(",")
                        if n.strip()],
            reward=page_reward,
            confidence_level=confidence, model_args=model_args)
    except (ValueError, TypeError) as error:
        raise click.ClickException(str(error)) from None
    _finish(report, as_json, report_dir)


def _finish(report: EvaluationReport, as_json: bool, report_dir: Path | None) -> None:
    _print(report, as_json)
    if report_dir is not None:
        from ope.report import write_report

        index = write_report(report, report_dir)
        if not as_json:
            click.echo(f"report: {index}")


def _evaluate_table(paths: list[Path], policies: tuple[str, ...], estimators: list, *,
                    reward_col: str, propensity_col: str, action_col: str | None,
                    n_actions_col: str | None, target_prob_cols: tuple[str, ...],
                    model_reward_col: str | None, model_value_col: str | None):
    from ope.evaluation import evaluate, read_table

    unknown = [p for p in policies if p != "logged"]
    if unknown:
        raise ValueError(f"for CSV/Parquet logs --policy may only be 'logged' (target policies "
                         f"come from --target-prob-col), got {unknown}")
    log = read_table(paths, reward_col=reward_col, propensity_col=propensity_col,
                     action_col=action_col, n_actions_col=n_actions_col,
                     target_prob_cols=target_prob_cols, model_reward_col=model_reward_col,
                     model_value_col=model_value_col,
                     include_logged="logged" in policies or not target_prob_cols)
    return evaluate(log.rounds, log.targets, estimators=estimators)


def _evaluate_dsjson(paths: tuple[Path, ...], policies: tuple[str, ...], estimators: list, *,
                     chunk_size: int, train_fraction: float, offline_args: str,
                     model_args: str | None, data_dir: Path, database_url: str | None,
                     seed: int):
    from tqdm import tqdm

    from ope.dsjson import count_events
    from ope.evaluation import evaluate_log

    with tqdm(total=count_events(paths), unit="event", disable=None, leave=False) as bar:
        return evaluate_log(
            paths, policies=policies, estimators=estimators, chunk_size=chunk_size,
            train_fraction=train_fraction, offline_args=offline_args, model_args=model_args,
            data_dir=data_dir, database_url=database_url, seed=seed, progress=bar.update)


@click.command("simulate")
@data_dir_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds world and log.")
@click.option("--rounds", "n_rounds", type=click.IntRange(min=10), default=20_000,
              show_default=True, help="Logged impressions.")
@click.option("--members", "n_members", type=click.IntRange(min=1), default=2000,
              show_default=True)
@click.option("--titles", "n_titles", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--variants", "n_variants", type=click.IntRange(min=2), default=4,
              show_default=True, help="Artwork variants per title.")
@click.option("--logging", "logging_kind", type=click.Choice(["taste", "uniform"]),
              default="taste", show_default=True,
              help="Logging policy: softmax of observed taste with uniform exploration, "
                   "or uniform.")
@click.option("--epsilon", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Uniform exploration share of the 'taste' logging policy.")
@click.option("--sharpness", type=click.FloatRange(min=0), default=4.0, show_default=True,
              help="Inverse temperature of the 'taste' logging policy.")
@click.option("--estimators", "estimator_text", default="ips,snips,dr", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="dsjson log to write [default: DATA_DIR/simulations/seed-SEED/events.dsjson].")
@click.option("--online", "online_rounds", type=click.IntRange(min=0), default=0,
              show_default=True,
              help="Also let a VW learner (--online-args) learn online for this many rounds "
                   "and print its exact regret curve against the oracle.")
@click.option("--online-args", default="--cb_explore_adf --epsilon 0.2 -q ::",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def simulate(data_dir: Path, seed: int, n_rounds: int, n_members: int, n_titles: int,
             n_variants: int, logging_kind: str, epsilon: float, sharpness: float,
             estimator_text: str, out: Path | None, online_rounds: int, online_args: str,
             as_json: bool) -> None:
    """Run a world with known truth, write its dsjson log, print true values next to estimates.

    Evaluate the written log with ``banditkit evaluate LOG``: its logged,
    baseline and uniform policies are the ones shown here.
    """
    from ope.evaluation import make_estimators
    from ope.reward_model import CrossFitRewardModel
    from simulator.world import ArtworkWorld
    from simulator.worldlog import (
        evaluate_world_log,
        reference_policies,
        sample_log,
        taste_policy,
        write_world_log,
    )

    names = _estimator_names(estimator_text)
    try:
        world = ArtworkWorld.generate(seed=seed, n_members=n_members, n_titles=n_titles,
                                      n_variants=n_variants)
        logging = (taste_policy(world, sharpness=sharpness, epsilon=epsilon)
                   if logging_kind == "taste" else world.uniform_policy())
        log = sample_log(world, logging, n_rounds=n_rounds, seed=seed + 1)
        estimators = make_estimators(names, seed=seed)
        needs_model = any(e.needs_model for e in estimators)
        report = evaluate_world_log(
            log, reference_policies(world, logging), estimators=estimators,
            reward_model=CrossFitRewardModel(seed=seed) if needs_model else None)
    except (ValueError, TypeError) as error:
        raise click.ClickException(str(error)) from None
    path = out if out is not None else data_dir / "simulations" / f"seed-{seed}" / "events.dsjson"
    write_world_log(log, path, policy_name=f"simulated-{logging_kind}")
    curve = None
    if online_rounds:
        from tqdm import tqdm

        from banditkit.vw import VWLearner
        from simulator.online import run_online

        with tqdm(total=online_rounds, unit="round", disable=None, leave=False) as bar:
            result = run_online(world, VWLearner(args=online_args), n_rounds=online_rounds,
                                seed=seed + 2, progress=bar.update)
        curve = result.to_frame(every=max(online_rounds // 10, 1))
    if as_json:
        payload = {**report.to_dict(), "log": str(path)}
        if curve is not None:
            payload["online"] = curve.to_dict(orient="records")
        click.echo(json.dumps(payload, default=str))
        return
    _print(report, as_json=False)
    click.echo(f"dsjson log: {path}")
    if curve is not None:
        click.echo(f"\nOnline learning ({online_args}): exact regret against the oracle")
        click.echo(curve.to_string(index=False, float_format="{:.4f}".format))
