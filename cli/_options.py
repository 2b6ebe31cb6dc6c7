"""Options shared by the ``banditkit`` subcommands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from serving.environment import (
    DATABASE_URL_KEY,
    DEFAULT_DATA_DIR,
    ENV_PREFIX,
    default_data_dir,
    default_database_url,
)

__all__ = ["data_dir_option", "database_url_option"]


def data_dir_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The shared ``--data-dir`` option, defaulting as the app's ``ENGINE_DATA_DIR`` does."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_data_dir,
        show_default=f"${ENV_PREFIX}DATA_DIR or ./{DEFAULT_DATA_DIR}",
        help="Folder holding the SQLite database, images, models and logs.",
    )(function)


def database_url_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The shared ``--database-url`` option, defaulting as the app's ``DATABASE_URL`` does."""
    return click.option(
        "--database-url",
        default=default_database_url,
        show_default=f"${ENV_PREFIX}{DATABASE_URL_KEY}, else SQLite in --data-dir",
        callback=_checked_url,
        help="PostgreSQL store, postgresql://user@host:port/database: events, models, "
             "settings, the catalogue, API keys and jobs there, this host's journals in "
             "--data-dir.",
    )(function)


def _checked_url(context: click.Context, parameter: click.Parameter,
                 value: str | None) -> str | None:
    if not value:
        return None
    # Imported for a URL only: a command without one need not load the store.
    from banditkit.store.postgres import check_database_url

    try:
        return check_database_url(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
