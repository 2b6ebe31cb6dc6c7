"""The catalogue's tables, in SQLite and in PostgreSQL (docs/architecture.md §3).

:class:`~catalogue.store.Catalogue` runs the same statements on both; what
differs is how the tables come to be. A SQLite catalogue applies
:data:`SQLITE_SCHEMA` on each connection and :func:`prepare_sqlite` brings one
made by an older banditkit up to date. A PostgreSQL catalogue lives in the
schema :data:`POSTGRES_SCHEMA`, built by the versioned :data:`MIGRATIONS`
under the migration lock of :func:`banditkit.store.postgres.migrate`; its
image bytes are rows of ``image_bytes`` (files are only each host's cache),
and its ``rowid`` columns give the insertion order SQLite's implicit
``rowid`` gives, so the shared statements order by ``rowid`` in both.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from catalogue.tags import DEFAULT_THEMES

__all__ = ["MIGRATIONS", "POSTGRES_SCHEMA", "SQLITE_SCHEMA", "prepare_sqlite", "seed_themes"]

#: The PostgreSQL schema holding the catalogue's tables.
POSTGRES_SCHEMA = "banditkit_catalogue"

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS titles (
    title_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    genres     TEXT NOT NULL,      -- JSON list of strings
    metadata   TEXT NOT NULL,      -- JSON object
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    content_hash TEXT PRIMARY KEY,  -- SHA-256 of the bytes, hex
    media_type   TEXT NOT NULL,
    size         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS variants (
    variant_id   TEXT PRIMARY KEY,
    title_id     TEXT NOT NULL REFERENCES titles (title_id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL REFERENCES images (content_hash),
    features     TEXT NOT NULL,     -- JSON namespaced features (image analysis)
    warnings     TEXT NOT NULL,     -- JSON list of {code, message}
    details      TEXT NOT NULL,     -- JSON object (sizes, boxes, palette, notes...)
    fingerprint  BLOB,              -- opaque, for near-duplicate checks
    active       INTEGER NOT NULL,
    source       TEXT NOT NULL,     -- upload | trailer
    filename     TEXT NOT NULL,
    created_at   REAL NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    tags         TEXT NOT NULL DEFAULT '{}',   -- JSON {themes, tone, cast, setting, visual}
    suggested    TEXT NOT NULL DEFAULT '[]',   -- JSON list of pending visual tags
    revision     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (title_id, content_hash)
);
CREATE INDEX IF NOT EXISTS variants_title ON variants (title_id, created_at);
CREATE TABLE IF NOT EXISTS duplicates (
    variant_id TEXT NOT NULL REFERENCES variants (variant_id) ON DELETE CASCADE,
    other_id   TEXT NOT NULL REFERENCES variants (variant_id) ON DELETE CASCADE,
    PRIMARY KEY (variant_id, other_id)
);
CREATE TABLE IF NOT EXISTS candidates (
    candidate_id TEXT PRIMARY KEY,
    title_id     TEXT NOT NULL REFERENCES titles (title_id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL REFERENCES images (content_hash),
    features     TEXT NOT NULL,
    warnings     TEXT NOT NULL,
    details      TEXT NOT NULL,
    fingerprint  BLOB,
    filename     TEXT NOT NULL,
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS candidates_title ON candidates (title_id, created_at);
CREATE TABLE IF NOT EXISTS generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER);
INSERT INTO generation (id, value) VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS themes (
    name       TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS variant_revisions (
    variant_id TEXT NOT NULL REFERENCES variants (variant_id) ON DELETE CASCADE,
    revision   INTEGER NOT NULL,
    label      TEXT NOT NULL,
    tags       TEXT NOT NULL,
    active     INTEGER NOT NULL,
    changed_at REAL NOT NULL,
    PRIMARY KEY (variant_id, revision)
);
"""

# Columns a catalogue made before labels and tags lacks, added when it opens.
_ADDED_VARIANT_COLUMNS = (("label", "TEXT NOT NULL DEFAULT ''"),
                          ("tags", "TEXT NOT NULL DEFAULT '{}'"),
                          ("suggested", "TEXT NOT NULL DEFAULT '[]'"),
                          ("revision", "INTEGER NOT NULL DEFAULT 1"))


