"""The service's configuration: every key, its type, default and check, declared once.

A banditkit app is configured by a flat mapping of upper-case keys,
namespaced per component (``ENGINE_``, ``LEARNER_``, ``AUTH_``, ``RANK_``,
``SERVER_``, ``ROWS_``, ``ANALYST_``, ``CATALOGUE_``, ``ARTWORK_RANK_``, ``MODEL_``,
``JOBS_``): the
mapping given to ``server.create_app(config)``, or the ``BANDITKIT_``-prefixed
environment variables (:func:`environ_config`). :class:`ServerConfig` declares
every key with its type, default, one-line description and check; it is the
only place defaults live (docs/architecture.md §3). Components read typed
values through :func:`get_config`, never ``app.config.get(KEY, default)``.

``banditkit serve`` hands configuration to its workers and its learner process
the same way: :func:`child_environ` writes the environment they read back with
:func:`environ_config`.

This module imports neither ``artwork`` nor OpenCV: the learner process reads
its configuration here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import flask
from flask import Flask, current_app
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from serving.environment import (
    DATABASE_URL_KEY,
    DEFAULT_DATA_DIR,
    ENV_PREFIX,
    default_data_dir,
    default_database_url,
)

__all__ = [
    "DATABASE_URL_KEY",
    "DEFAULT_DATA_DIR",
    "ENV_PREFIX",
    "AppConfig",
    "ConfigError",
    "ServerConfig",
    "child_environ",
    "default_data_dir",
    "default_database_url",
    "environ_config",
    "get_config",
]

_ENGINE_NAMESPACE = "ENGINE_"


class ConfigError(ValueError):
    """A config key whose value fails its check; the message names key, expectation and value."""


def _database_url(value: Any) -> Any:
    # The one rule of the URL's form is the store's (imported here: the store's
    # module imports no driver until a store opens).
    from banditkit.store.postgres import check_database_url

    return None if value is None else check_database_url(value)


def _json_value(text: str) -> Any:
    """``text`` decoded as JSON when it is JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _blank_is_none(value: Any) -> Any:
    # An empty environment variable leaves an optional key unset.
    return None if value == "" else value


def _decoded_object(value: Any) -> Any:
    # Object-valued keys arrive as JSON text from the environment.
    return _json_value(value) if isinstance(value, str) and value else _blank_is_none(value)


_OptionalPath = Annotated[Path | None, BeforeValidator(_blank_is_none)]
_DatabaseUrl = Annotated[str | None, BeforeValidator(_blank_is_none),
                         AfterValidator(_database_url)]
def _spark_master(value: str | None) -> str | None:
    """A well-formed Spark master URL; whether it answers is the job runner's check."""
    if value is not None:
        from ope.spark import check_master

        check_master(value, connect=False)
    return value


_SparkMaster = Annotated[str | None, BeforeValidator(_blank_is_none),
                         AfterValidator(_spark_master)]
_OptionalObject = Annotated[dict[str, Any] | None, BeforeValidator(_decoded_object)]


