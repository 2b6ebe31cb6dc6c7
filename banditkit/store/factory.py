"""Which store an engine opens: the one place that chooses (docs/architecture.md §3)."""

from __future__ import annotations

from pathlib import Path

from banditkit.store.jobs import JobStore, PostgresJobStore, SQLiteJobStore
from banditkit.store.journaled import JournaledStore
from banditkit.store.postgres import PostgresStore
from banditkit.store.sqlite import Store

__all__ = ["open_job_store", "open_store"]


def open_store(data_dir: str | Path, *, database_url: str | None = None, name: str = "banditkit",
               schema: str = "banditkit", synchronous: str = "NORMAL",
               sqlite: type[Store] = Store, postgres: type[PostgresStore] = PostgresStore
               ) -> JournaledStore:
    """The SQLite store ``<data_dir>/<name>.sqlite3``, or with ``database_url`` the
    PostgreSQL one in ``schema``; either keeps this host's journal in the data directory.

    Parameters
    ----------
    data_dir : path
        The data directory (journals, claims and tokens always live there).
    database_url : str, default=None
        ``postgresql://user@host:port/database``; None keeps everything in SQLite.
    name : str, default="banditkit"
        The SQLite file's stem, and the prefix of the journal folder and tokens.
    schema : str, default="banditkit"
        The PostgreSQL schema of the tables.
    sqlite, postgres : type
        The store classes (the row engine passes its own).
    """
    data_dir = Path(data_dir)
    if database_url is None:
        return sqlite(path=data_dir / f"{name}.sqlite3", synchronous=synchronous)
    return postgres.open(database_url, local=data_dir / name, schema=schema,
                         synchronous=synchronous)


def open_job_store(data_dir: str | Path, *, database_url: str | None = None) -> JobStore:
    """Personalizer's evaluation jobs: in the SQLite store's own file, or with
    ``database_url`` in the PostgreSQL database every host shares (the learner
    lease's holder runs them; docs/operations.md, PostgreSQL deployments)."""
    if database_url is None:
        return SQLiteJobStore.open(Path(data_dir) / "banditkit.sqlite3")
    return PostgresJobStore.open(database_url)