def prepare_sqlite(db: sqlite3.Connection) -> None:
    """Bring a catalogue made by an older banditkit to this schema; seed the themes.

    Run on each new connection after the schema; writes (in one transaction)
    only when something is missing: variants of before labels get their file
    name (or id) as label and their state as revision 1; a catalogue without
    themes gets :data:`DEFAULT_THEMES`.
    """
    if not _outdated(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        present = {row[1] for row in db.execute("PRAGMA table_info(variants)")}
        if "label" not in present:  # not done by another process meanwhile
            for column, kind in _ADDED_VARIANT_COLUMNS:
                db.execute(f"ALTER TABLE variants ADD COLUMN {column} {kind}")
            db.execute("UPDATE variants SET label = CASE filename WHEN '' THEN variant_id "
                       "ELSE filename END")
            db.execute("INSERT INTO variant_revisions SELECT variant_id, 1, label, tags, "
                       "active, created_at FROM variants")
        seed_themes(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _outdated(db: sqlite3.Connection) -> bool:
    present = {row[1] for row in db.execute("PRAGMA table_info(variants)")}
    return "label" not in present or db.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM themes)").fetchone()[0] == 1


#: The PostgreSQL catalogue's migrations, ``(name, SQL)`` in the order they apply. A
#: migration once released never changes; a change to the tables is a new one.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001-catalogue", """
CREATE TABLE titles (
    title_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    genres     TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE images (
    content_hash TEXT PRIMARY KEY,
    media_type   TEXT NOT NULL,
    size         INTEGER NOT NULL
);
CREATE TABLE image_bytes (        -- what ImageFiles keeps in files with SQLite
    content_hash TEXT PRIMARY KEY REFERENCES images (content_hash) ON DELETE CASCADE,
    data         BYTEA NOT NULL
);
CREATE TABLE variants (
    variant_id   TEXT PRIMARY KEY,
    title_id     TEXT NOT NULL REFERENCES titles (title_id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL REFERENCES images (content_hash),
    features     TEXT NOT NULL,
    warnings     TEXT NOT NULL,
    details      TEXT NOT NULL,
    fingerprint  BYTEA,
    active       INTEGER NOT NULL,
    source       TEXT NOT NULL,
    filename     TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    label        TEXT NOT NULL DEFAULT '',
    tags         TEXT NOT NULL DEFAULT '{}',
    suggested    TEXT NOT NULL DEFAULT '[]',
    revision     INTEGER NOT NULL DEFAULT 1,
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    UNIQUE (title_id, content_hash)
);
CREATE INDEX variants_title ON variants (title_id, created_at);
CREATE TABLE duplicates (
    variant_id TEXT NOT NULL REFERENCES variants (variant_id) ON DELETE CASCADE,
    other_id   TEXT NOT NULL REFERENCES variants (variant_id) ON DELETE CASCADE,
    PRIMARY KEY (variant_id, other_id)
);
CREATE TABLE candidates (
    candidate_id TEXT PRIMARY KEY,
    title_id     TEXT NOT NULL REFERENCES titles (title_id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL REFERENCES images (content_hash),
    features     TEXT NOT NULL,
    warnings     TEXT NOT NULL,
    details      TEXT NOT NULL,
    fingerprint  BYTEA,
    filename     TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX candidates_title ON candidates (title_id, created_at);
CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL);
INSERT INTO generation (id, value) VALUES (1, 0);
CREATE TABLE themes (
    name       TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    rowid      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE TABLE variant_revisions (
    variant_id TEXT NOT NULL REFERENCES variants (variant_id) ON DELETE CASCADE,
    revision   INTEGER NOT NULL,
    label      TEXT NOT NULL,
    tags       TEXT NOT NULL,
    active     INTEGER NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (variant_id, revision)
);
"""),
)


def seed_themes(db: Any) -> None:
    """Give a catalogue without themes :data:`~catalogue.tags.DEFAULT_THEMES` (inside the
    caller's write transaction)."""
    if db.execute("SELECT COUNT(*) FROM themes").fetchone()[0] == 0:
        db.executemany("INSERT INTO themes (name, created_at) VALUES (?, 0)",
                       [(t,) for t in DEFAULT_THEMES])
