"""Every bad poster or trailer upload gets a 4xx whose JSON message names the problem.

The files come from :mod:`tests.server.bad_uploads_corpus` (built in code) and
go through the real app with Flask's test client. Besides the status, each
case checks the error code and message, that nothing was stored, that no
scratch file was left behind and that the app logged no unhandled error.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from server import close_app, create_app
from tests.server.bad_uploads_corpus import (
    BAD_POSTERS,
    BAD_TRAILERS,
    GOOD_ODD_POSTERS,
    BadFile,
    animated_gif,
    good_trailer,
)
from tests.server.conftest import FAST_SETTINGS, auth, make_keys
from tests.server.test_catalogue_helpers import poster

VARIANTS = "/v1/catalogue/titles/bad/variants"
TRAILERS = "/v1/catalogue/titles/bad/trailers"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-uploads") / "data"


@pytest.fixture(scope="module")
def m(data_dir: Path) -> dict[str, str]:
    return auth(make_keys(data_dir)["marketer"])


@pytest.fixture(scope="module")
def client(data_dir: Path, m: dict[str, str]):
    # one app for the module: refused uploads change nothing, so cases cannot
    # affect each other (each test checks that)
    app = create_app({
        "TESTING": True,
        "ENGINE_DATA_DIR": str(data_dir),
        "ENGINE_SETTINGS": FAST_SETTINGS,
        "LEARNER_ENABLED": False,
        "SERVER_MAX_BODY_BYTES": 64 * 1024,
        "CATALOGUE_MAX_UPLOAD_BYTES": 3_000_000,
        "CATALOGUE_MAX_TRAILER_BYTES": 5_000_000,
        "CATALOGUE_MAX_PIXELS": 4_000_000,
        "CATALOGUE_TRAILER_MAX_PIXELS": 1_000_000,
        "CATALOGUE_TRAILER_FRAMES": 2,
        "CATALOGUE_MAX_VARIANTS": 50,
    })
    client = app.test_client()
    for title in ("bad", "good"):
        response = client.post("/v1/catalogue/titles", json={"id": title}, headers=m)
        assert response.status_code == 201, response.get_json()
    yield client
    close_app(app)


def _post(client, m, url: str, data: bytes, filename: str):
    return client.post(url, data={"file": (io.BytesIO(data), filename)}, headers=m,
                       content_type="multipart/form-data")


def _error(response) -> dict:
    assert response.is_json, response.data[:200]
    body = response.get_json()
    assert set(body) == {"error"}, body
    return body["error"]


def _assert_refused(response, case: BadFile, caplog: pytest.LogCaptureFixture) -> None:
    error = _error(response)
    assert response.status_code == case.status, error
    assert error["code"] == case.code, error
    assert error["target"] == "file"
    assert case.needle in error["message"].lower(), error["message"]
    assert "Traceback" not in error["message"]
    unhandled = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert unhandled == [], [r.getMessage() for r in unhandled]


@pytest.mark.parametrize("case", BAD_POSTERS, ids=lambda case: case.kind)
def test_bad_poster_is_refused_naming_the_problem(client, m, case, caplog) -> None:
    caplog.set_level(logging.ERROR)
    before = client.get(VARIANTS, headers=m).get_json()["variants"]
    response = _post(client, m, VARIANTS, case.build(), case.filename)
    _assert_refused(response, case, caplog)
    assert client.get(VARIANTS, headers=m).get_json()["variants"] == before


@pytest.mark.parametrize("case", BAD_TRAILERS, ids=lambda case: case.kind)
def test_bad_trailer_is_refused_naming_the_problem(client, m, data_dir, case, caplog) -> None:
    caplog.set_level(logging.ERROR)
    url = "/v1/catalogue/titles/bad/candidates"
    before = client.get(url, headers=m).get_json()["candidates"]
    response = _post(client, m, TRAILERS, case.build(), case.filename)
    _assert_refused(response, case, caplog)
    assert case.filename in _error(response)["message"]  # the upload's name, not a scratch name
    assert client.get(url, headers=m).get_json()["candidates"] == before
    assert list((data_dir / "tmp").iterdir()) == []  # the scratch copy is gone


def test_the_corpus_is_large_and_its_kinds_unique() -> None:
    for corpus in (BAD_POSTERS, BAD_TRAILERS):
        kinds = [case.kind for case in corpus]
        assert len(set(kinds)) == len(kinds)
    assert len(BAD_POSTERS) >= 40


@pytest.mark.parametrize(("kind", "build", "note"), GOOD_ODD_POSTERS,
                         ids=[kind for kind, _, _ in GOOD_ODD_POSTERS])
def test_odd_but_usable_posters_are_accepted(client, m, kind, build, note) -> None:
    response = _post(client, m, "/v1/catalogue/titles/good/variants", build(), f"{kind}.jpg")
    assert response.status_code == 201, response.get_json()
    variant = response.get_json()
    assert variant["features"]["Color"]  # analysed, not just stored
    if note is not None:
        assert any(note in text for text in variant["details"]["notes"]), variant["details"]


def test_the_parts_own_content_type_is_not_trusted(client, m) -> None:
    # the bytes decide: a JPEG labelled text/plain is a JPEG
    response = client.post("/v1/catalogue/titles/good/variants", headers=m,
                           data={"file": (io.BytesIO(poster(77)), "poster.txt", "text/plain")},
                           content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["mediaType"] == "image/jpeg"


def test_an_animated_gif_trailer_is_read_as_a_short_video(client, m) -> None:
    response = _post(client, m, "/v1/catalogue/titles/good/trailers", animated_gif(),
                     "teaser.gif")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["frames"] == 3


def test_a_good_trailer_still_mines_frames(client, m) -> None:
    # the corpus's truncated trailers are cut from this file: whole, it is fine
    response = _post(client, m, "/v1/catalogue/titles/good/trailers", good_trailer(),
                     "clip.avi")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["frames"] == 50 and 1 <= len(body["candidates"]) <= 2


# --------------------------------------------------------------------------- the request


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart body from (name, filename or None for a text field, content)."""
    lines = []
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        lines.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
                     + content + b"\r\n")
    return b"".join(lines) + f"--{boundary}--\r\n".encode()


