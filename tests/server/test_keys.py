"""The key store and the server's metadata, on both stores: a key made on one host (data
directory) is found, listed and revoked on another sharing the database."""

from __future__ import annotations

import contextlib

import pytest

from serving.keys import KeyStore, hash_key, open_server_database
from serving.meta import MetaStore


@pytest.fixture
def hosts(tmp_path, database_url):
    """Two key stores: two hosts on one PostgreSQL database, or one data directory's
    file opened twice (two processes)."""
    with contextlib.ExitStack() as stack:
        stores = []
        for name in ("a", "b"):
            data_dir = tmp_path / (name if database_url else "a")
            stores.append(stack.enter_context(contextlib.closing(
                KeyStore.open(data_dir, database_url=database_url))))
        yield stores


def test_a_key_made_on_one_host_works_on_the_other_until_revoked(hosts) -> None:
    a, b = hosts
    key, record = a.create(role="marketer", name="ops")
    assert b.lookup(key) == record and record.role == "marketer"
    assert [r.key_id for r in b.list()] == [record.key_id]
    assert b.lookup(key + "x") is None and b.lookup("not-a-key") is None
    assert b.revoke(record.key_id) and not a.revoke(record.key_id)
    assert a.lookup(key) is None
    (listed,) = a.list()
    assert listed.revoked_at is not None and listed.created_at == record.created_at


def test_only_the_digest_is_stored(hosts) -> None:
    a, _ = hosts
    key, _ = a.create(role="client")
    with a.database.read() as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
    stored = repr(rows)
    assert key not in stored and hash_key(key) in stored


def test_unknown_roles_and_ambiguous_stores_are_refused(hosts, tmp_path) -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        hosts[0].create(role="root")
    with pytest.raises(ValueError, match="exactly one"):
        KeyStore(database=hosts[0].database, path=tmp_path / "x.sqlite3")


def test_the_server_metadata_sits_beside_the_keys(tmp_path, database_url) -> None:
    databases = [open_server_database(tmp_path / (name if database_url else "a"),
                                      database_url=database_url) for name in ("a", "b")]
    try:
        a, b = (MetaStore(database=database) for database in databases)
        assert b.get("policy-name", "default") == "default"
        a.set("policy-name", "first")
        a.set("policy-name", "second")
        assert b.get("policy-name") == "second"
    finally:
        for database in databases:
            database.close()
