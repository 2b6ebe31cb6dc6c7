"""The catalogue store: titles, variants, duplicates, candidates, images, the ranking cache.

Every test that takes ``catalogue`` runs on both stores: SQLite in the data
directory and PostgreSQL (``database_url``, a slow case).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from banditkit.errors import InvalidInputError
from catalogue import DEFAULT_THEMES, Catalogue, CatalogueConflictError, Tags, UnknownItemError
from catalogue.store import SHARED_REFRESH_SECONDS

FEATURES = {"Color": {"brightness": 0.4, "palette": "warm"}, "Face": {"count": 1}}


@pytest.fixture
def catalogue(tmp_path, clock, database_url):
    catalogue = Catalogue.open(tmp_path, database_url=database_url, clock=clock)
    yield catalogue
    catalogue.close()


def add(catalogue, title_id="t1", data=b"image-1", **kwargs):
    return catalogue.add_variant(title_id, data=data, media_type="image/jpeg",
                                 features=FEATURES, **kwargs)


def test_titles_round_trip(catalogue, clock) -> None:
    title = catalogue.create_title("t1", name="One", genres=["Drama", "drama", "Sci-Fi"],
                                   metadata={"year": 2020})
    assert title.genres == ("drama", "sci-fi") and title.created_at == clock.now
    assert catalogue.title("t1") == title
    assert catalogue.update_title("t1", genres=["comedy"]).genres == ("comedy",)
    assert catalogue.title("t1").name == "One"
    with pytest.raises(CatalogueConflictError):
        catalogue.create_title("t1")
    catalogue.create_title("a0")
    assert [t.id for t in catalogue.titles()] == ["a0", "t1"]


@pytest.mark.parametrize("title_id", ["", "../x", "a/b", "a..b", ".hidden", "x" * 129, 5, None])
def test_title_ids_cannot_traverse(catalogue, title_id) -> None:
    with pytest.raises(InvalidInputError, match="title id"):
        catalogue.create_title(title_id)


@pytest.mark.parametrize("kwargs, match", [
    ({"genres": "drama"}, "genres"),
    ({"genres": ["two words"]}, "genres"),
    ({"metadata": {"x": float("nan")}}, "metadata"),
    ({"metadata": {"x": "y" * 20_000}}, "metadata"),
    ({"name": " "}, "name"),
])
def test_title_fields_are_validated(catalogue, kwargs, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        catalogue.create_title("t1", **kwargs)


def test_variants_store_bytes_by_hash(catalogue, tmp_path) -> None:
    catalogue.create_title("t1")
    variant = add(catalogue, data=b"poster bytes", filename="a.jpg",
                  warnings=[{"code": "blurry", "message": "Blurry."}], details={"width": 2})
    digest = hashlib.sha256(b"poster bytes").hexdigest()
    assert variant.content_hash == digest and variant.active and variant.source == "upload"
    assert variant.features == FEATURES and variant.warnings[0]["code"] == "blurry"
    path, media_type = catalogue.image(digest)
    assert path == tmp_path / "images" / digest[:2] / digest
    assert path.read_bytes() == b"poster bytes" and media_type == "image/jpeg"
    with pytest.raises(CatalogueConflictError, match=variant.id):
        add(catalogue, data=b"poster bytes")
    # The same image may belong to another title; the file is shared, then kept
    # until its last user goes.
    catalogue.create_title("t2")
    other = add(catalogue, "t2", data=b"poster bytes")
    catalogue.delete_variant("t1", variant.id)
    assert path.exists()
    catalogue.delete_variant("t2", other.id)
    assert not path.exists()
    with pytest.raises(UnknownItemError):
        catalogue.image(digest)


def test_bad_variant_input_leaves_nothing_behind(catalogue, tmp_path) -> None:
    catalogue.create_title("t1")
    with pytest.raises(InvalidInputError):
        catalogue.add_variant("t1", data=b"x", media_type="image/jpeg",
                              features={"Color": {"x": float("inf")}})
    with pytest.raises(InvalidInputError, match="filename"):
        add(catalogue, filename="../../etc/passwd")
    with pytest.raises(InvalidInputError, match="media_type"):
        catalogue.add_variant("t1", data=b"x", media_type="text/html", features={})
    with pytest.raises(UnknownItemError, match="unknown title 'nope'"):
        add(catalogue, "nope")
    with pytest.raises(InvalidInputError, match="near_duplicates"):
        add(catalogue, near_duplicates=["v000000000000"])
    with pytest.raises(InvalidInputError, match=r"suggested_tags\[0\]: unknown visual tag"):
        add(catalogue, suggested_tags=["sparkly"])
    assert catalogue.variants("t1") == []
    assert not any(p.is_file() for p in (tmp_path / "images").rglob("*"))


def test_near_duplicates_link_both_ways(catalogue) -> None:
    catalogue.create_title("t1")
    first = add(catalogue, data=b"1")
    second = add(catalogue, data=b"2", near_duplicates=[first.id])
    assert second.near_duplicates == (first.id,)
    assert catalogue.variant("t1", first.id).near_duplicates == (second.id,)
    catalogue.delete_variant("t1", second.id)
    assert catalogue.variant("t1", first.id).near_duplicates == ()


def test_active_variants_feed_ranking(catalogue) -> None:
    catalogue.create_title("t1", genres=["drama", "horror"])
    catalogue.create_title("t2")
    first = add(catalogue, data=b"1")
    second = add(catalogue, data=b"2")
    ranked = catalogue.active_variants(["t1", "t2"])
    assert [v.id for v in ranked["t1"]] == [first.id, second.id]  # oldest first: baseline
    assert ranked["t2"] == []
    features = ranked["t1"][1].features
    assert features["Color"] == FEATURES["Color"]
    assert features["Genre"] == {"drama": True, "horror": True}
    assert features["Variant"] == {"id": second.id}
    assert "Depicts" not in features  # no tags, no namespace
    catalogue.update_variant("t1", first.id, active=False)
    assert [v.id for v in catalogue.active_variants(["t1"])["t1"]] == [second.id]
    with pytest.raises(UnknownItemError, match="nope"):
        catalogue.active_variants(["t1", "nope"])


def test_the_ranking_cache_sees_other_processes_writes(tmp_path, clock, database_url) -> None:
    # Two Catalogue objects stand for two server processes (of two hosts with
    # PostgreSQL: each with its own data directory).
    ranker = Catalogue.open(tmp_path / "ranker", database_url=database_url, clock=clock)
    marketer = Catalogue.open(tmp_path / ("marketer" if database_url else "ranker"),
                              database_url=database_url, clock=clock)
    ranker.refresh_seconds = 0.0  # the staleness bound is the next test's
    try:
        marketer.create_title("t1")
        variant = add(marketer, data=b"1")
        assert [v.id for v in ranker.active_variants(["t1"])["t1"]] == [variant.id]
        marketer.update_variant("t1", variant.id, active=False)
        assert ranker.active_variants(["t1"])["t1"] == []
        marketer.update_title("t1", genres=["comedy"])
        marketer.update_variant("t1", variant.id, active=True, tags={"themes": ["comedy"]})
        features = ranker.active_variants(["t1"])["t1"][0].features
        assert features["Genre"] == {"comedy": True}
        assert features["Depicts"] == {"theme=comedy": 1.0}
        # The ranker's host never saw the upload: it serves the image all the same.
        path, media_type = ranker.image(variant.content_hash)
        assert path.read_bytes() == b"1" and media_type == "image/jpeg"
    finally:
        ranker.close()
        marketer.close()


@pytest.mark.slow  # PostgreSQL
def test_a_shared_catalogue_trusts_its_cache_for_refresh_seconds(tmp_path, clock,
                                                                 postgres_url) -> None:
    ranker = Catalogue.open(tmp_path / "a", database_url=postgres_url, clock=clock)
    marketer = Catalogue.open(tmp_path / "b", database_url=postgres_url, clock=clock)
    try:
        assert ranker.refresh_seconds == SHARED_REFRESH_SECONDS > 0
        marketer.create_title("t1")
        assert ranker.active_variants(["t1"])["t1"] == []
        ranker.refresh_seconds = 3600.0  # the generation just read stays trusted
        variant = add(marketer, data=b"1")
        assert ranker.active_variants(["t1"])["t1"] == []
        ranker.refresh_seconds = 0.0  # its refresh is due: the other host's write shows
        assert [v.id for v in ranker.active_variants(["t1"])["t1"]] == [variant.id]
        ranker.refresh_seconds = 3600.0  # its own writes show at once
        ranker.update_variant("t1", variant.id, active=False)
        assert ranker.active_variants(["t1"])["t1"] == []
    finally:
        ranker.close()
        marketer.close()


@pytest.mark.slow  # PostgreSQL
def test_a_shared_catalogue_ranks_from_its_cache_while_the_database_is_unreachable(
        tmp_path, clock, postgres_url) -> None:
    import psycopg

    ranker = Catalogue.open(tmp_path, database_url=postgres_url, clock=clock)
    database = psycopg.conninfo.conninfo_to_dict(postgres_url)["dbname"]
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    try:
        ranker.create_title("t1")
        variant = add(ranker, data=b"1")
        ranker.refresh_seconds = 0.0  # every rank reads the generation again
        assert [v.id for v in ranker.active_variants(["t1"])["t1"]] == [variant.id]
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (database,))
            try:
                with pytest.raises(ranker.database.unreachable_errors):
                    ranker.generation()  # the database is out of reach indeed
                assert [v.id for v in ranker.active_variants(["t1"])["t1"]] == [variant.id]
                with pytest.raises(ranker.database.unreachable_errors):
                    ranker.active_variants(["t2"])  # what was never cached cannot be read
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        other = add(ranker, data=b"2")  # back: writes and reads reach it again
        assert {v.id for v in ranker.active_variants(["t1"])["t1"]} == {variant.id, other.id}
    finally:
        ranker.close()


def test_candidates_are_approved_or_discarded(catalogue, tmp_path) -> None:
    catalogue.create_title("t1")
    kept = catalogue.add_candidate("t1", data=b"frame-1", media_type="image/jpeg",
                                   features=FEATURES, details={"timestamp": 1.5},
                                   filename="trailer-1.50s.jpg")
    dropped = catalogue.add_candidate("t1", data=b"frame-2", media_type="image/jpeg",
                                      features=FEATURES)
    assert [c.id for c in catalogue.candidates("t1")] == [kept.id, dropped.id]
    variant = catalogue.approve_candidate("t1", kept.id)
    assert variant.source == "trailer" and variant.details == {"timestamp": 1.5}
    assert variant.content_hash == kept.content_hash
    catalogue.delete_candidate("t1", dropped.id)
    assert catalogue.candidates("t1") == []
    assert not catalogue.image_path(dropped.content_hash).exists()
    assert catalogue.image_path(kept.content_hash).exists()
    with pytest.raises(UnknownItemError):
        catalogue.approve_candidate("t1", kept.id)


def test_deleting_a_title_removes_everything(catalogue) -> None:
    catalogue.create_title("t1")
    variant = add(catalogue, data=b"1")
    candidate = catalogue.add_candidate("t1", data=b"2", media_type="image/png", features={})
    catalogue.delete_title("t1")
    with pytest.raises(UnknownItemError):
        catalogue.title("t1")
    assert not catalogue.image_path(variant.content_hash).exists()
    assert not catalogue.image_path(candidate.content_hash).exists()
    assert catalogue.variant_counts() == {}


def test_labels_default_to_the_file_name_and_tags_start_empty(catalogue) -> None:
    catalogue.create_title("t1")
    named = add(catalogue, data=b"1", filename="kiss.jpg")
    unnamed = add(catalogue, data=b"2")
    assert named.label == "kiss.jpg" and unnamed.label == unnamed.id
    assert named.tags == Tags() and named.revision == 1
    assert catalogue.themes() == DEFAULT_THEMES


def test_tags_and_labels_are_revisions_of_the_variant(catalogue, clock) -> None:
    catalogue.create_title("t1")
    variant = add(catalogue, data=b"1", filename="kiss.jpg", suggested_tags=["warm", "closeup"])
    assert variant.suggested_tags == ("warm", "closeup")
    clock.advance(10)
    changed = catalogue.update_variant(
        "t1", variant.id, label="  The kiss ", revision=1,
        tags={"themes": ["Romance", "drama", "romance"], "cast": ["Jim  Hopper"],
              "visual": ["warm"]})
    assert changed.label == "The kiss" and changed.revision == 2
    assert changed.tags == Tags(themes=("romance", "drama"), cast=("Jim Hopper",),
                                visual=("warm",))
    assert changed.suggested_tags == ("closeup",)  # confirmed: no longer pending
    # Fields not named are kept; dismissing a suggestion is a revision too.
    later = catalogue.update_variant("t1", variant.id, tags={"tone": ["tender"]},
                                     suggested_tags=[])
    assert later.tags.themes == ("romance", "drama") and later.tags.tone == ("tender",)
    assert later.suggested_tags == () and later.revision == 3
    # A change that changes nothing makes no revision.
    assert catalogue.update_variant("t1", variant.id, label="The kiss").revision == 3
    history = catalogue.variant_revisions("t1", variant.id)
    assert [(r.revision, r.label) for r in history] == [
        (1, "kiss.jpg"), (2, "The kiss"), (3, "The kiss")]
    assert history[0].tags == Tags() and history[1].changed_at == clock.now
    features = catalogue.active_variants(["t1"])["t1"][0].features
    assert features["Depicts"] == {"theme=romance": 1.0, "theme=drama": 1.0,
                                   "tone=tender": 1.0, "cast=jim_hopper": 1.0,
                                   "visual=warm": 1.0}
    with pytest.raises(CatalogueConflictError, match="revision 3, not 2"):
        catalogue.update_variant("t1", variant.id, label="x", revision=2)


@pytest.mark.parametrize("changes, match", [
    ({"tags": {"themes": ["heist"]}}, r"unknown theme 'heist'; the theme vocabulary is \["),
    ({"tags": {"visual": ["sparkly"]}}, "unknown visual tag 'sparkly'"),
    ({"tags": {"mood": ["x"]}}, "tags has no field 'mood'"),
    ({"tags": {"tone": "dark"}}, "tags.tone must be a list"),
    ({"tags": {"cast": ["  "]}}, r"tags.cast\[0\] must be a non-blank"),
    ({"tags": {"setting": ["x"] * 17}}, "at most 16"),
    ({"label": ""}, "label"),
    ({"label": "x" * 129}, "label"),
    ({"suggested_tags": ["dark"]}, "pending suggestions"),
    ({"active": 1}, "active"),
])
def test_bad_tags_are_refused_naming_the_problem(catalogue, changes, match) -> None:
    catalogue.create_title("t1")
    variant = add(catalogue)
    with pytest.raises(InvalidInputError, match=match):
        catalogue.update_variant("t1", variant.id, **changes)
    assert catalogue.variant("t1", variant.id) == variant


def test_the_theme_vocabulary_grows(catalogue) -> None:
    catalogue.create_title("t1")
    variant = add(catalogue)
    assert catalogue.add_themes(["Heist", "heist", "romance"])[-1] == "heist"
    assert catalogue.themes().count("romance") == 1
    assert catalogue.update_variant("t1", variant.id,
                                    tags={"themes": ["heist"]}).tags.themes == ("heist",)
    for bad in ([], ["two words"], "heist", ["x" * 33]):
        with pytest.raises(InvalidInputError, match="themes"):
            catalogue.add_themes(bad)


def test_a_catalogue_of_before_labels_is_migrated(tmp_path, clock) -> None:
    # The variants table as banditkit wrote it before labels, tags and revisions.
    db = sqlite3.connect(tmp_path / "catalogue.sqlite3")
    db.executescript("""
        CREATE TABLE titles (title_id TEXT PRIMARY KEY, name TEXT NOT NULL,
            genres TEXT NOT NULL, metadata TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE images (content_hash TEXT PRIMARY KEY, media_type TEXT NOT NULL,
            size INTEGER NOT NULL);
        CREATE TABLE variants (variant_id TEXT PRIMARY KEY, title_id TEXT NOT NULL
            REFERENCES titles (title_id) ON DELETE CASCADE, content_hash TEXT NOT NULL
            REFERENCES images (content_hash), features TEXT NOT NULL, warnings TEXT NOT NULL,
            details TEXT NOT NULL, fingerprint BLOB, active INTEGER NOT NULL,
            source TEXT NOT NULL, filename TEXT NOT NULL, created_at REAL NOT NULL,
            UNIQUE (title_id, content_hash));
    """)
    digest = hashlib.sha256(b"old").hexdigest()
    db.execute("INSERT INTO titles VALUES ('t1', 'One', '[]', '{}', 5.0)")
    db.execute("INSERT INTO images VALUES (?, 'image/png', 3)", (digest,))
    db.executemany("INSERT INTO variants VALUES (?,?,?,?,?,?,?,?,?,?,?)", [
        ("v000000000001", "t1", digest, json.dumps(FEATURES), "[]", "{}", None, 1, "upload",
         "old.png", 7.0)])
    db.commit()
    db.close()
    catalogue = Catalogue.open(tmp_path, clock=clock)
    try:
        old = catalogue.variant("t1", "v000000000001")
        assert (old.label, old.tags, old.revision, old.suggested_tags) == (
            "old.png", Tags(), 1, ())
        assert [r.changed_at for r in catalogue.variant_revisions("t1", old.id)] == [7.0]
        assert catalogue.themes() == DEFAULT_THEMES
        assert catalogue.update_variant("t1", old.id, tags={"themes": ["horror"]}).revision == 2
    finally:
        catalogue.close()
    # Opening it again changes nothing.
    again = Catalogue.open(tmp_path, clock=clock)
    try:
        assert again.variant("t1", "v000000000001").revision == 2
        assert len(again.variant_revisions("t1", "v000000000001")) == 2
    finally:
        again.close()
