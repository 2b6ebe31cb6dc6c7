"""The PostgreSQL store's own behaviour: its URL, its migrations, hosts starting at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from banditkit.errors import InvalidInputError
from banditkit.store import PostgresStore
from banditkit.store.postgres import MIGRATIONS, check_database_url, migrate


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql", "", "http://h/db"])
def test_a_url_of_another_form_is_refused_naming_the_expectation(url):
    with pytest.raises(InvalidInputError, match="postgresql://user@host:port/database"):
        check_database_url(url)


def test_the_password_of_a_refused_url_is_not_repeated():
    with pytest.raises(InvalidInputError) as error:
        check_database_url("mysql://me:secret@h/db")
    assert "secret" not in str(error.value)


def test_migrations_apply_once_when_hosts_start_at_once(postgres_url, tmp_path):
    errors, applied = [], []

    def start() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as connection:
                applied.append(migrate(connection, schema="banditkit"))
        except Exception as error:  # noqa: BLE001 - collected for the assert
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(map(len, applied)) == [0, 0, 0, len(MIGRATIONS)]
    with psycopg.connect(postgres_url) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM banditkit.schema_migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]


def test_a_store_opened_again_keeps_its_rows_and_applies_no_migration(postgres_url, tmp_path):
    store = PostgresStore.open(postgres_url, local=tmp_path / "banditkit")
    store.put_setting("k", {"v": 1})
    store.close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert migrate(connection, schema="banditkit") == []
    again = PostgresStore.open(postgres_url, local=tmp_path / "banditkit")
    assert again.get_setting("k") == {"v": 1}
    again.close()
    assert again.get_setting("k") == {"v": 1}  # a closed store opens its pool again
    again.close()


def test_a_bad_schema_name_is_refused(postgres_url, tmp_path):
    with pytest.raises(InvalidInputError, match="schema must be"):
        PostgresStore.open(postgres_url, local=tmp_path / "x", schema="Robert'); DROP")
