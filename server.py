"""The banditkit HTTP service: a Flask app factory composing engine, keys and routes.

There is no module-level app: ``create_app()`` is the only way to get one
(``flask --app server run``, ``gunicorn "server:create_app()"``).

Config keys
-----------
ENGINE_DATA_DIR : str, default=$BANDITKIT_DATA_DIR or ``banditkit-data``
    The data directory (engine database and logs, key store).
ENGINE_SETTINGS : dict, default=None
    :class:`~banditkit.settings.LoopSettings` fields to start with; None loads
    the persisted settings (or the defaults).
ENGINE_FACTORY : callable, default=None
    ``factory(data_dir, settings=..., **options) -> Engine``, for embedding; None
    uses :meth:`banditkit.engine.Engine.open`.
ENGINE_<OPTION>
    Any other ``ENGINE_`` key is passed to the factory as a keyword argument
    (``ENGINE_SYNCHRONOUS="FULL"``, ``ENGINE_MAX_ACTIONS=256``).
LEARNER_ENABLED, LEARNER_INTERVAL_SECONDS
    The background learner thread (:mod:`serving.runtime`).
AUTH_ENABLED, AUTH_CACHE_SECONDS, AUTH_KEYS_PATH
    API keys (:mod:`serving.auth`).
RANK_MAX_ACTIONS : int, default=50
    Most actions per rank request.
SERVER_MAX_BODY_BYTES : int, default=1048576
    Larger request bodies get 413 (Flask's ``MAX_CONTENT_LENGTH``).

With ``config=None`` every key is read from ``BANDITKIT_``-prefixed environment
variables (``BANDITKIT_ENGINE_DATA_DIR``, ``BANDITKIT_AUTH_ENABLED=false``);
values are parsed as JSON when they can be.

Later components (the artwork catalogue, the marketer page) plug in as further
blueprints with their own ``init_app(app)``, reaching the engine through
:func:`serving.runtime.get_engine` and documenting their paths through
:func:`serving.openapi.add_paths`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import Flask, g, request

from banditkit.engine import Engine
from banditkit.settings import LoopSettings
from serving import (
    analyst,
    artwork_rank,
    auth,
    catalogue,
    errors,
    events,
    marketer,
    metrics,
    openapi,
    ops,
    personalizer,
    rows,
)
from serving.keys import default_path
from serving.meta import MetaStore
from serving.runtime import (
    ENGINE_EXTENSION,
    LEARNER_EXTENSION,
    BackgroundLearner,
    get_engine,
    get_learner,
)

__all__ = ["close_app", "create_app"]

_access_log = logging.getLogger("banditkit.access")


def _defaults() -> dict[str, Any]:
    return {
        "ENGINE_DATA_DIR": os.environ.get("BANDITKIT_DATA_DIR", "banditkit-data"),
        "ENGINE_SETTINGS": None,
        "ENGINE_FACTORY": None,
        "LEARNER_ENABLED": True,
        "LEARNER_INTERVAL_SECONDS": 1.0,
        "AUTH_ENABLED": True,
        "AUTH_CACHE_SECONDS": 5.0,
        "AUTH_KEYS_PATH": None,
        "RANK_MAX_ACTIONS": 50,
        "SERVER_MAX_BODY_BYTES": 1024 * 1024,
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the banditkit service.

    Parameters
    ----------
    config : mapping, default=None
        Config keys (see the module docstring). None reads ``BANDITKIT_*``
        environment variables instead.

    Returns
    -------
    Flask
        The app, with its engine open and (unless disabled) its learner thread
        running. Call :func:`close_app` to stop both.
    """
    # No app-wide static folder: the web page will bring its own blueprint.
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(_defaults())
    if config is None:
        app.config.from_prefixed_env("BANDITKIT")
    else:
        app.config.update(config)
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["SERVER_MAX_BODY_BYTES"])
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # "//" in a path is a 404 here, not a redirect clients would not follow.
    app.url_map.merge_slashes = False

    data_dir = Path(app.config["ENGINE_DATA_DIR"])
    errors.init_app(app)
    openapi.init_app(app)
    metrics.init_app(app)
    app.extensions[ENGINE_EXTENSION] = _open_engine(app, data_dir)
    auth.init_app(app, data_dir=data_dir)
    keys_path = app.config.get("AUTH_KEYS_PATH") or default_path(data_dir)
    personalizer.init_app(app, meta=MetaStore(path=keys_path))
    events.init_app(app)
    analyst.init_app(app)
    rows.init_app(app, data_dir=data_dir)
    catalogue.init_app(app)
    artwork_rank.init_app(app)
    marketer.init_app(app)
    ops.init_app(app)
    _init_access_log(app)
    _init_cli(app)

    learner_config = app.config.get_namespace("LEARNER_")
    if learner_config.get("enabled", True):
        learner = BackgroundLearner(
            engine=get_engine(app),
            rows=rows.get_row_engine(app),
            follow=rows.follows_main_settings(app),
            interval_seconds=float(learner_config.get("interval_seconds", 1.0)),
            metrics=metrics.get_metrics(app),
        )
        app.extensions[LEARNER_EXTENSION] = learner
        learner.start()
    # Stop the learner and close the engine at interpreter exit without keeping
    # the app alive for the whole process (tests build many apps).
    reference = weakref.ref(app)
    atexit.register(lambda: (lambda a: a is not None and close_app(a))(reference()))
    return app


def _open_engine(app: Flask, data_dir: Path) -> Engine:
    config = app.config.get_namespace("ENGINE_")
    raw_settings = config.get("settings")
    if isinstance(raw_settings, str):
        raw_settings = json.loads(raw_settings)
    settings = LoopSettings(**raw_settings) if raw_settings else None
    factory = config.pop("factory", None) or Engine.open
    # Remaining ENGINE_ keys are Engine.open keyword arguments (ENGINE_MAX_ACTIONS,
    # ENGINE_SYNCHRONOUS, ...).
    options = {key: value for key, value in config.items() if key not in ("data_dir", "settings")}
    return factory(data_dir, settings=settings, **options)


def close_app(app: Flask) -> None:
    """Stop the app's learner thread and close its engines (idempotent).

    Parameters
    ----------
    app : Flask
        An app from :func:`create_app`.
    """
    learner = app.extensions.pop(LEARNER_EXTENSION, None)
    if learner is not None:
        learner.stop()
    engine = app.extensions.pop(ENGINE_EXTENSION, None)
    if engine is not None:
        engine.close()
    rows.close(app)


def _init_access_log(app: Flask) -> None:
    # One JSON line per request, for log pipelines.
    @app.before_request
    def _start_timer() -> None:
        g.banditkit_started = time.perf_counter()

    @app.after_request
    def _log(response):  # type: ignore[no-untyped-def]
        if _access_log.isEnabledFor(logging.INFO):
            started = g.get("banditkit_started", time.perf_counter())
            key = auth.current_key()
            _access_log.info(
                json.dumps(
                    {
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "ms": round((time.perf_counter() - started) * 1000, 3),
                        "key_id": key.key_id if key else None,
                    }
                )
            )
        return response


def _init_cli(app: Flask) -> None:
    @app.cli.command("learn")
    def learn() -> None:
        """Run one learner step now (join due events, learn, publish)."""
        learner = get_learner(app)
        processed = learner.step().joined if learner else get_engine(app).process_due()
        click.echo(f"processed {processed} events")
