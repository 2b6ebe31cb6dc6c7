"""Options shared by the ``banditkit`` subcommands."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["DEFAULT_DATA_DIR", "data_dir_option"]

DEFAULT_DATA_DIR = "banditkit-data"


def data_dir_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The shared ``--data-dir`` option (env ``BANDITKIT_DATA_DIR``)."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("BANDITKIT_DATA_DIR", DEFAULT_DATA_DIR),
        show_default=f"$BANDITKIT_DATA_DIR or ./{DEFAULT_DATA_DIR}",
        help="Folder holding the SQLite database, images, models and logs.",
    )(function)
