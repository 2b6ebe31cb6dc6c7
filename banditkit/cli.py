"""The ``banditkit`` command: thin click shells over the Python API.

This module and ``server.py`` are the only places that compose all packages
(DESIGN.md §2). Each package may keep its own click group in a private
``_cli`` module that imports only that package; they are attached here.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from banditkit import __version__

DEFAULT_DATA_DIR = "banditkit-data"


def data_dir_option(function):
    """The shared ``--data-dir`` option (env ``BANDITKIT_DATA_DIR``)."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("BANDITKIT_DATA_DIR", DEFAULT_DATA_DIR),
        show_default=f"$BANDITKIT_DATA_DIR or ./{DEFAULT_DATA_DIR}",
        help="Folder holding the SQLite database, images, models and logs.",
    )(function)


@click.group()
@click.version_option(__version__, prog_name="banditkit")
def main() -> None:
    """banditkit: personalized artwork and homepage rows with contextual bandits."""


@main.command()
@data_dir_option
@click.option("--events", "n_events", type=click.IntRange(min=500), default=40_000,
              show_default=True, help="Simulated impressions to run through the loop.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh/--keep", default=True, show_default=True,
              help="Start from an empty demo folder (inside the data directory).")
def demo(data_dir: Path, n_events: int, seed: int, fresh: bool) -> None:
    """Run the whole loop on a simulated world and compare with reference policies."""
    import shutil

    from tqdm import tqdm

    from simulator.demo import run_demo

    demo_dir = data_dir / "demo"
    if fresh and demo_dir.exists():
        shutil.rmtree(demo_dir)
    click.echo(f"Simulating {n_events} impressions: members x titles x artwork variants ...")
    with tqdm(total=n_events, unit="event", disable=None) as bar:
        result = run_demo(demo_dir, n_events=n_events, seed=seed, progress=bar.update)
    click.echo("")
    click.echo("Exact take rate on 4000 fresh impressions (ground truth of the simulated world):")
    click.echo(result.table())
    best = result.take_rates["best single variant per title (no personalization)"]
    learned = result.take_rates["learned, as deployed (with exploration)"]
    click.echo("")
    click.echo(f"Learned policy vs best single variant: {learned / best - 1:+.1%} take rate.")
    click.echo(f"Decision log (dsjson): {result.log_dir}")
    click.echo(f"Model (Vowpal Wabbit): {result.model_path}")


from serving._cli import keys as _keys_group  # noqa: E402

main.add_command(_keys_group)

from simulator._cli import evaluate as _evaluate, simulate as _simulate  # noqa: E402, I001

main.add_command(_evaluate)
main.add_command(_simulate)

from serving.serve import serve as _serve_command  # noqa: E402

main.add_command(_serve_command)

from artwork._cli import artwork as _artwork_group  # noqa: E402

main.add_command(_artwork_group)
