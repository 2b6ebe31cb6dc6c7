"""The service's configuration: one declaration, read from a mapping or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import close_app, create_app
from serving.config import (
    ConfigError,
    ServerConfig,
    child_environ,
    default_data_dir,
    environ_config,
    get_config,
)

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_fill_what_the_mapping_leaves_out() -> None:
    config = ServerConfig.from_mapping({"ENGINE_DATA_DIR": "/srv/data", "TESTING": True})
    assert config.engine_data_dir == Path("/srv/data")
    assert config.rank_max_actions == 50
    assert config.learner_enabled is True
    assert config.engine_options == {}


def test_the_data_dir_defaults_to_the_shared_variable() -> None:
    assert default_data_dir({"BANDITKIT_DATA_DIR": "/var/bk"}) == Path("/var/bk")
    assert default_data_dir({}) == Path("banditkit-data")


def test_a_bad_value_names_the_key_the_expectation_and_the_value() -> None:
    with pytest.raises(ConfigError) as error:
        ServerConfig.from_mapping({"RANK_MAX_ACTIONS": "many", "AUTH_CACHE_SECONDS": -1})
    message = str(error.value)
    assert "RANK_MAX_ACTIONS" in message and "valid integer" in message and "'many'" in message
    assert "AUTH_CACHE_SECONDS" in message and "greater than or equal to 0" in message


def test_create_app_fails_at_start_on_a_bad_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ROWS_MAX_SLOTS"):
        create_app({"ENGINE_DATA_DIR": str(tmp_path), "ROWS_MAX_SLOTS": 0})


def test_other_engine_keys_pass_through_to_the_engine_factory() -> None:
    config = ServerConfig.from_mapping({"ENGINE_SYNCHRONOUS": "FULL", "ENGINE_MAX_ACTIONS": 256,
                                        "ENGINE_SETTINGS": {"default_reward": -1.0}})
    assert config.engine_options == {"synchronous": "FULL", "max_actions": 256}
    assert config.engine_settings == {"default_reward": -1.0}


def test_the_environment_is_decoded_as_json_when_it_is_json() -> None:
    environ = {"BANDITKIT_AUTH_ENABLED": "false", "BANDITKIT_ENGINE_SYNCHRONOUS": "FULL",
               "BANDITKIT_ENGINE_SETTINGS": '{"reward_wait_seconds": 300}',
               "BANDITKIT_AUTH_KEYS_PATH": "", "HOME": "/root"}
    assert environ_config(environ) == {
        "AUTH_ENABLED": False, "AUTH_KEYS_PATH": "",
        "ENGINE_SETTINGS": {"reward_wait_seconds": 300}, "ENGINE_SYNCHRONOUS": "FULL"}
    config = ServerConfig.from_mapping(environ_config(environ))
    assert config.auth_enabled is False
    assert config.auth_keys_path is None  # an empty variable leaves it unset
    assert config.engine_settings == {"reward_wait_seconds": 300}


def test_a_double_underscore_sets_one_field_of_an_object_key() -> None:
    environ = {"BANDITKIT_ENGINE_SETTINGS__reward_wait_seconds": "300"}
    assert environ_config(environ) == {"ENGINE_SETTINGS": {"reward_wait_seconds": 300}}


def test_child_environ_round_trips_through_environ_config(tmp_path: Path) -> None:
    written = {"ENGINE_DATA_DIR": tmp_path, "LEARNER_ENABLED": False,
               "LEARNER_INTERVAL_SECONDS": 0.2, "LEARNER_HEALTH_PATH": tmp_path / "h"}
    child = child_environ(written, {"PATH": "/bin"})
    assert child["PATH"] == "/bin"
    config = ServerConfig.from_mapping(environ_config(child))
    assert config.engine_data_dir == tmp_path
    assert config.learner_enabled is False
    assert config.learner_interval_seconds == 0.2
    assert config.learner_health_path == tmp_path / "h"


def test_a_change_to_app_config_is_read_back_checked(tmp_path: Path) -> None:
    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "LEARNER_ENABLED": False})
    try:
        assert get_config(app).rank_max_actions == 50
        app.config["RANK_MAX_ACTIONS"] = 7
        assert get_config(app).rank_max_actions == 7
        app.config.update(RANK_MAX_ACTIONS=0)
        with pytest.raises(ConfigError, match="RANK_MAX_ACTIONS"):
            get_config(app)
    finally:
        close_app(app)


def test_every_key_is_documented_in_server_md() -> None:
    documented = (ROOT / "docs" / "server.md").read_text()
    missing = [key for key in ServerConfig.config_keys() if f"`{key}`" not in documented]
    assert missing == []