class ServerConfig(BaseModel):
    """Every config key of the service, typed and checked.

    Each field's alias is its key (``rank_max_actions`` is ``RANK_MAX_ACTIONS``,
    ``$BANDITKIT_RANK_MAX_ACTIONS`` in the environment). Build it with
    :meth:`from_mapping`; a bad value raises :class:`ConfigError`.

    Attributes
    ----------
    engine_options : dict
        Every other ``ENGINE_<OPTION>`` key, lower-cased, passed to the engine
        factory as keyword arguments (``ENGINE_SYNCHRONOUS="FULL"``,
        ``ENGINE_MAX_ACTIONS=256``).
    """

    model_config = ConfigDict(alias_generator=str.upper, frozen=True, extra="ignore")

    engine_data_dir: Path = Field(
        default_factory=default_data_dir,
        description="The data directory: engine database and logs, models, key store, "
                    "catalogue. Default: $BANDITKIT_DATA_DIR or banditkit-data.")
    database_url: _DatabaseUrl = Field(
        None, description="PostgreSQL URL of the store (postgresql://user@host:port/db): "
                          "events, models, settings, the catalogue, API keys and evaluation "
                          "jobs there, the journals still in the data directory. None keeps "
                          "them in SQLite in the data directory.")
    engine_settings: _OptionalObject = Field(
        None, description="LoopSettings fields to start with (a JSON object in the "
                          "environment); None loads the persisted settings or the defaults.")
    engine_factory: Callable[..., Any] | None = Field(
        None, description="factory(data_dir, settings=..., **engine_options) -> Engine, for "
                          "embedding; None uses Engine.open.")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, alias="ENGINE_<OPTION>",
        description="Any other ENGINE_ key, passed to the engine factory as a keyword.")
    learner_enabled: bool = Field(
        True, description="Run the learner in a background thread of this process; off in "
                          "all but one process sharing a data directory.")
    learner_interval_seconds: PositiveFloat = Field(
        1.0, description="Pause between learner steps.")
    learner_health_path: _OptionalPath = Field(
        None, description="Health file of a learner in another process (banditkit serve "
                          "sets it); /readyz reads it when this process runs no learner.")
    auth_enabled: bool = Field(
        True, description="False serves every route without keys (local experiments only).")
    auth_cache_seconds: NonNegativeFloat = Field(
        5.0, description="How long a verified key is trusted without asking the store "
                         "again: the longest a revoked key keeps working.")
    auth_keys_path: _OptionalPath = Field(
        None, description="SQLite file of the key store; None is serving.sqlite3 in the "
                          "data directory. Unused with DATABASE_URL (the keys are in "
                          "PostgreSQL).")
    rank_max_actions: PositiveInt = Field(50, description="Most actions per rank request.")
    server_max_body_bytes: PositiveInt = Field(
        1024 * 1024, description="Larger request bodies get 413.")
    rows_settings: _OptionalObject = Field(
        None, description="LoopSettings fields of the row loop; None follows the main "
                          "engine's settings, all but its policy.")
    rows_rules: _OptionalObject = Field(
        None, description="Default page rules: pinned, noAdjacentSameGenre, "
                          "minDistinctGenres, distinctGenresWithin.")
    rows_max_rows: PositiveInt = Field(100, description="Most candidate rows per page.")
    rows_max_slots: PositiveInt = Field(50, description="Most slots per page.")
    analyst_max_range_days: PositiveInt = Field(
        366, description="Longest date range of a log export or an evaluation.")
    analyst_max_evaluation_events: PositiveInt = Field(
        200_000, description="Most logged events an evaluation over HTTP reads.")
    analyst_export_chunk_bytes: PositiveInt = Field(
        64 * 1024, description="Bytes per chunk of a streamed log export.")
    analyst_max_concurrent_evaluations: NonNegativeInt = Field(
        1, description="Evaluations running at once in one worker; more get 429 (0 turns "
                       "evaluations off).")
    catalogue_max_upload_bytes: PositiveInt = Field(
        20 * 1024 * 1024, description="Largest poster upload; larger gets 413.")
    catalogue_max_trailer_bytes: PositiveInt = Field(
        200 * 1024 * 1024, description="Largest trailer upload; larger gets 413.")
    # None defers to artwork's own limits, so that reading the configuration
    # never imports artwork (and OpenCV).
    catalogue_max_pixels: PositiveInt | None = Field(
        None, description="Largest image (width x height), checked before decoding; None is "
                          "artwork.io.DEFAULT_MAX_PIXELS.")
    catalogue_max_variants: PositiveInt = Field(50, description="Most variants per title.")
    catalogue_expected_aspect: PositiveFloat | None = Field(
        2 / 3, description="Width / height of the artwork slot (2:3 poster); a title's "
                           "metadata.expectedAspect overrides it; None checks no aspect.")
    catalogue_trailer_frames: PositiveInt = Field(
        8, description="Candidate frames mined per trailer.")
    catalogue_trailer_max_frames: PositiveInt = Field(
        18000, description="Frames decoded at most per trailer (12 minutes at 25 fps).")
    catalogue_trailer_max_pixels: PositiveInt | None = Field(
        None, description="Largest trailer frame (width x height), checked before decoding; "
                          "None is artwork.frames.DEFAULT_MAX_VIDEO_PIXELS (4096 x 2160).")
    catalogue_image_base_url: str = Field(
        "", description="Prefix of image URLs (a CDN in front of the image route); empty "
                        "gives root-relative URLs.")
    artwork_rank_max_titles: PositiveInt = Field(
        100, description="Most titles per artwork rank request.")
    model_max_import_bytes: PositiveInt = Field(
        256 * 1024 * 1024, description="Largest model a PUT /model imports; larger gets 413 "
                                       "PayloadSizeExceeded (SERVER_MAX_BODY_BYTES does not "
                                       "apply to it).")
    jobs_enabled: bool = Field(
        True, description="Run evaluation and feature-importance jobs where the learner runs "
                          "(the learner process, or the app's learner thread); off, jobs "
                          "stay NotSubmitted.")
    jobs_workers: PositiveInt = Field(
        2, description="Processes a job's policies run in (1: in the runner's own process).")
    jobs_spark_master: _SparkMaster = Field(
        None, description="Spark master URL (local[2], spark://HOST:PORT, yarn, k8s://URL) "
                          "whose executors score a job's policies instead of the JOBS_WORKERS "
                          "processes; None runs them locally.")
    jobs_poll_seconds: PositiveFloat = Field(
        1.0, description="How often an idle job runner looks for a queued job.")
    jobs_max_attempts: PositiveInt = Field(
        2, description="Times a job interrupted by a server stop is started again before it "
                       "is Failed.")
    jobs_max_events: PositiveInt = Field(
        2_000_000, description="Most events one job's time range may hold; more get 400 "
                               "LogsSizeExceedAllowedLimit.")
    jobs_search_cpu_seconds: PositiveFloat = Field(
        240.0, description="CPU-seconds a policy search (enablePolicyOptimization) may spend.")
    jobs_search_max_candidates: PositiveInt = Field(
        48, description="Most learning settings a policy search tries.")
    jobs_search_samples: NonNegativeInt = Field(
        24, description="Learning-rate, power_t, l2 and cb_type samples of a search's "
                        "second stage.")
    jobs_max_features: PositiveInt = Field(
        64, description="Most features a feature importance job scores (one policy run "
                        "each); more fail the job naming the count.")

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """Every declared key (``ENGINE_<OPTION>`` stands for the pass-through)."""
        return tuple(field.alias or name for name, field in cls.model_fields.items())

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> ServerConfig:
        """Check ``config`` and fill in the defaults.

        Keys of no component (Flask's own, such as ``TESTING``) are ignored;
        undeclared ``ENGINE_`` keys become :attr:`engine_options`.

        Raises
        ------
        ConfigError
            Naming each key whose value fails its check, the expectation and the value.
        """
        declared = set(cls.config_keys())
        values = {key: value for key, value in config.items() if key in declared}
        values["ENGINE_<OPTION>"] = {
            key[len(_ENGINE_NAMESPACE):].lower(): value for key, value in config.items()
            if key.startswith(_ENGINE_NAMESPACE) and key not in declared}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigError("; ".join(
                f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}, "
                f"got {problem['input']!r}" for problem in error.errors())) from None


