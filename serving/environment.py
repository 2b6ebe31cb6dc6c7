"""The environment variables every entry point reads, without the HTTP stack.

``serving.config`` (the app) and the ``banditkit`` command's options both read
them; this module imports nothing but the standard library, so that a command
that never serves (``banditkit evaluate``) does not pay for Flask and pydantic.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATABASE_URL_KEY", "DEFAULT_DATA_DIR", "ENV_PREFIX", "default_data_dir",
           "default_database_url"]

#: Prefix of the environment variables that configure the service.
ENV_PREFIX = "BANDITKIT_"
#: The data directory when neither ``ENGINE_DATA_DIR`` nor ``$BANDITKIT_DATA_DIR`` names one.
DEFAULT_DATA_DIR = "banditkit-data"
#: The key of the PostgreSQL store's URL (``$BANDITKIT_DATABASE_URL``).
DATABASE_URL_KEY = "DATABASE_URL"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The data directory by default: ``$BANDITKIT_DATA_DIR``, else ``banditkit-data``.

    Shared by the app (``ENGINE_DATA_DIR``) and every ``--data-dir`` option of
    the ``banditkit`` command, so that one variable moves both.
    """
    environ = os.environ if environ is None else environ
    return Path(environ.get(f"{ENV_PREFIX}DATA_DIR", DEFAULT_DATA_DIR))


def default_database_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The store's PostgreSQL URL by default: ``$BANDITKIT_DATABASE_URL``, else None
    (SQLite in the data directory). Shared by the app and every ``--database-url``."""
    environ = os.environ if environ is None else environ
    return environ.get(f"{ENV_PREFIX}{DATABASE_URL_KEY}") or None
