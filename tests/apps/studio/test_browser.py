"""The studio in a real browser: headless chromium (Debian's) driven by Playwright through every tab — uploads a
file, draws strokes on the canvas, moves a slider, paints a mask — checking that the pictures change as they should.

Skipped, with the reason, where Playwright or a chromium cannot be had. With STYLEBRIDGE_STUDIO_SCREENSHOTS=DIR
each tab is also saved as DIR/<tab>.png (how docs/studio/ is made).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="browser tests need playwright (pip install 'stylebridge[studio]')")

SHOTS = os.environ.get("STYLEBRIDGE_STUDIO_SCREENSHOTS")


def chromium_path() -> str | None:
    for name in (os.environ.get("STYLEBRIDGE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    with playwright_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        except Exception as e:
            pytest.skip(f"no chromium to drive: {'not installed (apt-get install chromium)' if exe is None else e}")
        yield b
        b.close()


@pytest.fixture
def page(browser, live_server):
    pg = browser.new_page(viewport={"width": 1200, "height": 820})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(live_server.url + "/")
    pg.wait_for_function("window.studio && window.studio.ready === true")
    settle(pg)
    yield pg
    assert not errors, errors
    pg.close()


def settle(pg, quiet_ms: int = 250) -> None:
    """Wait until no request is out and none starts for ``quiet_ms`` (latest-only queues send one more)."""
    for _ in range(200):
        pg.wait_for_function("window.studio.inflight === 0", timeout=60_000)
        n = pg.evaluate("window.studio.updates")
        pg.wait_for_timeout(quiet_ms)
        if pg.evaluate("window.studio.inflight") == 0 and pg.evaluate("window.studio.updates") == n:
            return


def picture(pg, selector: str) -> torch.Tensor:
    """The image an <img> shows (a data URL from the server) → [3, H, W] in [-1, 1]."""
    from stylebridge.core.imageio import to_tensor

    src = pg.get_attribute(selector, "src")
    assert src and src.startswith("data:image/png;base64,"), f"{selector} shows no picture"
    return to_tensor(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def stroke(pg, selector: str, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through ``points`` (fractions of the element's box)."""
    box = pg.locator(selector).bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    pg.mouse.move(*xy[0])
    pg.mouse.down()
    for x, y in xy[1:]:
        pg.mouse.move(x, y, steps=6)
    pg.mouse.up()


