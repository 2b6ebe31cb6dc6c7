"""The marketer's web page: ``GET /marketer`` and its static files.

Plain HTML, one stylesheet and one script, all served by the app (no build
step, nothing from a CDN). The page calls the catalogue API with the key the
marketer typed, held in JavaScript memory and sent in the
``Authorization: Bearer`` header; it sets no cookie, so a cross-site page can
neither make the browser attach credentials nor read answers (no CORS
headers), which is what protects the API from CSRF. See ``docs/marketer.md``.

The page and its files carry a strict Content-Security-Policy (only this
origin's scripts, styles and connections; images also from
``CATALOGUE_IMAGE_BASE_URL``; no framing).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, send_from_directory
from werkzeug.wrappers import Response

from serving import openapi
from serving.config import get_config
from serving.contract.ops import MARKETER_OPERATIONS

__all__ = ["STATIC_DIR", "bp", "init_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

bp = Blueprint("marketer", __name__, url_prefix="/marketer", static_folder=None)


def _csp() -> str:
    images = ["'self'", "data:", "blob:"]
    base = get_config().catalogue_image_base_url
    parts = urlsplit(base)
    if parts.scheme in ("http", "https") and parts.netloc:
        images.append(f"{parts.scheme}://{parts.netloc}")
    return ("default-src 'none'; script-src 'self'; style-src 'self'; "
            f"img-src {' '.join(images)}; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _csp()
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("")
def page() -> Response:
    """The marketer page (public HTML; every action it takes needs a key)."""
    response = send_from_directory(STATIC_DIR, "index.html", mimetype="text/html",
                                   max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return _harden(response)


@bp.get("/static/<path:filename>")
def static(filename: str) -> Response:
    """The page's script and stylesheet (``send_from_directory`` refuses traversal)."""
    return _harden(send_from_directory(STATIC_DIR, filename, max_age=300))


def init_app(app: Flask) -> None:
    """Register the page and document its routes."""
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, MARKETER_OPERATIONS, tag="marketer")
