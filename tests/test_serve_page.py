"""The map page of `geolulc serve` in a real browser (Debian's chromium driven by Playwright)
against the loopback STAC API: an AOI uploaded, a month and a model chosen, a job started from
the page and watched to the end, its land cover drawn in the palette's colours over the scene's
true colour, the legend's areas those of the job and its files linked, and the job's address
reloaded showing it again with its area outline and month; an area the server refuses, GeoJSON
that is none and a cancelled job each shown in one line.

``GEOLULC_UPDATE_SCREENSHOT=1`` also saves the page as docs/serve.png."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from io import BytesIO

import httpx
import numpy as np
import pytest
from PIL import Image

from conftest import DESERT_AOI, ROOT, _missing

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the `browser` fixture skips (fails under CI=true) with the reason
    expect = sync_playwright = None

SCREENSHOT = ROOT / "docs" / "serve.png"
#: Dynamic World's `bare`: 99 % of the desert AOI's land cover.
BARE = (0xA5, 0x9B, 0x8F)
#: The page's plain background (no internet basemap), #eef0ec.
BACKGROUND = (0xEE, 0xF0, 0xEC)
#: The colours of the desert map's classes: bare, crops, snow and ice.
PALETTE = (BARE, (0xE4, 0x96, 0x35), (0xB3, 0x9F, 0xE1))


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        _missing("playwright is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium")
    if chromium is None:
        _missing("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """The page, loaded; a script error anywhere fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server)
    page.wait_for_selector("#model option[value='dynamic-world']", state="attached")
    yield page
    context.close()
    assert not errors


def _start(page, aoi: dict) -> None:
    page.set_input_files("#aoi-file", files=[{"name": "tiris.geojson", "buffer":
                                              json.dumps(aoi).encode(),
                                              "mimeType": "application/geo+json"}])
    page.fill("#date", "2020-02")
    page.select_option("#model", "dynamic-world")
    page.click("#start")


def _map_pixels(page, layer: str) -> np.ndarray:
    """The map's pixels (RGB) once every tile of `layer` is drawn and the picture is still."""
    page.wait_for_function("""layer => {
        const tiles = [...document.querySelectorAll(`.${layer}-layer img`)];
        return tiles.length > 0 && tiles.every(t => t.classList.contains('leaflet-tile-loaded')
                                                && getComputedStyle(t).opacity === '1');
    }""", arg=layer)
    shot = page.locator("#map").screenshot()
    for _ in range(20):  # a pan may still be moving the tiles
        time.sleep(0.1)
        shot, before = page.locator("#map").screenshot(), shot
        if shot == before:
            break
    return np.asarray(Image.open(BytesIO(shot)).convert("RGB")).astype(int)


def _aoi_box(page) -> tuple[slice, slice]:
    """Rows and columns of the map's pixels inside the AOI's outline (the outline left out)."""
    box = page.evaluate("""() => {
        const map = document.getElementById('map').getBoundingClientRect();
        const aoi = document.querySelector('.leaflet-overlay-pane path').getBoundingClientRect();
        return [aoi.top - map.top, aoi.bottom - map.top, aoi.left - map.left,
                aoi.right - map.left];
    }""")
    top, bottom, left, right = (round(v) for v in box)
    return slice(top + 3, bottom - 3), slice(left + 3, right - 3)


def _share(pixels: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float((np.abs(pixels - colour).max(axis=-1) <= 2).mean())


def test_a_map_started_from_the_page_is_drawn_with_its_legend_and_files(page, server):
    _start(page, DESERT_AOI)
    page.wait_for_function("['done', 'failed', 'cancelled'].includes("
                           "document.getElementById('state').textContent)", timeout=120_000)
    assert page.text_content("#state") == "done", page.text_content("#error")
    job = page.evaluate("new URLSearchParams(location.hash.slice(1)).get('job')")
    status = httpx.get(f"{server}/maps/{job}").json()
    assert status["state"] == "done"
    assert status["request"]["date"] == "2020-02"
    assert status["request"]["model"] == "dynamic-world"
    assert page.text_content("#progress-text") == \
        f"{status['progress']['total']:,} / {status['progress']['total']:,} cells"

    assert "snow_and_ice" in [row["class"] for row in status["classes"]]
    for row in status["classes"]:
        assert re.fullmatch(r"#[0-9A-F]{6}", row["color"]), row  # from the Item, by code
        cells = page.locator(f"#legend tr[data-class='{row['class']}'] td")
        assert cells.nth(2).text_content() == f"{row['area_km2']:.2f}"
        assert cells.nth(3).text_content() == f"{row['percent']:.1f}"
    swatch = page.eval_on_selector("#legend tr[data-class='bare'] .swatch",
                                   "e => getComputedStyle(e).backgroundColor")
    assert swatch == "rgb({}, {}, {})".format(*BARE)
    links = page.eval_on_selector_all("#files a", "a => a.map(e => e.getAttribute('href'))")
    assert links == [f"maps/{job}/files/{name}" for name in status["files"]]

    drawn = _map_pixels(page, "landcover")
    if os.environ.get("GEOLULC_UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=SCREENSHOT)
    assert page.text_content("#error") == ""  # no tile failed
    inside = _aoi_box(page)
    outside = np.ones(drawn.shape[:2], bool)
    outside[inside] = False
    # In the AOI the classified pixels are drawn in the palette's colours, masked ones are not.
    classified = sum(row["pixels"] for row in status["classes"]) / status["progress"]["total"]
    assert sum(_share(drawn[inside], c) for c in PALETTE) == pytest.approx(classified, abs=0.03)
    assert _share(drawn[outside], BARE) < 0.01

    page.uncheck("#show-landcover")  # the scene's true colour under it, over the whole view
    true_colour = _map_pixels(page, "truecolor")
    assert _share(true_colour[inside], BARE) < 0.01
    assert _share(true_colour, BACKGROUND) < 0.01
    assert page.text_content("#error") == ""

    page.fill("#date", "2021-07")  # the address alone must bring the job's month back
    page.reload()
    expect(page.locator("#state")).to_have_text("done")
    assert page.input_value("#date") == "2020-02"
    expect(page.locator(".leaflet-overlay-pane path")).to_have_count(1)  # the area outline
    _map_pixels(page, "truecolor")
    assert _aoi_box(page) == inside  # drawn where it was before the reload
    assert page.text_content("#error") == ""


def test_refused_areas_and_broken_geojson_are_shown_in_one_line(page):
    too_big = {"type": "Polygon",
               "coordinates": [[[-12, 20], [-2, 20], [-2, 30], [-12, 30], [-12, 20]]]}
    _start(page, too_big)
    expect(page.locator("#error")).to_contain_text("km²")
    assert page.text_content("#state") == ""  # no job was made
    page.fill("#aoi-text", '{"type": "Polygon", ')
    page.click("#aoi-use")
    expect(page.locator("#error")).to_contain_text("GeoJSON: ")
    assert "\n" not in page.text_content("#error")


def test_a_job_cancelled_from_the_page_stops(page, server):
    _start(page, DESERT_AOI)
    page.click("#cancel")  # enabled once the job is accepted
    expect(page.locator("#state")).to_have_text("cancelled")
    job = page.evaluate("new URLSearchParams(location.hash.slice(1)).get('job')")
    assert httpx.get(f"{server}/maps/{job}").json()["state"] == "cancelled"
    assert page.is_enabled("#start") and not page.is_enabled("#cancel")
