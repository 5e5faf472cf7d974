"""The page's record button in a real Chromium from file://: it steps through every frame of the
current trajectory, composites the observation and every attribution view (rows and the compare
view) over a caption strip, and downloads a WebM that PyAV decodes back into exactly one picture
per frame, stamped at the page's fps, whose observation is the trajectory's frame. Also the R
hotkey, cancelling (no download, the page back as it was) and the fallbacks when WebCodecs or
every encoder is missing.

Opened from file://, the page may not read its own sprite sheets into a video (Chromium treats
each file as another origin), so the first recording asks for the data folder: the tests answer
the file chooser with it. The data: a real small run with four methods
(:func:`chromium_setup.build_methods_interface`), 2 trajectories of 24 frames.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from chromium_setup import build_methods_interface

from understanding_rl_vision.contract import read_manifest, read_payload, read_sprite, trajectory_key

VIEWPORT = {"width": 1280, "height": 900}
DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
BUTTON = "button.record"
# Trajectory 2 from its 6th frame, an integrated-gradients row (positive and negative views), a
# Grad-CAM row, and the compare view of the value (one cell per method): 1 + 2 + 1 + 4 tiles.
QUERY = "?trajectory=2&frame=6&rows=1.ig,1.gradcam&compare=1"
TILES = 8


@pytest.fixture(scope="module")
def interface(tmp_path_factory) -> Path:
    return build_methods_interface(tmp_path_factory.mktemp("record"))


@pytest.fixture(scope="module")
def manifest(interface):
    return read_manifest(interface.parent / "data")


def open_page(page, interface: Path, query: str = QUERY):
    page.set_viewport_size(VIEWPORT)
    page.goto(interface.as_uri() + query)
    page.wait_for_function(DRAWN, timeout=30_000)
    page.wait_for_function(f"!document.querySelector('{BUTTON}').disabled", timeout=10_000)


def answer_choosers(page, interface: Path) -> list[str]:
    """Answer every file chooser with the data folder; returns the list of choosers answered. Set
    up before the page asks: a chooser opened before Playwright intercepts them would be missed."""
    answered: list[str] = []

    def answer(chooser):
        answered.append("data")
        chooser.set_files(interface.parent / "data")

    page.on("filechooser", answer)
    return answered


def cancel_at(page, progress: str, how: str):
    """Cancel the recording as soon as the button shows ``progress`` (from inside the page, so the
    moment is exact): ``how`` is "click" or a key for the window. What the page looked like then
    goes to window.__cancelled."""
    page.evaluate(
        """([progress, how]) => {
             window.__cancelled = null;
             const button = document.querySelector("button.record");
             const observer = new MutationObserver(() => {
               if (!button.textContent.includes(progress)) return;
               observer.disconnect();
               window.__cancelled = {
                 sidebarInert: document.querySelector(".sidebar").inert,
                 buttonInert: button.closest("[inert]") !== null,
                 dimmed: document.querySelectorAll("[data-record-dimmed]").length,
               };
               if (how === "click") button.click();
               else window.dispatchEvent(new KeyboardEvent("keydown", { key: how, bubbles: true }));
             });
             observer.observe(button, { subtree: true, childList: true, characterData: true });
           }""",
        [progress, how],
    )


def cancelled(page) -> dict:
    page.wait_for_function("window.__cancelled", timeout=30_000)
    return page.evaluate("window.__cancelled")


def idle(page):
    page.wait_for_function(f"document.querySelector('{BUTTON}').textContent.trim() === 'record'", timeout=30_000)


def decode(path: Path) -> tuple[list[np.ndarray], list[Fraction]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in frames], [f.pts * f.time_base for f in frames]


def safe_name(agent: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", agent).strip("-.")


def test_record_button_writes_every_frame_of_the_trajectory(page, interface, manifest, tmp_path):
    trajectory = 1
    length = manifest.trajectory_lengths[trajectory]
    choosers = answer_choosers(page, interface)
    open_page(page, interface)
    assert page.locator(".frame-number").inner_text() == "6"
    button = page.locator(BUTTON)
    assert button.inner_text().strip() == "record"

    with page.expect_download(timeout=60_000) as download:
        button.click()
    assert choosers == ["data"]  # from file://, the page asked for its data folder
    assert download.value.suggested_filename == f"{safe_name(manifest.agent)}-trajectory-{trajectory + 1}.webm"
    video = tmp_path / "recording.webm"
    download.value.save_as(video)
    idle(page)

    # The composite: the observation, then each view of the rows and the compare view, in page order.
    layout = json.loads(button.get_attribute("data-layout"))
    assert layout["frames"] == length and layout["fps"] == manifest.fps
    tiles = layout["tiles"]
    assert len(tiles) == TILES
    labels = [t["label"] for t in tiles[:4]]
    assert labels == [
        ["observation", ""],
        ["Integrated gradients: value", "positive"],
        ["Integrated gradients: value", "negative"],
        ["Grad-CAM: value", f"Grad-CAM at layer {manifest.layers[manifest.default_layer].label}"],
    ]
    assert all(t["label"][0].startswith("compare: ") for t in tiles[4:])
    value = manifest.outputs.index("value")
    compared = [m.title for m in manifest.methods if value in m.outputs]
    assert [t["label"][0][len("compare: ") :] for t in tiles[4:]] == compared

    # Every frame exactly once, stamped at i / fps (the WebM counts milliseconds), at the composite's size.
    pictures, times = decode(video)
    assert len(pictures) == length
    assert all(p.shape == (layout["height"], layout["width"], 3) for p in pictures)
    assert [round(float(t) * 1000) for t in times] == [round(i * 1000 / manifest.fps) for i in range(length)]

    # Each frame's observation is the trajectory's frame i. VP8 is lossy, so each sprite pixel is
    # compared with the mean of the video pixels that show it (the page upscales without smoothing):
    # frame i's picture is close to sprite i, and closer to it than to any sprite that looks different.
    data = interface.parent / "data"
    sprites = read_payload(data, trajectory_key(trajectory)).frames
    first = tiles[0]
    box = (slice(first["y"], first["y"] + first["height"]), slice(first["x"], first["x"] + first["width"]))
    rows = ((np.arange(first["height"]) + 0.5) * sprites.height / first["height"]).astype(int)
    cols = ((np.arange(first["width"]) + 0.5) * sprites.width / first["width"]).astype(int)

    def shown(picture: np.ndarray) -> np.ndarray:
        sums = np.zeros((sprites.height, sprites.width, 3))
        counts = np.zeros((sprites.height, sprites.width, 1))
        np.add.at(sums, (rows[:, None], cols[None, :]), picture[box])
        np.add.at(counts, (rows[:, None], cols[None, :]), 1)
        return sums / counts

    truth = [read_sprite(data, sprites, i)[..., :3].astype(np.float64) for i in range(length)]
    for i, picture in enumerate(pictures):
        seen = shown(picture)
        errors = [float(np.abs(seen - sprite).mean()) for sprite in truth]
        assert errors[i] < 6, (i, errors[i])
        for j, sprite in enumerate(truth):
            if float(np.abs(sprite - truth[i]).mean()) > 1:
                assert errors[i] < errors[j], (i, j, errors[i], errors[j])
    background = 255.0  # the composite's white
    assert abs(float(pictures[0][box].mean()) - background) > 20
    assert float(np.abs(pictures[0][box].astype(np.float32) - pictures[-1][box]).mean()) > 2
    # The maps are drawn too: in colour over the grey observation, in some frame at least (Grad-CAM
    # of a random agent is empty in some frames).
    for tile in tiles[1:]:
        region = (slice(tile["y"], tile["y"] + tile["height"]), slice(tile["x"], tile["x"] + tile["width"]))
        colour = [float(np.ptp(p[region].astype(np.int16), axis=-1).mean()) for p in pictures]
        assert max(colour) > 3, (tile["label"], max(colour))

    # Afterwards: the page as it was, and a link to download the file again.
    assert page.locator(".frame-number").inner_text() == "6"
    assert page.evaluate("document.querySelectorAll('[inert], [data-record-dimmed]').length") == 0
    assert page.locator("a.saved").get_attribute("download") == download.value.suggested_filename


def test_hotkey_records_and_cancelling_downloads_nothing(page, interface):
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    choosers = answer_choosers(page, interface)
    open_page(page, interface, "?frame=6")
    assert "record the trajectory as a video" in page.locator("section[aria-labelledby=hotkeys-heading]").inner_text()
    page.locator("h1").click()

    # R starts (asking for the data folder once); clicking the button at frame 3 cancels.
    cancel_at(page, "recording 3/", "click")
    page.keyboard.press("r")
    seen = cancelled(page)
    assert seen["sidebarInert"] and not seen["buttonInert"] and seen["dimmed"] > 0  # the rest of the page is off
    idle(page)

    # R again starts without asking (the files are remembered); Escape cancels.
    cancel_at(page, "recording 2/", "Escape")
    page.keyboard.press("r")
    cancelled(page)
    idle(page)
    assert choosers == ["data"]

    page.wait_for_timeout(500)
    assert downloads == []
    assert page.locator("a.saved").count() == 0 and page.locator(".recorder [role=alert]").count() == 0
    assert page.locator(".frame-number").inner_text() == "6"
    assert page.evaluate("document.querySelectorAll('[inert], [data-record-dimmed]').length") == 0
    # The page works again: the hotkeys step frames.
    page.keyboard.press("ArrowRight")
    assert page.locator(".frame-number").inner_text() == "7"


def test_fallbacks_media_recorder_and_no_encoder(page, browser, interface, manifest, tmp_path):
    # Without WebCodecs: MediaRecorder on the composite's captureStream(0), one requestFrame() a frame.
    page.add_init_script("delete window.VideoEncoder; delete window.VideoFrame;")
    answer_choosers(page, interface)
    open_page(page, interface, "")
    with page.expect_download(timeout=60_000) as download:
        page.locator(BUTTON).click()
    video = tmp_path / "fallback.webm"
    download.value.save_as(video)
    pictures, times = decode(video)
    layout = json.loads(page.locator(BUTTON).get_attribute("data-layout"))
    length = manifest.trajectory_lengths[0]
    # MediaRecorder stamps frames with the wall clock and its encoder may drop a frame that arrives
    # while it is busy (Chromium documents no guarantee), so one frame either way is tolerated and the
    # spacing is checked on average only; the WebCodecs path above is exact.
    assert abs(len(pictures) - length) <= 1
    assert all(p.shape == (layout["height"], layout["width"], 3) for p in pictures)
    spacing = float(times[-1] - times[0]) / (len(times) - 1)
    assert 0.7 / manifest.fps < spacing < 2.0 / manifest.fps

    # Without any encoder: the button is disabled and says why; R is not listed.
    bare = browser.new_page()
    try:
        bare.add_init_script("delete window.VideoEncoder; delete window.VideoFrame; delete window.MediaRecorder;")
        bare.set_viewport_size(VIEWPORT)
        bare.goto(interface.as_uri())
        bare.wait_for_function(DRAWN, timeout=30_000)
        assert bare.locator(BUTTON).is_disabled()
        assert "cannot record video" in bare.locator(BUTTON).get_attribute("title")
        assert "record the trajectory" not in bare.locator("section[aria-labelledby=hotkeys-heading]").inner_text()
    finally:
        bare.close()
