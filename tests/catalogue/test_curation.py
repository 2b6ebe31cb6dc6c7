"""The curation steps without HTTP: posters, trailers and approvals into a catalogue."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

import artwork
from catalogue import Catalogue, Curator, UnknownItemError, VariantLimitError, suggest_visual_tags
from tests.server.test_catalogue_helpers import poster, resized_copy, trailer


@pytest.fixture(scope="module")
def detectors() -> artwork.Detectors:
    return artwork.load_detectors()


@pytest.fixture
def store(tmp_path: Path, clock) -> Catalogue:
    catalogue = Catalogue.open(tmp_path, clock=clock)
    catalogue.create_title("dune", genres=["scifi"])
    yield catalogue
    catalogue.close()


def test_a_poster_becomes_an_active_variant_with_rounded_features(store, detectors) -> None:
    curator = Curator(catalogue=store, detectors=detectors)
    variant = curator.add_poster("dune", data=poster(1), filename="one.jpg")
    assert variant.active and variant.source == "upload"
    assert variant.media_type == "image/jpeg" and variant.filename == "one.jpg"
    assert variant.fingerprint is not None
    floats = [value for values in variant.features.values() for value in values.values()
              if isinstance(value, float)]
    assert floats and all(value == round(value, 4) for value in floats)


def test_a_resized_copy_is_linked_as_a_near_duplicate(store, detectors) -> None:
    curator = Curator(catalogue=store, detectors=lambda: detectors)
    first = curator.add_poster("dune", data=poster(1))
    other = curator.add_poster("dune", data=poster(2))
    copy = curator.add_poster("dune", data=resized_copy(1))
    assert copy.near_duplicates == (first.id,)
    assert other.near_duplicates == ()


def test_a_full_title_raises_variant_limit_error(store, detectors) -> None:
    curator = Curator(catalogue=store, detectors=detectors, max_variants=1)
    curator.add_poster("dune", data=poster(1))
    with pytest.raises(VariantLimitError) as info:
        curator.check_room("dune")
    assert (info.value.title_id, info.value.limit) == ("dune", 1)
    with pytest.raises(VariantLimitError):
        curator.add_poster("dune", data=poster(2))


def test_a_bad_file_raises_artwork_input_error_and_stores_nothing(store, detectors) -> None:
    curator = Curator(catalogue=store, detectors=detectors)
    with pytest.raises(artwork.ArtworkInputError):
        curator.add_poster("dune", data=b"<html></html>")
    assert store.variants("dune") == []
    with pytest.raises(UnknownItemError):
        curator.add_poster("nope", data=poster(1))


def test_a_still_image_is_not_a_trailer(store, detectors, tmp_path: Path) -> None:
    curator = Curator(catalogue=store, detectors=detectors, scratch_dir=tmp_path / "scratch")
    with pytest.raises(artwork.ArtworkInputError):
        curator.mine_trailer("dune", data=poster(1), filename="still.jpg")
    assert list((tmp_path / "scratch").iterdir()) == []


def test_trailer_frames_become_candidates_and_approval_makes_variants(
        store, detectors, tmp_path: Path) -> None:
    curator = Curator(catalogue=store, detectors=detectors, trailer_frames=2)
    data = trailer(tmp_path / "t.avi").read_bytes()
    result = curator.mine_trailer("dune", data=data, filename="t.avi")
    assert result.frames > 1 and 1 <= len(result.candidates) <= 2
    assert [c.id for c in store.candidates("dune")] == [c.id for c in result.candidates]
    assert all(c.filename.startswith("t-") for c in result.candidates)
    variant = curator.approve_candidate("dune", result.candidates[0].id)
    assert variant.active and variant.source == "trailer"
    assert variant.label == result.candidates[0].filename and variant.revision == 1
    assert list(variant.suggested_tags) == suggest_visual_tags(result.candidates[0].features)
    assert store.candidates("dune") == result.candidates[1:]


def _plain_jpeg(rgb: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 600), rgb).save(out, format="JPEG", quality=95)
    return out.getvalue()


@pytest.mark.parametrize("rgb, expected", [
    # A night-blue plain poster: luma about 0.1, blue over red by 0.35 of the range.
    ((10, 20, 100), ["no-people", "dark", "cool", "minimal"]),
    # A pale orange one: luma about 0.8, red over blue by 0.55 of the range.
    ((250, 200, 110), ["no-people", "bright", "warm", "minimal"]),
])
def test_an_upload_suggests_the_visual_tags_its_analysis_shows(store, detectors, rgb,
                                                               expected) -> None:
    variant = Curator(catalogue=store, detectors=detectors).add_poster(
        "dune", data=_plain_jpeg(rgb), filename="plain.jpg")
    assert list(variant.suggested_tags) == expected
    assert variant.tags.visual == ()  # suggested, not confirmed


def test_visual_tags_follow_the_namespaces() -> None:
    busy = {"Face": {"count": 1.0, "closeup": "yes"}, "People": {"count": 4.0},
            "Color": {"brightness": 0.5, "warmth": 0.5},
            "Text": {"share": 0.2, "lines": 0.1},
            "Layout": {"negative_space": 0.2, "edge_density": 0.2}}
    assert suggest_visual_tags(busy) == ["closeup", "group", "text-heavy"]
    assert suggest_visual_tags({}) == []  # nothing measured, nothing suggested


def test_ranked_namespaces_have_distinct_first_letters(store, detectors) -> None:
    # VW's -q pairs namespaces by first letter: every namespace of a ranked
    # variant, and the members' Member and Taste, must start with its own.
    variant = Curator(catalogue=store, detectors=detectors).add_poster("dune", data=poster(3))
    assert "Text" in variant.features  # artwork's name, kept in the catalogue
    store.update_variant("dune", variant.id, tags={"themes": ["scifi"], "tone": ["bleak"]})
    ranked = store.active_variants(["dune"])["dune"][0].features
    assert {"Words", "Genre", "Depicts", "Variant"} <= set(ranked) and "Text" not in ranked
    assert ranked["Words"] == variant.features["Text"]
    letters = [name[0] for name in [*ranked, "Member", "Taste"]]
    assert len(letters) == len(set(letters)), sorted(letters)
