"""The artwork catalogue: titles, their artwork variants and trailer frame candidates.

The catalogue is data: titles with genres and metadata, and for each title its
artwork variants, each with namespaced features, warnings, near-duplicate
links, an active flag and the content hash of its image. It stores what it is
given: image analysis happens elsewhere (``artwork/``, called by
:mod:`catalogue.curation`), and the catalogue keeps the bytes by content hash
and an opaque fingerprint blob for near-duplicate checks.

The records it returns, the id checks and its errors live in
:mod:`catalogue.records`, the checks of the other fields it takes in
:mod:`catalogue.fields`, and the image files in :mod:`catalogue.images`.

Storage is its own SQLite file (WAL mode) in the data directory, next to the
engine's database, and the images under ``<data-dir>/images/<aa>/<sha256>``;
or, given a database URL, the PostgreSQL schema ``banditkit_catalogue`` that
every host shares, image bytes included (:mod:`catalogue.schema`). The
statements are the same for both (:class:`banditkit.store.database.Database`).
Every public write is one transaction. A generation counter changes on every
write, so :meth:`Catalogue.active_variants` serves ranking from a cache that
other processes' writes invalidate: at once with SQLite, within
:data:`SHARED_REFRESH_SECONDS` when other hosts write too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from banditkit.encoding import FrozenFeatures
from banditkit.errors import InvalidInputError
from banditkit.store.connections import rows_in
from banditkit.store.database import Database, open_database
from banditkit.types import Features
from catalogue.fields import (
    check_filename,
    check_genres,
    check_metadata,
    check_name,
    check_variant_fields,
)
from catalogue.images import ImageFiles, StoredImages
from catalogue.records import (
    Candidate,
    CatalogueConflictError,
    RankableVariant,
    Title,
    UnknownItemError,
    Variant,
    VariantRevision,
    check_content_hash,
    check_id,
)
from catalogue.schema import (
    MIGRATIONS,
    POSTGRES_SCHEMA,
    SQLITE_SCHEMA,
    prepare_sqlite,
    seed_themes,
)
from catalogue.tags import (
    TAGS_NAMESPACE,
    Tags,
    check_label,
    check_suggestions,
    check_theme_names,
    check_visual_tags,
)

__all__ = ["Catalogue", "RANKED_NAMESPACES", "SHARED_REFRESH_SECONDS"]

#: Artwork namespaces ranked under another name, so that no two namespaces a
#: learner sees share a first letter (VW's ``-q`` pairs by first letter):
#: artwork's ``Text`` would pair with a member's ``Taste`` (docs/marketer.md).
RANKED_NAMESPACES = {"Text": "Words"}
#: How long a process ranks from its cache of a shared (PostgreSQL) catalogue
#: before it reads the generation again: a rank does not wait for the database,
#: and another host's write reaches it within this (docs/operations.md).
SHARED_REFRESH_SECONDS = 1.0

_VARIANT_COLUMNS = ("variant_id, title_id, content_hash, features, warnings, details, "
                    "fingerprint, active, source, filename, created_at, label, tags, suggested")


class Catalogue:
    """Titles, artwork variants, frame candidates and images of one data directory, or of
    every host sharing a PostgreSQL database.

    Build it with :meth:`open`. Thread-safe; several processes and hosts may
    share one catalogue.

    Parameters
    ----------
    database : Database
        Where the tables are (SQLite file or PostgreSQL schema).
    images : ImageFiles
        The image bytes by content hash (files, or rows with files as a cache).
    clock : callable, default=time.time
        Current Unix time (tests pass a fake one).
    refresh_seconds : float, default=0.0
        How long :meth:`active_variants` trusts the generation it read last
        (0: read it on every call; :meth:`open` gives
        :data:`SHARED_REFRESH_SECONDS` to a shared database). This process's
        own writes are seen at once either way.
    """

    def __init__(self, *, database: Database, images: ImageFiles, clock: Any = time.time,
                 refresh_seconds: float = 0.0) -> None:
        self.database = database
        self.images = images
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        # The rankable variants of the titles asked for, and the generation they are of.
        self._rank_cache: tuple[int, dict[str, list[RankableVariant]]] = (-1, {})
        # The generation read last, and when (time.monotonic()); this process's writes.
        self._generation_read: tuple[float, int] = (-math.inf, -1)
        self._writes = 0
        self._cache_lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], *, database_url: str | None = None,
             clock: Any = time.time) -> Catalogue:
        """The catalogue of a data directory (``catalogue.sqlite3`` and ``images/``), or with
        ``database_url`` the PostgreSQL one (``images/`` is then this host's cache).

        Parameters
        ----------
        data_dir : path
        database_url : str, default=None
            ``postgresql://user@host:port/database``; its schema is created or
            migrated now (safe when hosts start at once).
        clock : callable, default=time.time
        """
        data_dir = Path(data_dir)
        database = open_database(path=data_dir / "catalogue.sqlite3",
                                 sqlite_schema=SQLITE_SCHEMA, prepare=prepare_sqlite,
                                 database_url=database_url, schema=POSTGRES_SCHEMA,
                                 migrations=MIGRATIONS)
        if not database.shared:
            return cls(database=database, images=ImageFiles(folder=data_dir / "images"),
                       clock=clock)
        with database.transaction() as db:
            seed_themes(db)
        return cls(database=database, images=StoredImages(folder=data_dir / "images"),
                   clock=clock, refresh_seconds=SHARED_REFRESH_SECONDS)

    # -- connections ---------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.database.read() as db:
            return db.execute(sql, params).fetchall()

    def _row(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.database.read() as db:
            return db.execute(sql, params).fetchone()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        try:
            with self.database.transaction() as db:
                yield db
                db.execute("UPDATE generation SET value = value + 1 WHERE id = 1")
        finally:  # this process sees its own writes at once
            with self._cache_lock:
                self._generation_read = (-math.inf, -1)
                self._writes += 1

    def close(self) -> None:
        """Close every connection (the catalogue reopens on next use)."""
        self.database.close()

    def generation(self) -> int:
        """A number that changes whenever any process writes to the catalogue."""
        return int(self._row("SELECT value FROM generation WHERE id = 1")[0])

    def _recent_generation(self) -> int:
        """:meth:`generation`, read again when the last read is ``refresh_seconds`` old."""
        now = time.monotonic()
        with self._cache_lock:
            (read_at, generation), writes = self._generation_read, self._writes
        if now - read_at < self.refresh_seconds:
            return generation
        try:
            latest = self.generation()
        except self.database.unreachable_errors:
            if generation < 0:
                raise
            # Ranks go on from the cached variants while the shared catalogue cannot
            # be reached; it is read again after refresh_seconds.
            with self._cache_lock:
                self._generation_read = (now, generation)
            return generation
        generation = latest
        with self._cache_lock:
            if self._writes == writes:  # else a write of ours may be newer than this read
                self._generation_read = (now, generation)
        return generation

    # -- titles --------------------------------------------------------------

    def create_title(self, title_id: str, *, name: str | None = None,
                     genres: Sequence[str] = (), metadata: Mapping[str, Any] | None = None
                     ) -> Title:
        """Add a title.

        Parameters
        ----------
        title_id : str
            Matches :data:`ID_PATTERN`.
        name : str, default=None
            Display name; the id when None.
        genres : sequence of str, default=()
            Lower-cased; they become the ``Genre`` namespace of every variant.
        metadata : mapping, default=None
            Any JSON object of at most 16 KiB.

        Raises
        ------
        InvalidInputError, CatalogueConflictError
        """
        check_id(title_id)
        title = Title(id=title_id, name=check_name(title_id if name is None else name),
                      genres=check_genres(genres), metadata=check_metadata(metadata or {}),
                      created_at=float(self.clock()))
        try:
            with self._transaction() as db:
                db.execute("INSERT INTO titles VALUES (?,?,?,?,?)",
                           (title.id, title.name, json.dumps(list(title.genres)),
                            json.dumps(title.metadata), title.created_at))
        except self.database.integrity_errors:
            raise CatalogueConflictError(f"title {title_id!r} already exists") from None
        return title

    def update_title(self, title_id: str, *, name: str | None = None,
                     genres: Sequence[str] | None = None,
                     metadata: Mapping[str, Any] | None = None) -> Title:
        """Change a title's name, genres or metadata (None leaves a field as it is)."""
        current = self.title(title_id)
        title = Title(
            id=current.id,
            name=current.name if name is None else check_name(name),
            genres=current.genres if genres is None else check_genres(genres),
            metadata=current.metadata if metadata is None else check_metadata(metadata),
            created_at=current.created_at)
        with self._transaction() as db:
            db.execute("UPDATE titles SET name = ?, genres = ?, metadata = ? WHERE title_id = ?",
                       (title.name, json.dumps(list(title.genres)), json.dumps(title.metadata),
                        title.id))
        return title

    def title(self, title_id: str) -> Title:
        """One title.

        Raises
        ------
        UnknownItemError
        """
        check_id(title_id)
        row = self._row(
            "SELECT title_id, name, genres, metadata, created_at FROM titles "
            "WHERE title_id = ?", (title_id,))
        if row is None:
            raise UnknownItemError(f"unknown title {title_id!r}")
        return _title(row)

    def titles(self) -> list[Title]:
        """Every title, by id."""
        return [_title(row) for row in self._rows(
            "SELECT title_id, name, genres, metadata, created_at FROM titles ORDER BY title_id")]

    def variant_counts(self) -> dict[str, tuple[int, int]]:
        """``{title_id: (n_variants, n_active)}`` of titles that have variants."""
        return {row[0]: (row[1], row[2]) for row in self._rows(
            "SELECT title_id, COUNT(*), SUM(active) FROM variants GROUP BY title_id")}

    def delete_title(self, title_id: str) -> None:
        """Remove a title with its variants and candidates (and images no one else uses)."""
        self.title(title_id)
        with self._transaction() as db:
            hashes = [r[0] for r in db.execute(
                "SELECT content_hash FROM variants WHERE title_id = ? UNION "
                "SELECT content_hash FROM candidates WHERE title_id = ?", (title_id, title_id))]
            db.execute("DELETE FROM titles WHERE title_id = ?", (title_id,))
            orphans = self._drop_orphan_images(db, hashes)
        self.images.unlink(orphans)

    # -- images --------------------------------------------------------------

    def image_path(self, content_hash: str) -> Path:
        """Where the bytes of ``content_hash`` live (whether or not they exist)."""
        return self.images.path(content_hash)

    def image(self, content_hash: str) -> tuple[Path, str]:
        """``(path, media_type)`` of a stored image (a shared catalogue's host writes its
        cached file now if it has none).

        Raises
        ------
        UnknownItemError
        """
        check_content_hash(content_hash)
        with self.database.read() as db:
            row = db.execute("SELECT media_type FROM images WHERE content_hash = ?",
                             (content_hash,)).fetchone()
            path = None if row is None else self.images.load(db, content_hash)
        if path is None:
            raise UnknownItemError(f"unknown image {content_hash!r}")
        return path, row[0]

    @staticmethod
    def _drop_orphan_images(db: Any, hashes: Sequence[str]) -> list[str]:
        orphans = []
        for content_hash in set(hashes):
            used = db.execute(
                "SELECT 1 FROM variants WHERE content_hash = ? UNION ALL "
                "SELECT 1 FROM candidates WHERE content_hash = ? LIMIT 1",
                (content_hash, content_hash)).fetchone()
            if used is None:
                db.execute("DELETE FROM images WHERE content_hash = ?", (content_hash,))
                orphans.append(content_hash)
        return orphans

    # -- variants ------------------------------------------------------------

    def add_variant(self, title_id: str, *, data: bytes, media_type: str, features: Features,
                    warnings: Sequence[Mapping[str, str]] = (),
                    details: Mapping[str, Any] | None = None, fingerprint: bytes | None = None,
                    near_duplicates: Sequence[str] = (), filename: str = "",
                    source: str = "upload", active: bool = True,
                    suggested_tags: Sequence[str] = ()) -> Variant:
        """Store an image and add it as a variant of a title.

        Parameters
        ----------
        title_id : str
        data : bytes
            The image file; stored under its SHA-256.
        media_type : str
            Its media type (``image/jpeg``...), decided by the caller's decoder.
        features : Features
            Namespaced action features of the image.
        warnings : sequence of {"code", "message"}, default=()
        details : mapping, default=None
            Other JSON results of the analysis.
        fingerprint : bytes, default=None
            Opaque blob the caller uses for near-duplicate checks.
        near_duplicates : sequence of str, default=()
            Ids of the title's variants this one looks like; linked both ways.
        filename : str, default=""
            The upload's name, for display; path separators are refused.
        source : {"upload", "trailer"}, default="upload"
        active : bool, default=True
        suggested_tags : sequence of str, default=()
            Visual tags (:data:`catalogue.tags.VISUAL_TAGS`) the analysis suggests,
            pending until a marketer confirms or removes them.

        Raises
        ------
        UnknownItemError
            When the title does not exist.
        CatalogueConflictError
            When the title already has a variant with the same bytes.
        InvalidInputError
            For malformed features, warnings, names or duplicate ids.
        """
        self.title(title_id)
        check_variant_fields(features, warnings, details, media_type, source)
        filename = check_filename(filename)
        suggested = check_visual_tags(suggested_tags, name="suggested_tags")
        content_hash = self.images.write(bytes(data))
        variant_id = "v" + secrets.token_hex(6)
        now = float(self.clock())
        try:
            with self._transaction() as db:
                existing = db.execute(
                    "SELECT variant_id FROM variants WHERE title_id = ? AND content_hash = ?",
                    (title_id, content_hash)).fetchone()
                if existing is not None:
                    raise CatalogueConflictError(
                        f"title {title_id!r} already has this image as variant {existing[0]!r}")
                self._insert_image(db, content_hash, media_type, data)
                self._insert_variant(
                    db, variant_id=variant_id, title_id=title_id, content_hash=content_hash,
                    features=features, warnings=warnings, details=details or {},
                    fingerprint=fingerprint, active=bool(active), source=source,
                    filename=filename, created_at=now, suggested=suggested)
                self._link_duplicates(db, title_id, variant_id, near_duplicates)
        except CatalogueConflictError:
            raise
        except BaseException:
            self._unlink_if_unused(content_hash)
            raise
        self.images.ensure(content_hash, data)
        return self.variant(title_id, variant_id)

    def _insert_image(self, db: Any, content_hash: str, media_type: str, data: bytes) -> None:
        db.execute("INSERT INTO images VALUES (?,?,?) ON CONFLICT DO NOTHING",
                   (content_hash, media_type, len(data)))
        self.images.record(db, content_hash, data)

    @staticmethod
    def _insert_variant(db: Any, *, variant_id: str, title_id: str,
                        content_hash: str, features: Features,
                        warnings: Sequence[Mapping[str, str]], details: Mapping[str, Any],
                        fingerprint: bytes | None, active: bool, source: str, filename: str,
                        created_at: float, suggested: Sequence[str]) -> None:
        """Insert a variant at revision 1 without tags, labelled with its file name (its
        id when it has none)."""
        label = filename or variant_id
        tags = json.dumps(Tags().to_dict())
        db.execute(f"INSERT INTO variants ({_VARIANT_COLUMNS}) VALUES "
                   "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (variant_id, title_id, content_hash, json.dumps(features),
                    json.dumps([dict(w) for w in warnings]), json.dumps(dict(details)),
                    fingerprint, int(active), source, filename, created_at, label, tags,
                    json.dumps(list(suggested))))
        db.execute("INSERT INTO variant_revisions VALUES (?, 1, ?, ?, ?, ?)",
                   (variant_id, label, tags, int(active), created_at))

    @staticmethod
    def _link_duplicates(db: Any, title_id: str, variant_id: str,
                         others: Sequence[str]) -> None:
        for other in others:
            row = db.execute("SELECT title_id FROM variants WHERE variant_id = ?",
                             (other,)).fetchone()
            if row is None or row[0] != title_id or other == variant_id:
                raise InvalidInputError(
                    f"near_duplicates must name other variants of title {title_id!r}, "
                    f"got {other!r}")
            db.executemany("INSERT INTO duplicates VALUES (?, ?) ON CONFLICT DO NOTHING",
                           [(variant_id, other), (other, variant_id)])

    def _unlink_if_unused(self, content_hash: str) -> None:
        if self._row("SELECT 1 FROM images WHERE content_hash = ?", (content_hash,)) is None:
            self.images.unlink([content_hash])

    def variant(self, title_id: str, variant_id: str) -> Variant:
        """One variant of a title.

        Raises
        ------
        UnknownItemError
        """
        self.title(title_id)
        with self.database.read() as db:
            variants = self._variants(db, "v.title_id = ? AND v.variant_id = ?",
                                      (title_id, variant_id))
        if not variants:
            raise UnknownItemError(f"title {title_id!r} has no variant {variant_id!r}")
        return variants[0]

    def variants(self, title_id: str) -> list[Variant]:
        """Every variant of a title, oldest first."""
        self.title(title_id)
        with self.database.read() as db:
            return self._variants(db, "v.title_id = ?", (title_id,))

    @staticmethod
    def _variants(db: Any, where: str, params: tuple[Any, ...]) -> list[Variant]:
        rows = db.execute(
            "SELECT v.variant_id, v.title_id, v.content_hash, i.media_type, v.features, "
            "v.warnings, v.details, v.active, v.source, v.filename, v.created_at, "
            "v.fingerprint, v.label, v.tags, v.suggested, v.revision "
            f"FROM variants v JOIN images i USING (content_hash) WHERE {where} "
            "ORDER BY v.created_at, v.rowid", params).fetchall()
        links: dict[str, list[str]] = {}
        for variant_id, other_id in db.execute(
                "SELECT d.variant_id, d.other_id FROM duplicates d JOIN variants v "
                f"ON v.variant_id = d.variant_id WHERE {where}", params):
            links.setdefault(variant_id, []).append(other_id)
        return [Variant(id=r[0], title_id=r[1], content_hash=r[2], media_type=r[3],
                        features=json.loads(r[4]), warnings=json.loads(r[5]),
                        details=json.loads(r[6]), active=bool(r[7]), source=r[8],
                        filename=r[9], created_at=r[10],
                        fingerprint=None if r[11] is None else bytes(r[11]),
                        near_duplicates=tuple(sorted(links.get(r[0], ()))), label=r[12],
                        tags=Tags.from_dict(json.loads(r[13])),
                        suggested_tags=tuple(json.loads(r[14])), revision=r[15])
                for r in rows]

    def fingerprints(self, title_id: str) -> dict[str, bytes]:
        """``{variant_id: fingerprint}`` of a title's variants that have one."""
        self.title(title_id)
        return {row[0]: bytes(row[1]) for row in self._rows(
            "SELECT variant_id, fingerprint FROM variants WHERE title_id = ? "
            "AND fingerprint IS NOT NULL ORDER BY created_at", (title_id,))}

    def update_variant(self, title_id: str, variant_id: str, *, active: bool | None = None,
                       label: str | None = None, tags: Mapping[str, Any] | None = None,
                       suggested_tags: Sequence[str] | None = None,
                       revision: int | None = None) -> Variant:
        """Change a variant's active flag, label or tags: a new revision (one transaction).

        Parameters
        ----------
        active : bool, default=None
            Whether ranking may choose it.
        label : str, default=None
            Its display name.
        tags : mapping of str to sequence of str, default=None
            Tag fields to replace (``{"themes": ["romance"]}``); the others are kept.
            Themes must be in :meth:`themes`. A visual tag set here is no longer
            a pending suggestion.
        suggested_tags : sequence of str, default=None
            The pending suggestions to keep (the others are removed).
        revision : int, default=None
            The revision the change was made from; another gets
            :class:`CatalogueConflictError` (someone changed it meanwhile).

        None leaves a field as it is. A change that leaves everything as it was
        makes no revision.

        Raises
        ------
        UnknownItemError, CatalogueConflictError, InvalidInputError
        """
        if active is not None and not isinstance(active, bool):
            raise InvalidInputError(f"active must be true or false, got {active!r}")
        if revision is not None and (isinstance(revision, bool)
                                     or not isinstance(revision, int)):
            raise InvalidInputError(f"revision must be an integer, got {revision!r}")
        label = None if label is None else check_label(label)
        self.title(title_id)
        with self._transaction() as db:
            found = self._variants(db, "v.title_id = ? AND v.variant_id = ?",
                                   (title_id, variant_id))
            if not found:
                raise UnknownItemError(f"title {title_id!r} has no variant {variant_id!r}")
            current = found[0]
            if revision is not None and revision != current.revision:
                raise CatalogueConflictError(
                    f"variant {variant_id!r} is at revision {current.revision}, not "
                    f"{revision}: someone changed it since; read it again")
            new_tags = current.tags if tags is None else current.tags.replace(
                tags, themes=self._themes(db))
            pending = current.suggested_tags if suggested_tags is None else check_suggestions(
                suggested_tags, pending=current.suggested_tags)
            pending = tuple(t for t in pending if t not in new_tags.visual)
            changed = (current.active if active is None else active,
                       current.label if label is None else label, new_tags)
            if changed == (current.active, current.label, current.tags) \
                    and pending == current.suggested_tags:
                return current
            encoded = json.dumps(new_tags.to_dict())
            db.execute("UPDATE variants SET active = ?, label = ?, tags = ?, suggested = ?, "
                       "revision = revision + 1 WHERE variant_id = ?",
                       (int(changed[0]), changed[1], encoded, json.dumps(pending), variant_id))
            db.execute("INSERT INTO variant_revisions VALUES (?, ?, ?, ?, ?, ?)",
                       (variant_id, current.revision + 1, changed[1], encoded,
                        int(changed[0]), float(self.clock())))
        return self.variant(title_id, variant_id)

    def variant_revisions(self, title_id: str, variant_id: str) -> list[VariantRevision]:
        """A variant's label, tags and active flag at each revision, oldest first."""
        self.variant(title_id, variant_id)
        return [VariantRevision(revision=r[0], label=r[1], tags=Tags.from_dict(json.loads(r[2])),
                                active=bool(r[3]), changed_at=r[4])
                for r in self._rows(
                    "SELECT revision, label, tags, active, changed_at FROM variant_revisions "
                    "WHERE variant_id = ? ORDER BY revision", (variant_id,))]

    # -- themes --------------------------------------------------------------

    def themes(self) -> tuple[str, ...]:
        """The theme vocabulary, in the order themes were added."""
        with self.database.read() as db:
            return self._themes(db)

    @staticmethod
    def _themes(db: Any) -> tuple[str, ...]:
        return tuple(r[0] for r in db.execute(
            "SELECT name FROM themes ORDER BY created_at, rowid"))

    def add_themes(self, names: Sequence[str]) -> tuple[str, ...]:
        """Extend the theme vocabulary (themes already in it are kept once); returns it."""
        with self._transaction() as db:
            present = self._themes(db)
            new = [t for t in check_theme_names(names, present=len(present)) if t not in present]
            now = float(self.clock())
            db.executemany("INSERT INTO themes (name, created_at) VALUES (?, ?)",
                           [(t, now) for t in new])
        return self.themes()

    def delete_variant(self, title_id: str, variant_id: str) -> None:
        """Remove a variant (its image too when nothing else uses it)."""
        variant = self.variant(title_id, variant_id)
        with self._transaction() as db:
            db.execute("DELETE FROM variants WHERE variant_id = ?", (variant_id,))
            orphans = self._drop_orphan_images(db, [variant.content_hash])
        self.images.unlink(orphans)

    # -- candidates (trailer frames) -------------------------------------------

    def add_candidate(self, title_id: str, *, data: bytes, media_type: str, features: Features,
                      warnings: Sequence[Mapping[str, str]] = (),
                      details: Mapping[str, Any] | None = None, fingerprint: bytes | None = None,
                      filename: str = "") -> Candidate:
        """Store a frame proposed as artwork of a title, pending approval.

        Parameters are those of :meth:`add_variant`.
        """
        self.title(title_id)
        check_variant_fields(features, warnings, details, media_type, "trailer")
        filename = check_filename(filename)
        content_hash = self.images.write(bytes(data))
        candidate_id = "c" + secrets.token_hex(6)
        try:
            with self._transaction() as db:
                self._insert_image(db, content_hash, media_type, data)
                db.execute("INSERT INTO candidates (candidate_id, title_id, content_hash, "
                           "features, warnings, details, fingerprint, filename, created_at) "
                           "VALUES (?,?,?,?,?,?,?,?,?)",
                           (candidate_id, title_id, content_hash, json.dumps(features),
                            json.dumps([dict(w) for w in warnings]),
                            json.dumps(dict(details or {})), fingerprint, filename,
                            float(self.clock())))
        except BaseException:
            self._unlink_if_unused(content_hash)
            raise
        self.images.ensure(content_hash, data)
        return self.candidate(title_id, candidate_id)

    def candidate(self, title_id: str, candidate_id: str) -> Candidate:
        """One pending candidate of a title.

        Raises
        ------
        UnknownItemError
        """
        self.title(title_id)
        found = self._candidates("c.title_id = ? AND c.candidate_id = ?",
                                 (title_id, candidate_id))
        if not found:
            raise UnknownItemError(f"title {title_id!r} has no candidate {candidate_id!r}")
        return found[0]

    def candidates(self, title_id: str) -> list[Candidate]:
        """A title's pending candidates, oldest first."""
        self.title(title_id)
        return self._candidates("c.title_id = ?", (title_id,))

    def _candidates(self, where: str, params: tuple[Any, ...]) -> list[Candidate]:
        rows = self._rows(
            "SELECT c.candidate_id, c.title_id, c.content_hash, i.media_type, c.features, "
            "c.warnings, c.details, c.filename, c.created_at, c.fingerprint "
            f"FROM candidates c JOIN images i USING (content_hash) WHERE {where} "
            "ORDER BY c.created_at, c.rowid", params)
        return [Candidate(id=r[0], title_id=r[1], content_hash=r[2], media_type=r[3],
                          features=json.loads(r[4]), warnings=json.loads(r[5]),
                          details=json.loads(r[6]), filename=r[7], created_at=r[8],
                          fingerprint=None if r[9] is None else bytes(r[9]))
                for r in rows]

    def approve_candidate(self, title_id: str, candidate_id: str, *,
                          near_duplicates: Sequence[str] = (),
                          warnings: Sequence[Mapping[str, str]] | None = None,
                          suggested_tags: Sequence[str] = ()) -> Variant:
        """Turn a candidate into an active variant (one transaction).

        Parameters
        ----------
        near_duplicates : sequence of str, default=()
            The title's variants the frame looks like (checked by the caller).
        warnings : sequence of dict, default=None
            Replacement warnings (e.g. with near-duplicate ones added); None keeps them.
        suggested_tags : sequence of str, default=()
            As :meth:`add_variant`'s.

        Raises
        ------
        UnknownItemError, CatalogueConflictError
        """
        candidate = self.candidate(title_id, candidate_id)
        variant_id = "v" + secrets.token_hex(6)
        kept = list(candidate.warnings if warnings is None else warnings)
        check_variant_fields(candidate.features, kept, None, candidate.media_type,
                                   "trailer")
        suggested = check_visual_tags(suggested_tags, name="suggested_tags")
        with self._transaction() as db:
            existing = db.execute(
                "SELECT variant_id FROM variants WHERE title_id = ? AND content_hash = ?",
                (title_id, candidate.content_hash)).fetchone()
            if existing is not None:
                raise CatalogueConflictError(
                    f"title {title_id!r} already has this frame as variant {existing[0]!r}")
            self._insert_variant(
                db, variant_id=variant_id, title_id=title_id,
                content_hash=candidate.content_hash, features=candidate.features,
                warnings=kept, details=candidate.details, fingerprint=candidate.fingerprint,
                active=True, source="trailer", filename=candidate.filename,
                created_at=float(self.clock()), suggested=suggested)
            self._link_duplicates(db, title_id, variant_id, near_duplicates)
            db.execute("DELETE FROM candidates WHERE candidate_id = ?", (candidate_id,))
        return self.variant(title_id, variant_id)

    def delete_candidate(self, title_id: str, candidate_id: str) -> None:
        """Discard a candidate (and its image when nothing else uses it)."""
        candidate = self.candidate(title_id, candidate_id)
        with self._transaction() as db:
            db.execute("DELETE FROM candidates WHERE candidate_id = ?", (candidate_id,))
            orphans = self._drop_orphan_images(db, [candidate.content_hash])
        self.images.unlink(orphans)

    # -- ranking -------------------------------------------------------------

    def active_variants(self, title_ids: Sequence[str]) -> dict[str, list[RankableVariant]]:
        """Each title's active variants with their action features, for one rank call.

        The action features of a variant are its image features (``Text`` as
        ``Words``, :data:`RANKED_NAMESPACES`), plus the title's
        genres as the ``Genre`` namespace (``{"comedy": True}``), plus its tags as
        the :data:`~catalogue.tags.TAGS_NAMESPACE` namespace (``{"theme=romance":
        1.0}``, when it has any), plus a ``Variant`` namespace holding the variant
        id so that a learner can memorise a variant.
        Served from a cache that any write (by any process) invalidates.

        Parameters
        ----------
        title_ids : sequence of str

        Returns
        -------
        dict of str to list of RankableVariant
            Every requested title, oldest variant first (the baseline); an empty
            list for a title without active variants.

        Raises
        ------
        UnknownItemError
            Naming every requested title the catalogue does not hold.
        """
        generation = self._recent_generation()
        with self._cache_lock:
            if self._rank_cache[0] != generation:
                self._rank_cache = (generation, {})
            titles = self._rank_cache[1]
            missing = [t for t in dict.fromkeys(title_ids) if t not in titles]
            if missing:
                titles.update(self._load_rankable(missing))
        unknown = [t for t in title_ids if t not in titles]
        if unknown:
            raise UnknownItemError(f"unknown titles: {unknown}")
        return {t: titles[t] for t in title_ids}

    def _load_rankable(self, title_ids: Sequence[str]) -> dict[str, list[RankableVariant]]:
        with self.database.read() as db:
            return self._rankable(db, title_ids)

    @staticmethod
    def _rankable(db: Any, title_ids: Sequence[str]) -> dict[str, list[RankableVariant]]:
        out: dict[str, list[RankableVariant]] = {}
        genres: dict[str, dict[str, bool]] = {}
        for title_id, raw in rows_in(
                db, "SELECT title_id, genres FROM titles WHERE title_id IN ({marks})",
                title_ids):
            out[title_id] = []
            genres[title_id] = {g: True for g in json.loads(raw)}
        for variant_id, title_id, content_hash, media_type, raw, tags in rows_in(
                db, "SELECT v.variant_id, v.title_id, v.content_hash, i.media_type, "
                "v.features, v.tags FROM variants v JOIN images i USING (content_hash) "
                "WHERE v.active = 1 AND v.title_id IN ({marks}) "
                "ORDER BY v.created_at, v.rowid", title_ids):
            features = {RANKED_NAMESPACES.get(namespace, namespace): values
                        for namespace, values in json.loads(raw).items()}
            if genres[title_id]:
                features["Genre"] = dict(genres[title_id])
            depicted = Tags.from_dict(json.loads(tags)).features()
            if depicted:
                features[TAGS_NAMESPACE] = depicted
            features["Variant"] = {"id": variant_id}
            out[title_id].append(RankableVariant(
                id=variant_id, content_hash=content_hash, media_type=media_type,
                features=FrozenFeatures(features, name=f"variant {variant_id!r} features")))
        return out


def _title(row: tuple[Any, ...]) -> Title:
    return Title(id=row[0], name=row[1], genres=tuple(json.loads(row[2])),
                 metadata=json.loads(row[3]), created_at=row[4])