def environ_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config keys that ``BANDITKIT_``-prefixed environment variables set.

    Each value is decoded as JSON when it is JSON (``BANDITKIT_AUTH_ENABLED=false``
    is False, ``BANDITKIT_ENGINE_SETTINGS='{"reward_wait_seconds": 300}'`` a
    dict) and kept as text otherwise (``BANDITKIT_ENGINE_SYNCHRONOUS=FULL``); ``__``
    sets one field of an object-valued key
    (``BANDITKIT_ENGINE_SETTINGS__reward_wait_seconds=300``). These are the
    rules of Flask's ``Config.from_prefixed_env``.

    Parameters
    ----------
    environ : mapping, default=None
        The environment; None is ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        *parents, key = name[len(ENV_PREFIX):].split("__")
        target = config
        for parent in parents:
            target = target.setdefault(parent, {})
        target[key] = _json_value(text)
    return config


def child_environ(config: Mapping[str, Any],
                  environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` with ``config``'s keys written as the variables :func:`environ_config` reads.

    How ``banditkit serve`` configures the processes it starts: text and paths
    are written as they are, other values as JSON.

    Parameters
    ----------
    config : mapping
        Config keys and their values (``{"LEARNER_ENABLED": False}``).
    environ : mapping, default=None
        The environment to extend; None is ``os.environ``.
    """
    child = dict(os.environ if environ is None else environ)
    for key, value in config.items():
        text = str(value) if isinstance(value, str | os.PathLike) else json.dumps(value)
        child[f"{ENV_PREFIX}{key}"] = text
    return child


class AppConfig(flask.Config):
    """Flask's config of a banditkit app, holding its checked view until it changes.

    ``app.config`` stays the mapping of record (Flask's own keys live there
    too); :func:`get_config` reads its :class:`ServerConfig`, checked once and
    checked again only after a write to the mapping.
    """

    _view: ServerConfig | None = None

    def view(self) -> ServerConfig:
        """This mapping as a :class:`ServerConfig` (raises :class:`ConfigError`)."""
        view = self._view
        if view is None:
            view = self._view = ServerConfig.from_mapping(self)
        return view

    def _changed(self) -> None:
        self._view = None

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._changed()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> AppConfig:
        self._changed()
        return super().__ior__(other)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._changed()
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self._changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._changed()
        return super().popitem()

    def clear(self) -> None:
        self._changed()
        super().clear()


def get_config(app: Flask | None = None) -> ServerConfig:
    """The app's checked configuration (``current_app``'s by default).

    Raises
    ------
    TypeError
        When the app's config is not an :class:`AppConfig` (the app does not
        come from ``server.create_app``).
    """
    config = (app or current_app).config
    if not isinstance(config, AppConfig):
        raise TypeError(f"app.config must be a serving.config.AppConfig (apps come from "
                        f"server.create_app); got {type(config).__name__}")
    return config.view()

