"""The catalogue store: titles, variants, duplicates, candidates, images, the ranking cache."""

from __future__ import annotations

import hashlib

import pytest

from banditkit.errors import InvalidInputError
from catalogue import Catalogue, CatalogueConflictError, UnknownItemError

FEATURES = {"Color": {"brightness": 0.4, "palette": "warm"}, "Face": {"count": 1}}


@pytest.fixture
def catalogue(tmp_path, clock):
    catalogue = Catalogue.open(tmp_path, clock=clock)
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
    assert features["Id"] == {"variant": second.id}
    catalogue.set_active("t1", first.id, False)
    assert [v.id for v in catalogue.active_variants(["t1"])["t1"]] == [second.id]
    with pytest.raises(UnknownItemError, match="nope"):
        catalogue.active_variants(["t1", "nope"])


def test_the_ranking_cache_sees_other_processes_writes(tmp_path, clock) -> None:
    # Two Catalogue objects on one data dir stand for two server processes.
    ranker, marketer = Catalogue.open(tmp_path, clock=clock), Catalogue.open(tmp_path, clock=clock)
    try:
        marketer.create_title("t1")
        variant = add(marketer, data=b"1")
        assert [v.id for v in ranker.active_variants(["t1"])["t1"]] == [variant.id]
        marketer.set_active("t1", variant.id, False)
        assert ranker.active_variants(["t1"])["t1"] == []
        marketer.update_title("t1", genres=["comedy"])
        marketer.set_active("t1", variant.id, True)
        assert ranker.active_variants(["t1"])["t1"][0].features["Genre"] == {"comedy": True}
    finally:
        ranker.close()
        marketer.close()


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
