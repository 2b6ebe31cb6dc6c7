"""``GET /``: a small page telling whoever opens the server's address where to go.

Links to the marketer page (saying what it is for and how to get its key), the
OpenAPI document and the health routes; the routes themselves are described in
``docs/server.md``. Public, like
``/marketer``: it shows nothing but links.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response

from serving import openapi
from serving.contract.ops import LANDING_OPERATIONS

__all__ = ["LANDING_HTML", "bp", "init_app"]

#: The page: static, so it is built once and holds no request data.
LANDING_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>banditkit</title></head>
<body>
<h1>banditkit</h1>
<p>Contextual bandits choosing artwork and homepage rows, with Azure Personalizer's routes.</p>
<ul>
<li><a href="/marketer">Marketer page</a>: for the people who choose a title's artwork.
Upload poster variants (each is analysed: faces, colour, text, layout), name and tag them,
turn them on and off, mine frames from a trailer, and see how each variant performs and
which audience prefers which variant. Sign in with a <code>marketer</code> API key; an
operator creates one on the server's host with
<code>banditkit keys create --role marketer --name "your name"</code> (add
<code>--data-dir</code> when the server's data directory is not the default). The key is
printed once; the page keeps it in memory only, so a reload signs out.</li>
<li><a href="/openapi.json">/openapi.json</a>: every route, its body and its roles
(OpenAPI 3.1).</li>
<li>API: <code>POST /v1/artwork/rank</code>, <code>POST /v1/rows/rank</code>,
<code>POST /personalizer/v1.0/rank</code> with a key in
<code>Ocp-Apim-Subscription-Key</code>; see <code>docs/server.md</code>.</li>
<li><a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>,
<a href="/metrics">/metrics</a>.</li>
</ul>
</body>
</html>
"""

bp = Blueprint("landing", __name__)


@bp.get("/")
def landing() -> Response:
    """The landing page (public HTML, no script, no style)."""
    response = Response(LANDING_HTML, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app: Flask) -> None:
    """Register the page and document it."""
    app.register_blueprint(bp)
    openapi.add_operations(app, bp, LANDING_OPERATIONS, tag="landing", operation_prefix="")
