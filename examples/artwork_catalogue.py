"""An artwork catalogue: titles, poster variants, a page of 40 titles, rewards, performance.

Run it with ``python examples/artwork_catalogue.py``.

A marketer creates titles and uploads poster variants (drawn here with numpy
and Pillow); the UI backend asks, for a member, which variant to show for
each of the 40 titles of a page and reports plays; the marketer then reads
each variant's impressions, takes and take rate. Everything goes through
``banditkit serve``'s HTTP API, started on a free loopback port.
"""

from __future__ import annotations

import io
import time

import numpy as np
from _local import call, local_server, upload
from PIL import Image, ImageDraw

N_TITLES = 40


def poster(seed: int, *, bright: bool) -> bytes:
    """A 2:3 JPEG poster: a colour field with shapes, bright or dark."""
    rng = np.random.default_rng(seed)
    base = rng.integers(150, 255, 3) if bright else rng.integers(20, 90, 3)
    pixels = np.clip(base + rng.normal(0, 12, (300, 200, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, 160), rng.integers(0, 260)
        draw.ellipse((x, y, x + 40, y + 40), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


with local_server("marketer", "client") as server:
    catalogue = f"{server.url}/v1/catalogue/titles"
    marketer, client = server.keys["marketer"], server.keys["client"]

    # The marketer: 40 titles, each with a bright and a dark poster.
    kind = {}  # variant id -> "bright" or "dark"
    for t in range(N_TITLES):
        call("POST", catalogue, marketer, {"id": f"title-{t}", "genres": ["drama"]})
        for variant, bright in (("bright", True), ("dark", False)):
            answer = upload(f"{catalogue}/title-{t}/variants", marketer, f"{variant}.jpg",
                            poster(2 * t + bright, bright=bright))
            kind[answer["id"]] = variant
            if t == 0:
                # Each upload is analysed: features and warnings come back at once.
                print(f"title-0 {variant}: brightness "
                      f"{answer['features']['Color']['brightness']:.2f}, "
                      f"warnings {[w['code'] for w in answer['warnings']] or 'none'}")
    print(f"catalogue: {N_TITLES} titles, {2 * N_TITLES} poster variants")

    # The UI backend: one call per page, one variant per title; a member plays
    # a title more often when its poster is bright.
    rng = np.random.default_rng(0)
    shown = plays = 0
    titles = [f"title-{t}" for t in range(N_TITLES)]
    for page in range(5):
        answer = call("POST", f"{server.url}/v1/artwork/rank", client, {
            "context": {"Member": {"country": "BR", "device": "tv"}}, "titles": titles})
        for result in answer["results"]:
            shown += 1
            if rng.random() < (0.5 if kind[result["variantId"]] == "bright" else 0.1):
                plays += 1
                call("POST", f"{server.url}/v1/events/{result['eventId']}/reward", client,
                     {"value": 1.0})
        if page == 0:
            first = answer["results"][0]
            print(f"page 1, {first['titleId']}: show the {kind[first['variantId']]} poster "
                  f"(probability {first['probability']}) from {first['imageUrl']}")
    print(f"ranked {shown} title slots on 5 pages, {plays} plays rewarded")

    # The marketer, once the rewards are joined: each variant's share and take rate.
    deadline = time.monotonic() + 30
    while True:
        report = call("GET", f"{catalogue}/title-0/performance", marketer)
        if report["joined"] == report["impressions"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    print(f"title-0 performance: {report['impressions']} impressions, {report['takes']} takes")
    for variant in report["variants"]:
        print(f"  {kind[variant['variantId']]} poster: {variant['impressions']} impressions, "
              f"share {variant['share']:.2f}, takes {variant['takes']}")
