"""``banditkit keys``: keys made on the command line are the keys the server accepts."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from server import close_app, create_app
from tests.server.conftest import auth

ACTIONS = [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}]


def test_keys_command_create_list_revoke(tmp_path, database_url) -> None:
    from cli import main

    cli = CliRunner()
    data_dir = str(tmp_path / "cli")
    # With PostgreSQL the server is another host: its data directory holds no key.
    server_dir = str(tmp_path / ("server" if database_url else "cli"))
    store = [] if database_url is None else ["--database-url", database_url]
    created = cli.invoke(main, ["keys", "create", "--role", "client", "--name", "web",
                                "--data-dir", data_dir, *store])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("bk_")
    listed = cli.invoke(main, ["keys", "list", "--data-dir", data_dir, *store])
    key_id, role, _, state, name = listed.stdout.strip().split("\t")
    assert (role, state, name) == ("client", "active", "web")
    assert key not in listed.stdout

    app = create_app({"ENGINE_DATA_DIR": server_dir, "LEARNER_ENABLED": False,
                      "DATABASE_URL": database_url})
    response = app.test_client().post("/personalizer/v1.0/rank", headers=auth(key),
                                      json={"actions": ACTIONS})
    assert response.status_code == 201
    close_app(app)

    revoked = cli.invoke(main, ["keys", "revoke", key_id, "--data-dir", data_dir, *store])
    assert revoked.exit_code == 0
    assert "revoked" in cli.invoke(main, ["keys", "list", "--data-dir", data_dir,
                                          *store]).stdout
    again = cli.invoke(main, ["keys", "revoke", key_id, "--data-dir", data_dir, *store])
    assert again.exit_code != 0


@pytest.mark.parametrize("role", ["root", ""])
def test_keys_command_rejects_unknown_roles(tmp_path, role: str) -> None:
    from cli import main

    result = CliRunner().invoke(main, ["keys", "create", "--role", role,
                                       "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "client" in result.output


def test_a_database_that_cannot_be_reached_is_one_line_naming_why(tmp_path) -> None:
    from cli import main

    unreachable = "postgresql://nobody@127.0.0.1:1/nowhere"  # nothing listens on port 1
    result = CliRunner().invoke(main, ["keys", "create", "--role", "client",
                                       "--data-dir", str(tmp_path), "--database-url",
                                       unreachable])
    assert result.exit_code == 1 and result.exception is not None
    assert "cannot use the database of --database-url" in result.output
    assert "127.0.0.1" in result.output and "Traceback" not in result.output
