"""``banditkit demo``: the whole loop on a simulated world."""

from __future__ import annotations

from pathlib import Path

import click

from cli._options import data_dir_option

__all__ = ["demo", "next_steps"]


@click.command("demo")
@data_dir_option
@click.option("--events", "n_events", type=click.IntRange(min=500), default=None,
              help="Simulated impressions to run through the loop  [default: 12000 over "
                   "HTTP, 40000 in-process].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh/--keep", default=True, show_default=True,
              help="Start from an empty demo folder (inside the data directory).")
@click.option("--in-process", is_flag=True,
              help="Drive an engine in this process on a simulated clock instead of a "
                   "real server over HTTP.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Server workers (HTTP demo).")
def demo(data_dir: Path, n_events: int | None, seed: int, fresh: bool, in_process: bool,
         workers: int) -> None:
    """Run the whole loop on a simulated world and compare with reference policies.

    By default the simulated members go through a real ``banditkit serve``
    (gunicorn workers and the learner process) on a loopback port, with a
    fresh data directory and keys, through the Personalizer-compatible routes.
    """
    import shutil
    import sys
    import time

    from tqdm import tqdm

    from simulator.demo import run_demo

    demo_dir = data_dir / "demo"
    if fresh and demo_dir.exists():
        shutil.rmtree(demo_dir)
    if not in_process and sys.platform == "win32":
        click.echo("banditkit serve (gunicorn) needs a POSIX system: running in-process.")
        in_process = True
    if n_events is None:
        n_events = 40_000 if in_process else 12_000
    started = time.monotonic()
    if in_process:
        click.echo(f"Simulating {n_events} impressions in-process: members x titles x "
                   "artwork variants ...")
        with tqdm(total=n_events, unit="event", disable=None) as bar:
            result = run_demo(demo_dir, n_events=n_events, seed=seed, progress=bar.update)
    else:
        from serving.demo_http import DemoServer, HttpRanker

        click.echo(f"Starting banditkit serve ({workers} workers + learner) on loopback, "
                   f"data in {demo_dir} ...")
        with DemoServer(data_dir=demo_dir, workers=workers) as server:
            server.configure(epsilon=0.2, reward_wait_seconds=1.0, model_update_seconds=1.0)
            time.sleep(1.1)  # workers pick up new settings within a second
            click.echo(f"Server at http://127.0.0.1:{server.port}; simulating {n_events} "
                       "impressions over HTTP: members x titles x artwork variants ...")
            ranker = HttpRanker(server=server)
            with tqdm(total=n_events, unit="event", disable=None) as bar:
                result = run_demo(n_events=n_events, seed=seed, progress=bar.update,
                                  ranker=ranker)
        click.echo(f"Decisions were made by {len(ranker.model_versions)} successive model "
                   f"versions; server log: {server.log_path}")
    click.echo("")
    click.echo("Exact take rate on 4000 fresh impressions (ground truth of the simulated world):")
    click.echo(result.table())
    best = result.take_rates["best single variant per title (no personalization)"]
    learned = result.take_rates["learned, as deployed (with exploration)"]
    click.echo("")
    click.echo(f"Learned policy vs best single variant: {learned / best - 1:+.1%} take rate.")
    click.echo(f"Decision log (dsjson): {result.log_dir}")
    click.echo(f"Model (Vowpal Wabbit): {result.model_path}")
    # The same loop for homepage rows, one event per page.
    from simulator.demo_rows import run_row_demo

    n_pages = 6000
    # The row engine keeps its store, log and models in <data dir>/rows; page ids
    # restart at 0, so that folder starts fresh.
    shutil.rmtree(demo_dir / "rows", ignore_errors=True)
    click.echo("")
    click.echo(f"Simulating {n_pages} homepages: 8 slots from 20 candidate rows, page rules "
               "on (no neighbouring genres, 3 genres in the first 4 slots) ...")
    with tqdm(total=n_pages, unit="page", disable=None) as bar:
        rows_result = run_row_demo(demo_dir, n_pages=n_pages, seed=seed, progress=bar.update)
    click.echo("Exact plays per page and take rate per slot in % (ground truth of the world):")
    click.echo(rows_result.table())
    click.echo(f"Row decision log (CCB dsjson): {rows_result.log_dir}")
    click.echo(f"Done in {time.monotonic() - started:.0f} s.")
    click.echo("")
    click.echo(next_steps(demo_dir))


def next_steps(demo_dir: Path) -> str:
    """The commands that work on what the demo just wrote into ``demo_dir``.

    Parameters
    ----------
    demo_dir : Path
        The demo's data directory (``<data dir>/demo``): its store, ``logs/``
        and ``models/`` as a server's data directory holds them.
    """
    import shlex

    folder = shlex.quote(str(demo_dir))
    report = shlex.quote(str(demo_dir / "report"))
    return "\n".join([
        "Next:",
        "  # evaluate the logged, uniform, baseline and latest learned policies; HTML report",
        f"  banditkit evaluate {folder}/logs --data-dir {folder} --policy logged "
        f"--policy uniform --policy baseline --policy model:latest --report {report}",
        "  # serve the demo's data; the marketer page wants a marketer key",
        f"  banditkit keys create --role marketer --name me --data-dir {folder}",
        f"  banditkit serve --data-dir {folder} --port 8000   "
        "# then open http://127.0.0.1:8000/marketer",
        f"Decision log: {folder}/logs   models: {folder}/models   "
        f"homepage rows: {folder}/rows",
    ])