def shot(pg, tab: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        # 256 colours: a third of the bytes for the repository, no visible change on this page.
        img = Image.open(io.BytesIO(pg.screenshot())).convert("RGB")
        img.quantize(256, method=Image.Quantize.MEDIANCUT).save(Path(SHOTS) / f"{tab}.png", optimize=True)


def open_tab(pg, tab: str) -> None:
    pg.click(f"nav button[data-tab={tab}]")
    assert pg.is_visible(f"#tab-{tab}")


def test_generate_tab(page):
    srcs = lambda: page.eval_on_selector_all("#gen-out img", "els => els.map(e => e.src)")  # noqa: E731
    first = srcs()
    assert len(first) == 4 and len(set(first)) == 4
    assert len(page.query_selector_all("#gen-mixed img")) == 4
    page.fill("#gen-psi", "0")
    settle(page)
    assert len(set(srcs())) == 1  # ψ 0: every seed gives the mean face
    page.fill("#gen-psi", "0.7")
    page.fill("#gen-seeds", "10-13")
    page.dispatch_event("#gen-seeds", "input")
    settle(page)
    assert not set(srcs()) & set(first)
    mixed = page.eval_on_selector_all("#gen-mixed img", "els => els.map(e => e.src)")
    page.fill("#gen-crossover", "1")
    settle(page)
    assert page.eval_on_selector_all("#gen-mixed img", "els => els.map(e => e.src)") != mixed
    shot(page, "generate")


def test_translate_tab_draw_upload_samples_walk(page, face_png, tmp_path):
    open_tab(page, "translate")
    before = picture(page, "#tr-out")
    # Ink strokes across the forehead and a thick one down the left cheek: the face changes where they are.
    page.fill("#tr-size", "14")
    stroke(page, "#tr-canvas", [(0.2, 0.2), (0.5, 0.12), (0.8, 0.2)])
    stroke(page, "#tr-canvas", [(0.25, 0.35), (0.25, 0.7)])
    settle(page)
    after = picture(page, "#tr-out")
    diff = (after - before).abs().mean(0)
    assert diff.mean() > 0.01
    assert diff[8:48, 8:24].mean() > diff[48:, 40:].mean()  # more change at the strokes than far from them
    page.fill("#tr-samples", "3")
    page.dispatch_event("#tr-samples", "input")
    settle(page)
    assert len(page.query_selector_all("#tr-samples-out img")) == 3
    page.click("#tr-walk")
    page.wait_for_selector("#tr-walk-out:not([hidden])")
    settle(page)
    a = page.get_attribute("#tr-walk-out", "src")
    page.wait_for_timeout(400)
    assert page.get_attribute("#tr-walk-out", "src") != a  # the walk plays
    shot(page, "translate")
    # An uploaded face lands on the canvas and the translation follows it.
    page.set_input_files("#tr-file", str(face_png))
    settle(page)
    face = Image.open(face_png).convert("RGB").resize((64, 64), Image.LANCZOS)
    from stylebridge.core.imageio import to_tensor

    target = to_tensor(face)
    assert (picture(page, "#tr-out") - target).pow(2).mean() < (after - target).pow(2).mean()
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    page.set_input_files("#tr-file", str(bad))
    page.wait_for_function("document.getElementById('status').textContent.includes('not an image')")


def test_edit_tab_slider_moves_the_smile(page):
    import stylebridge
    from stylebridge.edit.finders import attribute_scores

    open_tab(page, "edit")
    page.click("#ed-example")
    settle(page)
    before = picture(page, "#ed-recon")
    assert torch.equal(picture(page, "#ed-out"), before)  # sliders at 0: the inversion itself
    slider = "#ed-sliders input[data-direction='synthfaces-64-smile']"
    page.fill(slider, page.get_attribute(slider, "max"))
    settle(page)
    after = picture(page, "#ed-out")
    net = stylebridge.load("synthfaces-domain").eval()
    with torch.no_grad():
        s = attribute_scores(net, torch.stack([before, after]), "smile")
    assert s[1] > s[0] + 0.2, s
    from safetensors.torch import load as load_safetensors

    blob = page.request.get(page.evaluate("document.getElementById('ed-download-latent').href"))
    assert blob.ok
    latents = load_safetensors(blob.body())
    assert not torch.equal(latents["w_plus"], latents["edited"])  # the slider's edit is in the download
    assert page.get_attribute("#ed-download-image", "href").startswith("data:image/png")
    shot(page, "edit")
    page.click("#ed-reset")
    settle(page)
    assert torch.equal(picture(page, "#ed-out"), before)


def test_local_edit_tab_paint_mask_and_frames(page, studio):
    from stylebridge.edit.stylemap import region_mask

    open_tab(page, "local")
    settle(page)
    assert picture(page, "#lo-source").shape[-1] == 256
    src = studio.example("face", int(page.input_value("#lo-source-seed")))
    # Paint over the reference's hair (seed 11: long hair): across the top and down both sides.
    page.fill("#lo-size", "40")
    stroke(page, "#lo-canvas", [(0.28, 0.3), (0.4, 0.2), (0.6, 0.2), (0.72, 0.3)])
    stroke(page, "#lo-canvas", [(0.27, 0.3), (0.27, 0.85)])
    stroke(page, "#lo-canvas", [(0.73, 0.3), (0.73, 0.85)])
    settle(page)
    blend = picture(page, "#lo-out")
    ref = studio.example("face", int(page.input_value("#lo-ref-seed")))
    hair = region_mask("hair", 64) > 0
    assert (blend - ref)[:, hair].abs().mean() < (blend - src)[:, hair].abs().mean()
    page.click("#lo-frames")
    settle(page)
    assert len(page.query_selector_all("#lo-strip img")) == 16
    shot(page, "local")


def test_compare_tab_upload(page, face_png, studio):
    open_tab(page, "compare")
    page.set_input_files("#cmp-file", str(face_png))
    settle(page)
    names = page.eval_on_selector_all("#cmp-out figure", "els => els.map(e => e.dataset.method)")
    assert names == list(studio.translators)
    captions = page.eval_on_selector_all("#cmp-out figcaption", "els => els.map(e => e.textContent)")
    assert all(c.endswith(" ms") for c in captions)
    shot(page, "compare")
