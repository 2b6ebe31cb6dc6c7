"""The marketer page in a real headless Chromium against a real server process on loopback.

Drives Debian's ``/usr/bin/chromium`` with Playwright (never Playwright's own
browser download): sign in with a key, create a title, upload posters through
the file input and by drag and drop, see features, warnings and near-duplicate
flags, turn a variant off, mine and approve a trailer frame, see the
performance charts after real traffic, and check a screenshot rendered.
"""

from __future__ import annotations

import base64
import http.server
import io
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.server.conftest import start_server, stop_server
from tests.server.test_catalogue_helpers import poster, resized_copy, trailer

# A real browser against a live server: in the full run, not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000
ACCENT = np.array([229, 9, 20])  # the first variant's colour (#e50914) in the charts

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium",
                    pytrace=False)
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("marketer") / "data",
                          BANDITKIT_CATALOGUE_TRAILER_FRAMES="2")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # 4xx answers the page handles, and the cross-site requests the browser
    # blocks on purpose, show up as console errors; anything else (a script
    # error, a CSP violation) fails the test.
    expected = ("status of 4", "CORS policy", "net::ERR_FAILED")
    unexpected = [e for e in errors if not any(text in e for text in expected)]
    assert not unexpected, unexpected


def api(server, method, path, role="marketer", **kwargs):
    headers = {"Ocp-Apim-Subscription-Key": server.keys[role]}
    return requests.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def sign_in(page, server, role="marketer"):
    page.goto(f"{server.url}/marketer")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.fill("#key", server.keys[role])
    page.click("#signin-button")


def drop_file(page, selector, name, data, mime):
    """Drop a file on ``selector`` the way a browser does (a DataTransfer with a File)."""
    payload = base64.b64encode(data).decode()
    transfer = page.evaluate_handle(
        """([name, payload, mime]) => {
            const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""", [name, payload, mime])
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(selector, event, {"dataTransfer": transfer})


def cards(page):
    return page.locator("#variants .card")


def test_sign_in_refuses_bad_keys_and_keeps_the_key_out_of_storage(page, server) -> None:
    page.goto(f"{server.url}/marketer")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.fill("#key", "not-a-key")
    page.click("#signin-button")
    page.wait_for_selector("#message.error")
    expect(page.locator("#message")).to_contain_text("not valid")
    page.fill("#key", server.keys["client"])
    page.click("#signin-button")
    expect(page.locator("#message")).to_contain_text("marketer key")
    assert page.is_hidden("#app")
    sign_in(page, server)
    page.wait_for_selector("body[data-signed-in]", state="attached")
    assert page.is_visible("#app")
    # The key lives in JS memory only: no cookie, no web storage.
    assert page.context.cookies() == []
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.is_hidden("#app") and page.is_visible("#signin")


ATTACKER_PAGE = """<!doctype html><html><body>
<form id="csrf" method="post" enctype="text/plain" action="{target}/v1/catalogue/titles">
<input name='{{"id":"csrf-form","pad":"' value='"}}'></form></body></html>"""


def test_a_cross_site_page_cannot_use_the_api(page, server) -> None:
    # Another site tries the classic CSRF moves against the API: a page from
    # another origin on loopback (another port, a plain HTTP server without the
    # app's CSP), so only the same-origin rules and the absence of cookies stand
    # in its way, not Chromium's guard of the loopback address space.
    body = ATTACKER_PAGE.format(target=server.url).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    attacker = f"http://127.0.0.1:{site.server_port}"
    try:
        page.goto(f"{attacker}/")
        _attack(page, server, attacker)
    finally:
        site.shutdown()
        site.server_close()


def _attack(page, server, attacker) -> None:
    outcome = page.evaluate(
        """async ([target, key]) => {
            const results = {};
            try {
                await fetch(target + "/v1/catalogue/titles", {method: "POST",
                    headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
                    body: JSON.stringify({id: "csrf-with-header"})});
                results.withHeader = "sent";
            } catch (e) { results.withHeader = "blocked"; }
            const simple = await fetch(target + "/v1/catalogue/titles", {method: "POST",
                mode: "no-cors", credentials: "include", headers: {"Content-Type": "text/plain"},
                body: JSON.stringify({id: "csrf-simple"})});
            results.simpleType = simple.type;
            return results;
        }""", [server.url, server.keys["marketer"]])
    # The preflight gets no Access-Control-Allow-Origin, so the browser never
    # sends a request carrying a key; a "simple" request carries none and its
    # answer is opaque to the attacker.
    assert outcome == {"withHeader": "blocked", "simpleType": "opaque"}
    with page.expect_navigation():
        page.evaluate("document.getElementById('csrf').submit()")
    assert '"Unauthorized"' in page.content()  # the API's 401, shown to nobody useful
    ids = {t["id"] for t in api(server, "GET", "/v1/catalogue/titles").json()["titles"]}
    assert not ids & {"csrf-with-header", "csrf-simple", "csrf-form"}
    response = requests.get(f"{server.url}/marketer", timeout=10)
    assert "Set-Cookie" not in response.headers
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in requests.options(
        f"{server.url}/v1/catalogue/titles", headers={"Origin": attacker}, timeout=10).headers


