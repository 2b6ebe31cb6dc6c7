"""``banditkit keys``: create, list and revoke API keys.

Keys live in the data directory's ``serving.sqlite3``, where the server looks for them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from cli._options import data_dir_option
from serving.keys import ROLES, KeyStore, default_path

__all__ = ["keys"]


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group()
def keys() -> None:
    """API keys with roles: client, marketer, analyst, admin."""


@keys.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="client: rank/reward/activate; marketer: catalogue; analyst: logs and "
                   "settings (read); admin: everything.")
@click.option("--name", default="", help="Who or what holds the key.")
@data_dir_option
def create(role: str, name: str, data_dir: Path) -> None:
    """Create a key and print it once (only its hash is stored)."""
    key, record = KeyStore(path=default_path(data_dir)).create(role=role, name=name)
    click.echo(key)
    click.echo(f"key id {record.key_id}, role {record.role}: store it now, it is not kept.",
               err=True)


@keys.command("list")
@data_dir_option
def list_keys(data_dir: Path) -> None:
    """List keys (ids, roles, names, dates; never the secrets)."""
    for record in KeyStore(path=default_path(data_dir)).list():
        state = "revoked " + _when(record.revoked_at) if record.revoked_at else "active"
        click.echo(
            f"{record.key_id}\t{record.role}\t{_when(record.created_at)}\t{state}\t{record.name}"
        )


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
def revoke(key_id: str, data_dir: Path) -> None:
    """Revoke the key with KEY_ID (running servers stop accepting it within seconds)."""
    if not KeyStore(path=default_path(data_dir)).revoke(key_id):
        raise click.ClickException(f"no active key with id {key_id!r}")
    click.echo(f"revoked {key_id}")