JPEG = poster(1)
MULTIPART = "multipart/form-data; boundary=XyZ"

# (id, content type, body, status, needle)
BAD_REQUESTS = [
    ("json-body", "application/json", b'{"file": "poster.jpg"}', 415, "multipart/form-data"),
    ("raw-jpeg-body", "image/jpeg", JPEG, 415, "multipart/form-data"),
    ("url-encoded-form", "application/x-www-form-urlencoded", b"file=poster.jpg", 415,
     "multipart/form-data"),
    ("no-content-type", None, JPEG, 415, "multipart/form-data"),
    ("empty-multipart-body", MULTIPART, b"", 400, "got no parts"),
    ("no-boundary", "multipart/form-data", _multipart("XyZ", [("file", "a.jpg", JPEG)]), 400,
     "got no parts"),
    ("wrong-boundary", "multipart/form-data; boundary=other",
     _multipart("XyZ", [("file", "a.jpg", JPEG)]), 400, "got no parts"),
    ("part-named-image", MULTIPART, _multipart("XyZ", [("image", "a.jpg", JPEG)]), 400,
     "['image']"),
    ("file-as-text-field", MULTIPART, _multipart("XyZ", [("file", None, b"poster.jpg")]), 400,
     "text field"),
    ("two-files", MULTIPART,
     _multipart("XyZ", [("file", "a.jpg", JPEG), ("file", "b.jpg", poster(2))]), 400,
     "one file per upload"),
    ("file-and-another-file", MULTIPART,
     _multipart("XyZ", [("file", "a.jpg", JPEG), ("extra", "b.jpg", poster(2))]), 400,
     "unexpected multipart parts ['extra']"),
    ("file-and-a-field", MULTIPART,
     _multipart("XyZ", [("file", "a.jpg", JPEG), ("title", None, b"x")]), 400,
     "unexpected multipart parts ['title']"),
    ("path-in-file-name", MULTIPART, _multipart("XyZ", [("file", "../../a.jpg", JPEG)]), 400,
     "without path separators"),
    ("file-and-a-600-kb-field", MULTIPART,
     _multipart("XyZ", [("file", "a.jpg", JPEG), ("note", None, b"x" * 600_000)]), 413,
     "has a text field over"),
    ("file-and-2000-fields", MULTIPART,
     _multipart("XyZ", [("file", "a.jpg", JPEG)] + [(f"f{i}", None, b"x") for i in range(2000)]),
     413, "parts; an upload holds only the 'file' part"),
]


@pytest.mark.parametrize("url", [VARIANTS, TRAILERS], ids=["poster", "trailer"])
@pytest.mark.parametrize(("content_type", "body", "status", "needle"),
                         [case[1:] for case in BAD_REQUESTS],
                         ids=[case[0] for case in BAD_REQUESTS])
def test_bad_upload_request_is_refused_naming_the_problem(client, m, url, content_type, body,
                                                          status, needle, caplog) -> None:
    caplog.set_level(logging.ERROR)
    headers = dict(m)
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(url, data=body, headers=headers)
    error = _error(response)
    assert response.status_code == status, error
    assert needle.lower() in error["message"].lower(), error["message"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
