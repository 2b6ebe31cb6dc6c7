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
