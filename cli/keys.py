"""``banditkit keys``: create, list and revoke API keys.

Keys live in the data directory's ``serving.sqlite3``, or with ``--database-url`` in the
PostgreSQL database every host shares: where the server looks for them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import click

from cli._options import data_dir_option, database_url_option
from serving.keys import ROLES, KeyStore

__all__ = ["keys"]


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _store(data_dir: Path, database_url: str | None) -> KeyStore:
    return KeyStore.open(data_dir, database_url=database_url)


@click.group()
def keys() -> None:
    """API keys with roles: client, marketer, analyst, admin."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="client: rank/reward/activate; marketer: catalogue; analyst: logs and "
                   "settings (read); admin: everything.")
@click.option("--name", default="", help="Who or what holds the key.")
@data_dir_option
@database_url_option
def create(role: str, name: str, data_dir: Path, database_url: str | None) -> None:
    """Create a key and print it once (only its hash is stored)."""
    with contextlib.closing(_store(data_dir, database_url)) as store:
        key, record = store.create(role=role, name=name)
    click.echo(key)
    click.echo(f"key id {record.key_id}, role {record.role}: store it now, it is not kept.",
               err=True)


@keys.command("list")
@data_dir_option
@database_url_option
def list_keys(data_dir: Path, database_url: str | None) -> None:
    """List keys (ids, roles, names, dates; never the secrets)."""
    with contextlib.closing(_store(data_dir, database_url)) as store:
        records = store.list()
    for record in records:
        state = "revoked " + _when(record.revoked_at) if record.revoked_at else "active"
        click.echo(
            f"{record.key_id}\t{record.role}\t{_when(record.created_at)}\t{state}\t{record.name}"
        )


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
@database_url_option
def revoke(key_id: str, data_dir: Path, database_url: str | None) -> None:
    """Revoke the key with KEY_ID (running servers stop accepting it within seconds)."""
    with contextlib.closing(_store(data_dir, database_url)) as store:
        revoked = store.revoke(key_id)
    if not revoked:
        raise click.ClickException(f"no active key with id {key_id!r}")
    click.echo(f"revoked {key_id}")
