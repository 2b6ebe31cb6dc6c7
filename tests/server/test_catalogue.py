"""The catalogue API through the Flask test client: titles, uploads, images, trailers, roles."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import json
import re
import time

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main as cli_main
from server import close_app, create_app
from serving.runtime import get_engine
from tests.server.conftest import FAST_SETTINGS, auth
from tests.server.test_catalogue_helpers import encode, poster, poster_array, resized_copy, trailer

MAX_UPLOAD = 300_000


@pytest.fixture
def app(data_dir, keys):
    app = create_app({
        "TESTING": True,
        "ENGINE_DATA_DIR": str(data_dir),
        "ENGINE_SETTINGS": FAST_SETTINGS,
        "LEARNER_ENABLED": False,
        "SERVER_MAX_BODY_BYTES": 64 * 1024,
        "CATALOGUE_MAX_UPLOAD_BYTES": MAX_UPLOAD,
        "CATALOGUE_MAX_TRAILER_BYTES": 2_000_000,
        "CATALOGUE_MAX_PIXELS": 1000 * 1000,
        "CATALOGUE_TRAILER_FRAMES": 3,
        "CATALOGUE_MAX_VARIANTS": 4,
    })
    yield app
    close_app(app)


@pytest.fixture
def m(keys):
    return auth(keys["marketer"])


def create(client, m, title_id="stranger-things", **fields):
    response = client.post("/v1/catalogue/titles", json={"id": title_id, **fields}, headers=m)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def upload(client, m, data, name="poster.jpg", title_id="stranger-things"):
    return client.post(f"/v1/catalogue/titles/{title_id}/variants",
                       data={"file": (io.BytesIO(data), name)}, headers=m,
                       content_type="multipart/form-data")


def error_of(response):
    body = response.get_json()
    assert response.is_json and "error" in body, response.data[:200]
    return body["error"]


# --------------------------------------------------------------------------- titles


def test_title_lifecycle(client, m) -> None:
    created = create(client, m, name="Stranger Things", genres=["Horror", "drama", "horror"],
                     metadata={"year": 2016})
    assert created["genres"] == ["horror", "drama"]  # lower-cased, deduplicated
    assert created["metadata"] == {"year": 2016}
    assert created["variantCount"] == 0
    listed = client.get("/v1/catalogue/titles", headers=m).get_json()["titles"]
    assert [t["id"] for t in listed] == ["stranger-things"]
    patched = client.patch("/v1/catalogue/titles/stranger-things",
                           json={"genres": ["sci-fi"]}, headers=m).get_json()
    assert patched["genres"] == ["sci-fi"] and patched["name"] == "Stranger Things"
    assert client.post("/v1/catalogue/titles", json={"id": "stranger-things"},
                       headers=m).status_code == 409
    assert client.delete("/v1/catalogue/titles/stranger-things", headers=m).status_code == 204
    response = client.get("/v1/catalogue/titles/stranger-things", headers=m)
    assert response.status_code == 404
    assert "unknown title 'stranger-things'" in error_of(response)["message"]


@pytest.mark.parametrize("body, target", [
    ({}, "id"),
    ({"id": 7}, "id"),
    ({"id": "../etc"}, "titleId"),
    ({"id": "a/b"}, "titleId"),
    ({"id": "a..b"}, "titleId"),
    ({"id": "ok", "genres": "drama"}, "genres"),
    ({"id": "ok", "genres": ["has space"]}, None),
    ({"id": "ok", "metadata": [1]}, "metadata"),
    ({"id": "ok", "colour": "red"}, "colour"),
    ({"id": "ok", "name": ""}, None),
])
def test_bad_titles_are_400_naming_the_field(client, m, body, target) -> None:
    response = client.post("/v1/catalogue/titles", json=body, headers=m)
    assert response.status_code == 400
    error = error_of(response)
    if target is not None:
        assert error.get("target") == target, error
    assert error["message"]


def test_title_json_body_problems(client, m) -> None:
    assert client.post("/v1/catalogue/titles", data="{", headers={
        **m, "Content-Type": "application/json"}).status_code == 400
    assert client.post("/v1/catalogue/titles", data="x", headers={
        **m, "Content-Type": "text/plain"}).status_code == 415
    big = {"id": "big", "metadata": {"blob": "x" * 70_000}}
    assert client.post("/v1/catalogue/titles", json=big, headers=m).status_code == 413


# --------------------------------------------------------------------------- uploads


def test_upload_analyses_stores_by_hash_and_serves_the_image(client, m, data_dir) -> None:
    create(client, m, genres=["drama"])
    data = poster(1)
    response = upload(client, m, data, name="key art.jpg")
    assert response.status_code == 201, response.get_json()
    variant = response.get_json()
    digest = hashlib.sha256(data).hexdigest()
    assert variant["contentHash"] == digest
    assert variant["imageUrl"] == f"/v1/artwork/images/{digest}.jpg"
    assert variant["mediaType"] == "image/jpeg" and variant["active"] is True
    assert variant["filename"] == "key art.jpg" and variant["source"] == "upload"
    # Features are artwork's namespaces; warnings come from its analysis.
    assert {"Color", "Quality", "Layout", "Face"} <= set(variant["features"])
    assert 0 <= variant["features"]["Color"]["brightness"] <= 1
    floats = [v for ns in variant["features"].values() for v in ns.values()
              if isinstance(v, float)]
    assert floats and all(v == round(v, 4) for v in floats)  # rounded for a lean log
    assert "no_face" in {w["code"] for w in variant["warnings"]}
    assert variant["details"]["width"] == 400 and variant["details"]["height"] == 600
    # The bytes are on disk under their hash and served back unchanged.
    assert (data_dir / "images" / digest[:2] / digest).read_bytes() == data
    image = client.get(variant["imageUrl"])
    assert image.status_code == 200 and image.data == data
    assert image.headers["Content-Type"] == "image/jpeg"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert "immutable" in image.headers["Cache-Control"]
    assert client.get(variant["imageUrl"], headers={"If-None-Match": f'"{digest}"'}
                      ).status_code == 304


def test_png_and_wrong_aspect(client, m) -> None:
    create(client, m)
    wide = upload(client, m, poster(2, fmt="PNG", size=(600, 400)), name="wide.png")
    assert wide.status_code == 201
    body = wide.get_json()
    assert body["imageUrl"].endswith(".png") and body["mediaType"] == "image/png"
    assert "wrong_aspect" in {w["code"] for w in body["warnings"]}
    assert client.get(body["imageUrl"]).headers["Content-Type"] == "image/png"


def test_near_duplicates_are_flagged_both_ways(client, m) -> None:
    create(client, m)
    first = upload(client, m, poster(3)).get_json()
    other = upload(client, m, poster(4), name="other.jpg").get_json()
    copy = upload(client, m, resized_copy(3), name="copy.png").get_json()
    assert other["nearDuplicates"] == []
    assert copy["nearDuplicates"] == [first["id"]]
    assert any(w["code"] == "near_duplicate" and first["id"] in w["message"]
               for w in copy["warnings"])
    variants = {v["id"]: v for v in client.get(
        "/v1/catalogue/titles/stranger-things/variants", headers=m).get_json()["variants"]}
    assert variants[first["id"]]["nearDuplicates"] == [copy["id"]]
    assert variants[other["id"]]["nearDuplicates"] == []
    # Deleting the copy removes the link.
    assert client.delete(f"/v1/catalogue/titles/stranger-things/variants/{copy['id']}",
                         headers=m).status_code == 204
    again = client.get(f"/v1/catalogue/titles/stranger-things/variants/{first['id']}",
                       headers=m).get_json()
    assert again["nearDuplicates"] == []


def test_the_same_bytes_twice_is_409(client, m) -> None:
    create(client, m)
    first = upload(client, m, poster(5)).get_json()
    response = upload(client, m, poster(5), name="again.jpg")
    assert response.status_code == 409
    assert first["id"] in error_of(response)["message"]


def test_deactivate_reactivate_delete(client, m, data_dir) -> None:
    create(client, m)
    variant = upload(client, m, poster(6)).get_json()
    url = f"/v1/catalogue/titles/stranger-things/variants/{variant['id']}"
    assert client.patch(url, json={"active": False}, headers=m).get_json()["active"] is False
    title = client.get("/v1/catalogue/titles", headers=m).get_json()["titles"][0]
    assert (title["variantCount"], title["activeVariantCount"]) == (1, 0)
    assert client.patch(url, json={"active": True}, headers=m).get_json()["active"] is True
    for bad in ({"active": "no"}, {"active": True, "id": "x"}, {"label": None, "x": 1}):
        assert client.patch(url, json=bad, headers=m).status_code == 400
    assert client.delete(url, headers=m).status_code == 204
    assert client.get(url, headers=m).status_code == 404
    # The image went with its only variant.
    digest = variant["contentHash"]
    assert not (data_dir / "images" / digest[:2] / digest).exists()
    assert client.get(variant["imageUrl"]).status_code == 404


def test_variant_limit(client, m) -> None:
    create(client, m)
    for seed in range(4):
        assert upload(client, m, poster(20 + seed), name=f"{seed}.jpg").status_code == 201
    response = upload(client, m, poster(30))
    assert response.status_code == 409
    assert "CATALOGUE_MAX_VARIANTS" in error_of(response)["message"]


def _truncated() -> bytes:
    data = poster(7)
    return data[: len(data) // 2]


@pytest.mark.parametrize("data, code, status", [
    (b"", "empty", 400),
    (_truncated(), "truncated", 400),
    (b"\x00\x01not an image at all" * 10, "not_an_image", 400),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "svg", 400),
    (b"<!DOCTYPE html><html><body>404</body></html>", "html", 400),
    (b"<?xml version='1.0'?><note>hi</note>", "not_an_image", 400),
    (encode(poster_array(8)[:20, :20]), "too_small", 400),
    (poster(9, size=(1200, 1800)), "too_large", 413),  # over CATALOGUE_MAX_PIXELS
], ids=["empty", "truncated", "binary", "svg", "html", "xml", "too_small", "too_large"])
def test_files_artwork_rejects_are_4xx_naming_the_problem(client, m, data, code, status) -> None:
    create(client, m)
    response = upload(client, m, data, name="bad.jpg")
    assert response.status_code == status, response.get_json()
    error = error_of(response)
    assert error["code"] == code and error["target"] == "file"
    assert error["message"]
    assert client.get("/v1/catalogue/titles/stranger-things/variants",
                      headers=m).get_json()["variants"] == []


def test_unsupported_image_format_is_400(client, m) -> None:
    create(client, m)
    ico = io.BytesIO()
    from PIL import Image

    Image.fromarray(poster_array(10, size=(64, 64))).save(ico, format="ICO")
    response = upload(client, m, ico.getvalue(), name="icon.ico")
    assert response.status_code == 400 and error_of(response)["code"] == "not_an_image"


def test_oversized_upload_is_413_naming_the_limit(client, m) -> None:
    create(client, m)
    response = upload(client, m, b"\xff\xd8" + b"0" * (MAX_UPLOAD + 10))
    assert response.status_code == 413
    assert "CATALOGUE_MAX_UPLOAD_BYTES" in error_of(response)["message"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "..\\..\\boot.ini", "a/b.jpg", ".."])
def test_path_traversal_in_the_file_name_is_400(client, m, name, data_dir) -> None:
    create(client, m)
    response = upload(client, m, poster(11), name=name)
    if response.status_code == 201:
        # Werkzeug 3.1.9 drops the backslashes of a Windows path before we see
        # it ("....boot.ini"): what is stored must then carry no path at all.
        stored = response.get_json()["filename"]
        assert "\\" in name and stored != name
        assert "/" not in stored and "\\" not in stored and stored not in (".", "..")
        return
    assert response.status_code == 400
    assert error_of(response)["target"] == "file.filename"


def test_upload_without_a_file_part_or_multipart(client, m) -> None:
    create(client, m)
    url = "/v1/catalogue/titles/stranger-things/variants"
    response = client.post(url, data={"other": "x"}, headers=m,
                           content_type="multipart/form-data")
    assert response.status_code == 400 and error_of(response)["target"] == "file"
    response = client.post(url, data=poster(12), headers={**m, "Content-Type": "image/jpeg"})
    assert response.status_code == 415


def test_unknown_title_and_bad_ids(client, m) -> None:
    response = upload(client, m, poster(13), title_id="no-such-title")
    assert response.status_code == 404
    assert "no-such-title" in error_of(response)["message"]
    assert client.get("/v1/catalogue/titles/..", headers=m).status_code in (400, 404)
    assert client.get("/v1/catalogue/titles/%2e%2e%2fx", headers=m).status_code in (400, 404)
    assert client.get("/v1/catalogue/titles/a..b", headers=m).status_code == 400
    create(client, m)
    assert client.get("/v1/catalogue/titles/stranger-things/variants/v000000000000",
                      headers=m).status_code == 404
    assert client.get("/v1/catalogue/titles/stranger-things/variants/..%2f..",
                      headers=m).status_code == 404


@pytest.mark.parametrize("name", [
    "../catalogue.sqlite3", "..%2Fcatalogue.sqlite3", "0" * 64, "0" * 64 + ".jpg",
    "%2e%2e%2f%2e%2e%2fserver.py", "abc.jpg",
])
def test_image_route_refuses_traversal_and_unknown_names(client, name) -> None:
    response = client.get(f"/v1/artwork/images/{name}")
    assert response.status_code == 404
    assert response.is_json


def test_image_extension_must_match_the_stored_type(client, m) -> None:
    create(client, m)
    variant = upload(client, m, poster(14)).get_json()
    assert client.get(variant["imageUrl"].replace(".jpg", ".png")).status_code == 404


# --------------------------------------------------------------------------- trailers


def test_trailer_frames_become_candidates_then_variants(client, m, tmp_path) -> None:
    create(client, m)
    existing = upload(client, m, poster(40)).get_json()
    video = trailer(tmp_path / "trailer.avi").read_bytes()
    response = client.post("/v1/catalogue/titles/stranger-things/trailers",
                           data={"file": (io.BytesIO(video), "trailer.avi")}, headers=m,
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    mined = response.get_json()
    assert mined["shots"] == 3 and mined["frames"] == 3 * 40
    candidates = mined["candidates"]
    assert 1 <= len(candidates) <= 3
    first = candidates[0]
    assert first["features"]["Img"] and first["details"]["trailer"] == "trailer.avi"
    assert 0 <= first["details"]["timestamp"] <= 4.8 and first["filename"].endswith(".jpg")
    assert client.get(first["imageUrl"]).headers["Content-Type"] == "image/jpeg"
    listed = client.get("/v1/catalogue/titles/stranger-things/candidates",
                        headers=m).get_json()["candidates"]
    assert [c["id"] for c in listed] == [c["id"] for c in candidates]

    approved = client.post(
        f"/v1/catalogue/titles/stranger-things/candidates/{first['id']}/approve", headers=m)
    assert approved.status_code == 201
    variant = approved.get_json()
    assert variant["source"] == "trailer" and variant["active"] is True
    assert variant["contentHash"] == first["contentHash"]
    assert existing["id"] not in variant["nearDuplicates"]  # a different picture
    if len(candidates) > 1:
        second = candidates[1]["id"]
        assert client.delete(f"/v1/catalogue/titles/stranger-things/candidates/{second}",
                             headers=m).status_code == 204
    remaining = client.get("/v1/catalogue/titles/stranger-things", headers=m).get_json()
    assert first["id"] not in {c["id"] for c in remaining["candidates"]}
    assert {v["id"] for v in remaining["variants"]} == {existing["id"], variant["id"]}
    assert client.post(
        f"/v1/catalogue/titles/stranger-things/candidates/{first['id']}/approve",
        headers=m).status_code == 404


@pytest.mark.parametrize("data", [b"", b"just some text, not a video", poster(41)],
                         ids=["empty", "text", "jpeg"])
def test_a_trailer_that_is_not_a_video_is_400(client, m, data) -> None:
    create(client, m)
    response = client.post("/v1/catalogue/titles/stranger-things/trailers",
                           data={"file": (io.BytesIO(data), "clip.mp4")}, headers=m,
                           content_type="multipart/form-data")
    assert response.status_code == 400, response.get_json()
    assert error_of(response)["code"] in ("empty", "not_a_video", "no_frames")


# --------------------------------------------------------------------------- roles


def test_roles(client, keys, m) -> None:
    create(client, m)
    assert client.get("/v1/catalogue/titles").status_code == 401
    assert client.get("/v1/catalogue/titles", headers=auth("wrong")).status_code == 401
    assert client.get("/v1/catalogue/titles", headers=auth(keys["client"])).status_code == 403
    assert client.get("/v1/catalogue/titles", headers=auth(keys["analyst"])).status_code == 403
    assert client.get("/v1/catalogue/titles", headers=auth(keys["admin"])).status_code == 200
    assert client.get("/v1/catalogue/titles/stranger-things/performance",
                      headers=auth(keys["analyst"])).status_code == 200
    assert client.post("/v1/catalogue/titles/stranger-things/variants",
                       headers=auth(keys["client"])).status_code == 403


def test_openapi_documents_the_catalogue(client) -> None:
    spec = client.get("/openapi.json").get_json()
    upload_op = spec["paths"]["/v1/catalogue/titles/{titleId}/variants"]["post"]
    assert "multipart/form-data" in upload_op["requestBody"]["content"]
    assert upload_op["x-banditkit-roles"] == ["admin", "marketer"]
    assert spec["paths"]["/v1/artwork/images/{name}"]["get"]["security"] == []
    assert json.dumps(spec)  # serialisable


# --------------------------------------------------------------------------- labels and tags


def test_labels_and_tags_are_edited_as_revisions(client, m, keys, app) -> None:
    create(client, m)
    variant = upload(client, m, poster(7), name="kiss.jpg").get_json()
    assert variant["label"] == "kiss.jpg" and variant["revision"] == 1
    assert variant["tags"] == {"themes": [], "tone": [], "cast": [], "setting": [],
                               "visual": []}
    assert set(variant["suggestedTags"]) <= {"closeup", "group", "no-people", "dark", "bright",
                                             "warm", "cool", "text-heavy", "minimal"}
    url = f"/v1/catalogue/titles/stranger-things/variants/{variant['id']}"
    response = client.patch(url, headers=m, json={
        "label": "The kiss", "revision": 1,
        "tags": {"themes": ["Romance"], "tone": ["tender"], "cast": ["Nancy"]}})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["label"] == "The kiss" and body["revision"] == 2
    assert body["tags"]["themes"] == ["romance"] and body["tags"]["cast"] == ["Nancy"]
    # Another marketer's edit from revision 1 is refused: it would undo this one.
    stale = client.patch(url, headers=m, json={"label": "Kiss", "revision": 1})
    assert stale.status_code == 409 and "revision 2, not 1" in error_of(stale)["message"]
    # A body that changes nothing makes no revision; 2.0 is the integer 2.
    assert client.patch(url, headers=m, json={"tags": {}, "revision": 2.0}
                        ).get_json()["revision"] == 2
    revisions = client.get(url + "/revisions", headers=auth(keys["analyst"])).get_json()
    assert [(r["revision"], r["label"]) for r in revisions["revisions"]] == [
        (1, "kiss.jpg"), (2, "The kiss")]
    # Ranking sees the tags in their own namespace, and the log keeps them.
    ranked = client.post("/v1/artwork/rank", headers=auth(keys["client"]), json={
        "titles": ["stranger-things"], "context": {"Taste": {"romance": 0.9}}}).get_json()
    event_id = ranked["results"][0]["eventId"]
    record = json.loads(get_engine(app).store.event(event_id)["decision"])
    assert record["c"]["_multi"][0]["Depicts"] == {
        "theme=romance": 1.0, "tone=tender": 1.0, "cast=nancy": 1.0}


@pytest.mark.parametrize("body, target, words", [
    ({"tags": {"themes": ["heist"]}}, "tags.themes[0]",
     ["unknown theme 'heist'", "'romance'", "'documentary'"]),
    ({"tags": {"visual": ["sparkly"]}}, "tags.visual[0]", ["closeup"]),
    ({"tags": {"mood": ["x"]}}, "tags.mood", ["Unknown field"]),
    ({"tags": {"cast": ["x" * 65]}}, "tags.cast[0]", ["at most 64"]),
    ({"label": " "}, "label", ["must not be empty"]),
    ({"suggestedTags": ["sparkly"]}, "suggestedTags[0]", ["closeup"]),
    ({"revision": 0}, "revision", [">= 1"]),
    ({"revision": 1.5}, "revision", ["integer"]),
])
def test_bad_tags_are_400_naming_the_problem(client, m, body, target, words) -> None:
    create(client, m)
    variant = upload(client, m, poster(8)).get_json()
    url = f"/v1/catalogue/titles/stranger-things/variants/{variant['id']}"
    response = client.patch(url, json=body, headers=m)
    assert response.status_code == 400
    error = error_of(response)
    assert error["target"] == target, error
    for word in words:
        assert word in error["message"], error
    assert client.get(url, headers=m).get_json()["revision"] == 1


def test_the_theme_vocabulary_is_listed_and_extended_by_the_owner(client, m, keys) -> None:
    create(client, m)
    variant = upload(client, m, poster(9)).get_json()
    themes = client.get("/v1/catalogue/themes", headers=m).get_json()["themes"]
    assert "romance" in themes and "heist" not in themes
    admin = auth(keys["admin"])
    assert client.post("/v1/catalogue/themes", json={"themes": ["heist"]},
                       headers=m).status_code == 403
    grown = client.post("/v1/catalogue/themes", json={"themes": ["Heist"]}, headers=admin)
    assert grown.status_code == 200 and grown.get_json()["themes"][-1] == "heist"
    bad = client.post("/v1/catalogue/themes", json={"themes": ["two words"]}, headers=admin)
    assert bad.status_code == 400 and error_of(bad)["target"] == "themes[0]"
    url = f"/v1/catalogue/titles/stranger-things/variants/{variant['id']}"
    patched = client.patch(url, json={"tags": {"themes": ["heist"]}}, headers=m).get_json()
    assert patched["tags"]["themes"] == ["heist"]


def test_suggested_tags_are_confirmed_or_dismissed(client, m) -> None:
    create(client, m)
    # A dark blue plain poster: the analysis suggests dark and cool, among others.
    variant = upload(client, m, encode(np.full((600, 400, 3), (10, 20, 100), np.uint8)),
                     name="night.jpg").get_json()
    assert {"dark", "cool"} <= set(variant["suggestedTags"])
    url = f"/v1/catalogue/titles/stranger-things/variants/{variant['id']}"
    rest = [t for t in variant["suggestedTags"] if t not in ("dark", "cool")]
    confirmed = client.patch(url, headers=m, json={
        "tags": {"visual": ["dark"]}, "suggestedTags": rest}).get_json()
    assert confirmed["tags"]["visual"] == ["dark"] and confirmed["suggestedTags"] == rest


def test_performance_gives_the_recent_share_beside_the_whole_windows(client, m, keys) -> None:
    create(client, m)
    ids = [upload(client, m, poster(seed)).get_json()["id"] for seed in (10, 11)]
    for _ in range(6):
        response = client.post("/v1/artwork/rank", headers=auth(keys["client"]), json={
            "titles": ["stranger-things"], "context": {"Member": {"country": "BR"}}})
        assert response.status_code == 201
    report = client.get("/v1/catalogue/titles/stranger-things/performance?recentHours=1",
                        headers=m).get_json()
    assert report["recentImpressions"] == report["impressions"] == 6
    rows = {v["variantId"]: v for v in report["variants"]}
    assert set(rows) == set(ids)
    assert sum(v["recentImpressions"] for v in rows.values()) == 6
    assert sum(v["recentShare"] for v in rows.values()) == pytest.approx(1.0)
    assert all(v["recentShare"] == v["share"] for v in rows.values())  # all within the hour
    bad = client.get("/v1/catalogue/titles/stranger-things/performance?recentHours=0",
                     headers=m)
    assert bad.status_code == 400 and error_of(bad)["target"] == "recentHours"


# --------------------------------------------------------------------------- insights


def joined_traffic(client, m, keys, app, contexts, *, rewarded=True):
    """Two posters, one rank per context, all joined; with ``rewarded``, a take for each
    showing of the first poster."""
    create(client, m)
    ids = [upload(client, m, poster(seed)).get_json()["id"] for seed in (10, 11)]
    engine = get_engine(app)
    # Each reward follows its rank within milliseconds: half a second of wait is
    # plenty; without rewards the events join at once.
    wait = 0.5 if rewarded else 0.0
    engine.update_settings(dataclasses.replace(engine.settings, reward_wait_seconds=wait))
    shown = []
    for context in contexts:
        result = client.post("/v1/artwork/rank", headers=auth(keys["client"]), json={
            "titles": ["stranger-things"], "context": context}).get_json()["results"][0]
        if rewarded and result["variantId"] == ids[0]:
            assert client.post(f"/v1/events/{result['eventId']}/reward", json={"value": 1.0},
                               headers=auth(keys["client"])).status_code == 204
        shown.append((context["Member"]["country"], result))
    time.sleep(wait + 0.05)
    assert engine.process_due() == len(contexts)
    return ids, shown


@pytest.mark.slow  # half a second of reward wait, two analyses: about 1 s
def test_insights_break_take_rates_down_by_a_context_feature(client, m, keys, app) -> None:
    contexts = [{"Member": {"country": country, "device": device}}
                for country in ("BR", "GB") for device in ("tv", "phone", "tv")]
    ids, shown = joined_traffic(client, m, keys, app, contexts)
    listed = client.get("/v1/catalogue/titles/stranger-things/insights", headers=m).get_json()
    assert listed["features"] == ["Member.country", "Member.device"]
    assert listed["feature"] is None and listed["segments"] == [] and listed["decisions"] == 6
    report = client.get("/v1/catalogue/titles/stranger-things/insights?feature=Member.country",
                        headers=m).get_json()
    assert [s["segment"] for s in report["segments"]] == ["BR", "GB"]
    for segment in report["segments"]:
        rows = {v["variantId"]: v for v in segment["variants"]}
        assert list(rows) == ids and segment["decisions"] == 3
        expected = [r["variantId"] for country, r in shown if country == segment["segment"]]
        for variant_id, row in rows.items():
            assert row["impressions"] == expected.count(variant_id)
            assert row["takes"] == (row["impressions"] if variant_id == ids[0] else 0)
            if row["impressions"]:
                assert row["takeRateLow"] <= row["takeRate"] <= row["takeRateHigh"]
                assert 0 < row["effectiveSize"] <= row["impressions"] + 1e-9
            else:
                assert row["takeRate"] is None and row["rawTakeRate"] is None


def test_insights_refuse_an_unknown_feature_naming_the_available_ones(client, m, keys,
                                                                      app) -> None:
    joined_traffic(client, m, keys, app, [{"Member": {"country": "BR"}}], rewarded=False)
    response = client.get("/v1/catalogue/titles/stranger-things/insights?feature=Member.age",
                          headers=m)
    assert response.status_code == 400
    error = error_of(response)
    assert error["target"] == "feature"
    assert "'Member.age'" in error["message"] and "'Member.country'" in error["message"]
    for bad in ("days=0", "confidence=1", "takeThreshold=nan", "feature="):
        response = client.get(f"/v1/catalogue/titles/stranger-things/insights?{bad}",
                              headers=m)
        assert response.status_code == 400, bad
        assert error_of(response)["target"] == bad.split("=")[0]
    assert client.get("/v1/catalogue/titles/nope/insights", headers=m).status_code == 404
    assert client.get("/v1/catalogue/titles/stranger-things/insights",
                      headers=auth(keys["client"])).status_code == 403
    assert client.get("/v1/catalogue/titles/stranger-things/insights",
                      headers=auth(keys["analyst"])).status_code == 200
    document = client.get("/openapi.json").get_json()
    operation = document["paths"]["/v1/catalogue/titles/{titleId}/insights"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"titleId", "feature", "days"}


def test_every_feature_an_upload_shows_has_a_glossary_entry(client, m) -> None:
    create(client, m)
    features = upload(client, m, poster(12)).get_json()["features"]
    glossary = json.loads(client.get("/marketer/static/glossary.json").data)
    shown = {f"{namespace}.{name}" for namespace, values in features.items() for name in values}
    assert shown - set(glossary) == set()
    assert all(isinstance(text, str) and text for text in glossary.values())


def test_the_landing_pages_key_command_makes_a_key_the_marketer_page_accepts(client,
                                                                             data_dir) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'href="/marketer"' in page
    command = re.search(r"<code>banditkit (keys create [^<]*)</code>", page).group(1)
    arguments = html.unescape(command).replace('"your name"', "tester").split()
    result = CliRunner().invoke(cli_main, [*arguments, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    assert client.get("/v1/catalogue/titles", headers=auth(key)).status_code == 200
