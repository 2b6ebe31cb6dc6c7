"""The banditkit HTTP service: a Flask app factory composing engine, keys and routes.

There is no module-level app: ``create_app()`` is the only way to get one
(``flask --app server run``, ``gunicorn "server:create_app()"``).

Configuration
-------------
Every config key (``ENGINE_DATA_DIR``, ``ENGINE_SETTINGS``, ``ENGINE_FACTORY``,
the ``ENGINE_<OPTION>`` pass-through to the engine factory, ``LEARNER_``,
``AUTH_``, ``RANK_MAX_ACTIONS``, ``SERVER_MAX_BODY_BYTES``, ``ROWS_``,
``ANALYST_``, ``CATALOGUE_``, ``ARTWORK_RANK_MAX_TITLES``) is declared, with
its type, default and check, in :class:`serving.config.ServerConfig`; with
``config=None`` every key is read from ``BANDITKIT_``-prefixed environment
variables (:func:`serving.config.environ_config`). A bad value fails
:func:`create_app` naming the key.

Later components (the artwork catalogue, the marketer page) plug in as further
blueprints with their own ``init_app(app)``, reaching the engine through
:func:`serving.runtime.get_engine` and documenting their paths through
:func:`serving.openapi.add_operations`.
"""

from __future__ import annotations

import atexit
import json
import logging
import time
import weakref
from collections.abc import Mapping
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
    landing,
    marketer,
    metrics,
    model_admin,
    openapi,
    ops,
    personalizer,
    personalizer_evaluations,
    rows,
)
from serving.config import AppConfig, ServerConfig, environ_config, get_config
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


class _App(Flask):
    config_class = AppConfig


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the banditkit service.

    Parameters
    ----------
    config : mapping, default=None
        Config keys (:class:`serving.config.ServerConfig`). None reads
        ``BANDITKIT_*`` environment variables instead.

    Returns
    -------
    Flask
        The app, with its engine open and (unless disabled) its learner thread
        running. Call :func:`close_app` to stop both.

    Raises
    ------
    serving.config.ConfigError
        When a config value fails its check.
    """
    # No app-wide static folder: the web page will bring its own blueprint.
    app = _App(__name__, static_folder=None)
    app.config.update(environ_config() if config is None else config)
    settings = get_config(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.server_max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # "//" in a path is a 404 here, not a redirect clients would not follow.
    app.url_map.merge_slashes = False

    data_dir = settings.engine_data_dir
    errors.init_app(app)
    openapi.init_app(app)
    metrics.init_app(app)
    app.extensions[ENGINE_EXTENSION] = _open_engine(settings)
    auth.init_app(app, data_dir=data_dir)
    # The loop's metadata shares the key store's tables.
    personalizer.init_app(app, meta=MetaStore(database=auth.get_key_store(app).database))
    model_admin.init_app(app)
    events.init_app(app)
    analyst.init_app(app)
    rows.init_app(app, data_dir=data_dir)
    # After rows: multi-slot evaluations read the row engine's log.
    personalizer_evaluations.init_app(app)
    catalogue.init_app(app)
    artwork_rank.init_app(app)
    marketer.init_app(app)
    landing.init_app(app)
    ops.init_app(app)
    _init_access_log(app)
    _init_cli(app)

    if settings.learner_enabled:
        learner = BackgroundLearner(
            engine=get_engine(app),
            rows=rows.get_row_engine(app),
            follow=rows.follows_main_settings(app),
            interval_seconds=settings.learner_interval_seconds,
            metrics=metrics.get_metrics(app),
        )
        app.extensions[LEARNER_EXTENSION] = learner
        learner.start()
    # Stop the learner and close the engine at interpreter exit without keeping
    # the app alive for the whole process (tests build many apps).
    reference = weakref.ref(app)
    atexit.register(lambda: (lambda a: a is not None and close_app(a))(reference()))
    return app


def _open_engine(config: ServerConfig) -> Engine:
    settings = LoopSettings(**config.engine_settings) if config.engine_settings else None
    factory = config.engine_factory or Engine.open
    options = dict(config.engine_options)
    if config.database_url is not None:
        options["database_url"] = config.database_url
    return factory(config.engine_data_dir, settings=settings, **options)


def close_app(app: Flask) -> None:
    """Stop the app's learner thread and close its engines (idempotent).

    Parameters
    ----------
    app : Flask
        An app from :func:`create_app`.
    """
    personalizer_evaluations.close(app)
    learner = app.extensions.pop(LEARNER_EXTENSION, None)
    if learner is not None:
        learner.stop()
    engine = app.extensions.pop(ENGINE_EXTENSION, None)
    if engine is not None:
        engine.close()
    rows.close(app)
    catalogue.close(app)
    auth.close(app)


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