def test_the_marketer_workflow(page, server, tmp_path) -> None:
    sign_in(page, server)
    page.wait_for_selector("body[data-signed-in]", state="attached")

    # A new title from the form.
    page.click("#new-title summary")
    page.fill("#title-id", "the-crown")
    page.fill("#title-name", "The Crown")
    page.fill("#title-genres", "Drama, history")
    page.click("#title-form button[type=submit]")
    page.wait_for_selector("#titles button.selected[data-title='the-crown']")
    # expect() retries until the page has re-rendered (no race with the click).
    expect(page.locator("#title-heading")).to_have_text("The Crown (the-crown)")
    expect(page.locator("#title-genres-text")).to_contain_text("drama, history")
    page.fill("#genres-edit", "drama, history, royalty")
    page.click("#genres-form button[type=submit]")
    expect(page.locator("#title-genres-text")).to_contain_text("royalty")
    assert api(server, "GET", "/v1/catalogue/titles/the-crown").json()["genres"] == [
        "drama", "history", "royalty"]

    # Two posters through the file chooser: a real multipart upload from disk.
    files = []
    for seed, name in ((1, "crown-portrait.jpg"), (2, "crown-throne.jpg")):
        path = tmp_path / name
        path.write_bytes(poster(seed))
        files.append(str(path))
    page.set_input_files("#file-input", files)
    expect(cards(page)).to_have_count(2)
    page.wait_for_selector("#uploads li.done >> nth=1")
    first_id = cards(page).nth(0).get_attribute("data-variant")
    second_id = cards(page).nth(1).get_attribute("data-variant")

    # A near-duplicate of the first, dropped on the drop zone.
    drop_file(page, "#dropzone", "crown-portrait-small.png", resized_copy(1), "image/png")
    expect(cards(page)).to_have_count(3)
    third_id = cards(page).nth(2).get_attribute("data-variant")
    third = page.locator(f"#variants .card[data-variant='{third_id}']")
    assert third.locator(f".badge.dup[data-duplicate-of='{first_id}']").count() == 1
    first = page.locator(f"#variants .card[data-variant='{first_id}']")
    assert first.locator(f".badge.dup[data-duplicate-of='{third_id}']").count() == 1

    # A file that is not an image is refused with artwork's reason.
    svg = tmp_path / "logo.svg"
    svg.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'></svg>")
    page.set_input_files("#file-input", str(svg))
    page.wait_for_selector("#uploads li.error")
    expect(page.locator("#uploads li.error")).to_contain_text("SVG")

    # Features and warnings are on the card; the image loads from the server.
    # The upload's refresh may re-render the cards around the click: an opened table stays open.
    first.locator("details.features summary").click()
    expect(first.locator("details.features table")).to_contain_text("brightness")
    assert first.locator(".warnings li[data-code='no_face']").count() == 1
    assert page.evaluate(
        "Array.from(document.querySelectorAll('#variants img')).every("
        "(img) => img.complete && img.naturalWidth > 0)")

    # Delete the duplicate (confirming the dialog): its flag goes from the first card.
    page.once("dialog", lambda dialog: dialog.accept())
    third.locator("button[data-role=delete]").click()
    expect(cards(page)).to_have_count(2)
    assert first.locator(".badge.dup").count() == 0
    expect(first.locator("details.features table")).to_be_visible()

    # Turn the second variant off: the server agrees and ranking never picks it.
    second = page.locator(f"#variants .card[data-variant='{second_id}']")
    second.locator("input[data-role=active-toggle]").uncheck()
    page.wait_for_selector(f"#variants .card.inactive[data-variant='{second_id}']")
    assert api(server, "GET", f"/v1/catalogue/titles/the-crown/variants/{second_id}"
               ).json()["active"] is False

    # A trailer: candidate frames appear, one is approved as a variant.
    page.set_input_files("#trailer-input", str(trailer(tmp_path / "teaser.avi")))
    page.wait_for_selector("#candidates .card")
    expect(page.locator("#trailer-status")).to_contain_text("candidate frames")
    page.locator("#candidates .card button[data-role=approve]").first.click()
    expect(cards(page)).to_have_count(3)
    expect(page.locator("#message")).to_contain_text("approved")

    # Real traffic from the UI backend's route, with rewards, then the learner's join.
    shown = []
    for _ in range(24):
        result = api(server, "POST", "/v1/artwork/rank", role="client",
                     json={"context": {"Member": {"country": "GB"}},
                           "titles": ["the-crown"]}).json()["results"][0]
        assert result["variantId"] != second_id
        shown.append(result)
        if result["variantId"] == first_id:
            api(server, "POST", f"/v1/events/{result['eventId']}/reward", role="client",
                json={"value": 1.0})
    deadline = time.monotonic() + 30
    while api(server, "GET", "/v1/catalogue/titles/the-crown/performance"
              ).json()["joined"] < len(shown):
        assert time.monotonic() < deadline, "the learner never joined the events"
        time.sleep(0.2)
    page.click("#perf-refresh")
    page.wait_for_selector("#chart-share svg circle >> nth=0")
    page.wait_for_selector(f"#perf-table tbody tr[data-variant='{first_id}']")
    row = page.inner_text(f"#perf-table tbody tr[data-variant='{first_id}']")
    takes = sum(r["variantId"] == first_id for r in shown)
    assert f"\t{takes}\t" in row
    share_bar = page.locator(f"#chart-variants rect[data-variant='{first_id}'][data-kind=share]")
    assert float(share_bar.get_attribute("width")) > 0
    assert page.locator(f"#chart-variants circle[data-variant='{first_id}']").count() == 1
    assert page.locator("#chart-rate svg circle").count() > 0
    assert str(len(shown)) in page.inner_text("#perf-summary")
    # All of it came within the last 24 hours: the recent share is the window's.
    cells = page.locator(f"#perf-table tbody tr[data-variant='{first_id}'] td")
    assert cells.nth(6).inner_text() == cells.nth(5).inner_text() != "–"
    recent_bar = page.locator(f"#chart-variants rect[data-variant='{first_id}']"
                              "[data-kind=recent-share]")
    assert float(recent_bar.get_attribute("width")) == pytest.approx(float(
        share_bar.get_attribute("width")))

    # The screenshot: a rendered page, with the first variant's colour in the chart.
    shot = tmp_path / "marketer-page.png"
    page.screenshot(path=str(shot), full_page=True)
    chart = tmp_path / "chart.png"
    page.locator("#chart-variants").screenshot(path=str(chart))
    keep = os.environ.get("BANDITKIT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "marketer-page.png")
    image = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"))
    assert image.shape[1] == 1280 and image.shape[0] >= 900
    assert image.std() > 20  # not a blank page
    pixels = np.asarray(Image.open(chart).convert("RGB")).reshape(-1, 3).astype(int)
    near_accent = (np.abs(pixels - ACCENT).sum(axis=1) < 60).sum()
    assert near_accent > 500, near_accent  # the first variant's share bar was drawn

    # Finally the title goes, with its artwork.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-title")
    expect(page.locator("#title-panel")).to_be_hidden()
    assert api(server, "GET", "/v1/catalogue/titles/the-crown").status_code == 404
    assert requests.get(server.url + shown[0]["imageUrl"], timeout=10).status_code == 404


def test_a_variant_is_named_and_tagged_on_its_card(page, server, tmp_path) -> None:
    assert api(server, "POST", "/v1/catalogue/titles",
               json={"id": "bridgerton", "genres": ["romance"]}).status_code == 201
    night = io.BytesIO()
    Image.new("RGB", (400, 600), (10, 20, 100)).save(night, format="JPEG")
    uploaded = api(server, "POST", "/v1/catalogue/titles/bridgerton/variants",
                   files={"file": ("night.jpg", night.getvalue(), "image/jpeg")}).json()
    variant_id = uploaded["id"]
    assert "dark" in uploaded["suggestedTags"]
    sign_in(page, server)
    page.click("#titles button[data-title='bridgerton']")
    card = page.locator(f"#variants .card[data-variant='{variant_id}']")
    # The card is named by its label (the file name until renamed); the id is its tooltip.
    expect(card.locator("[data-role=label]")).to_have_text("night.jpg")
    assert card.locator("[data-role=label]").get_attribute("title") == variant_id

    # An unknown theme is refused, naming it and the vocabulary; nothing changes.
    card.locator("details.edit summary").click()
    card.locator("input[name=themes]").fill("heist")
    card.locator("button[data-role=save-tags]").click()
    expect(page.locator("#message.error")).to_contain_text("unknown theme 'heist'")
    expect(page.locator("#message")).to_contain_text("'romance'")
    assert api(server, "GET", f"/v1/catalogue/titles/bridgerton/variants/{variant_id}"
               ).json()["revision"] == 1

    # A label and a theme: the card, the performance table and the server agree.
    card.locator("input[name=label]").fill("The ball")
    card.locator("input[name=themes]").fill("Romance, drama")
    card.locator("input[name=cast]").fill("Daphne")
    card.locator("button[data-role=save-tags]").click()
    expect(card.locator("[data-role=label]")).to_have_text("The ball")
    expect(card.locator(".badge.tag[data-tag='theme=romance']")).to_be_visible()
    expect(card.locator(".badge.tag[data-tag='cast=Daphne']")).to_be_visible()
    expect(card.locator("details.edit")).to_have_attribute("open", "")
    expect(page.locator(f"#perf-table tbody tr[data-variant='{variant_id}']")
           ).to_contain_text("The ball")

    # A suggested visual tag is confirmed with one click.
    card.locator(".badge.suggestion[data-suggestion='dark'] button[data-role=confirm]").click()
    expect(card.locator(".badge.tag[data-tag='visual=dark']")).to_be_visible()
    expect(card.locator(".badge.suggestion[data-suggestion='dark']")).to_have_count(0)
    keep = os.environ.get("BANDITKIT_SCREENSHOT_DIR")
    if keep:
        card.screenshot(path=str(Path(keep) / "marketer-tags.png"))
    stored = api(server, "GET", f"/v1/catalogue/titles/bridgerton/variants/{variant_id}").json()
    assert stored["label"] == "The ball" and stored["revision"] == 3
    assert stored["tags"]["themes"] == ["romance", "drama"]
    assert stored["tags"]["visual"] == ["dark"] and "dark" not in stored["suggestedTags"]


def test_who_likes_which_variant_by_a_context_feature(page, server, tmp_path) -> None:
    assert api(server, "POST", "/v1/catalogue/titles", json={"id": "dark-tower"}).status_code == 201
    ids = []
    for seed, label in ((5, "Gunslinger"), (6, "The tower")):
        uploaded = api(server, "POST", "/v1/catalogue/titles/dark-tower/variants",
                       files={"file": (f"{seed}.jpg", poster(seed), "image/jpeg")}).json()
        assert api(server, "PATCH", f"/v1/catalogue/titles/dark-tower/variants/{uploaded['id']}",
                   json={"label": label}).status_code == 200
        ids.append(uploaded["id"])
    # Members from two countries; Brazil takes the first poster, Japan the second.
    n_ranks = 0
    for country, liked in (("BR", ids[0]), ("JP", ids[1])):
        for _ in range(16):
            result = api(server, "POST", "/v1/artwork/rank", role="client",
                         json={"context": {"Member": {"country": country}},
                               "titles": ["dark-tower"]}).json()["results"][0]
            n_ranks += 1
            if result["variantId"] == liked:
                api(server, "POST", f"/v1/events/{result['eventId']}/reward", role="client",
                    json={"value": 1.0})
    deadline = time.monotonic() + 30
    while api(server, "GET", "/v1/catalogue/titles/dark-tower/insights").json()[
            "decisions"] < n_ranks:
        assert time.monotonic() < deadline, "the learner never joined the events"
        time.sleep(0.2)

    sign_in(page, server)
    page.click("#titles button[data-title='dark-tower']")
    # Each artwork feature explains itself on hover, from the one glossary.
    card = page.locator(f"#variants .card[data-variant='{ids[0]}']")
    glossed = card.locator("tr[data-feature='Face.largest_share'] td.glossed")
    assert "face" in glossed.get_attribute("title").lower()
    expect(page.locator("#insights-feature option[value='Member.country']")).to_have_count(1)
    page.select_option("#insights-feature", "Member.country")
    chart = page.locator("#chart-insights")
    expect(chart.locator("text.segment")).to_have_count(2)
    assert chart.locator("text.segment").all_text_contents() == ["BR (16)", "JP (16)"]
    expect(page.locator("#insights-legend")).to_contain_text("propensity-weighted")
    assert "propensity-weighted" in chart.locator("text.legend").text_content()
    # The variant labels are text beside their rows, in every segment.
    names = chart.locator("text.variant").evaluate_all(
        "(nodes) => nodes.map((node) => node.firstChild.nodeValue)")  # the id is a <title>
    assert names.count("Gunslinger") == 2 and names.count("The tower") == 2
    assert chart.locator("circle[data-kind=weighted-rate]").count() >= 2
    rows = page.locator("#insights-table tbody tr")
    expect(rows).to_have_count(4)
    first_in_br = f"#insights-table tr[data-segment='BR'][data-variant='{ids[0]}']"
    assert "Gunslinger" in page.inner_text(first_in_br)

    shot = tmp_path / "insights.png"
    chart.screenshot(path=str(shot))
    keep = os.environ.get("BANDITKIT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "marketer-insights.png")
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert pixels.shape[0] > 150  # two segments of two rows, not an empty box
    # A blank panel is one grey; the grid, labels, whiskers and points spread the values.
    assert pixels.std() > 10, pixels.std()
    marks = (np.abs(pixels.reshape(-1, 3) - ACCENT).sum(axis=1) < 60).sum()
    assert marks > 50, marks  # the first variant's points and whiskers were drawn
