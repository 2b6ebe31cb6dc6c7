"""Options shared by the ``banditkit`` subcommands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from serving.config import DEFAULT_DATA_DIR, ENV_PREFIX, default_data_dir

__all__ = ["data_dir_option"]


def data_dir_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The shared ``--data-dir`` option, defaulting as the app's ``ENGINE_DATA_DIR`` does."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_data_dir,
        show_default=f"${ENV_PREFIX}DATA_DIR or ./{DEFAULT_DATA_DIR}",
        help="Folder holding the SQLite database, images, models and logs.",
    )(function)
