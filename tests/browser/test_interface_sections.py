"""Every section of the interface page in a real Chromium from file://: trajectories, layers,
bookmarks, timeline (frame info, navigator, scrubber, line graphs), attribution rows, legend,
feature popup, hotkeys and URL state, with no console errors or warnings (the ``page`` fixture
fails on any). Screenshots go to $RLV_SCREENSHOTS (default: the test's tmp_path). First paint
and scrub speed are benchmarks/interface_fps.py's.

The data comes from ``small_interface`` (conftest.py); RLV_INTERFACE=/path/to/interface.html runs
the same tests on another interface, e.g. a full-size one.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from understanding_rl_vision.contract import read_payload

VIEWPORT = {"width": 1280, "height": 800}
DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
MAP = "canvas.map"


@pytest.fixture
def interface(request) -> Path:
    override = os.environ.get("RLV_INTERFACE")
    return Path(override) if override else request.getfixturevalue("small_interface")


@pytest.fixture
def manifest(interface):
    return read_payload(interface.parent / "data", "manifest")


@pytest.fixture
def screenshots(tmp_path) -> Path:
    directory = Path(os.environ.get("RLV_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def open_page(page, interface: Path, query: str = ""):
    page.set_viewport_size(VIEWPORT)
    page.goto(interface.as_uri() + query)
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)


def settle(page, frames: int = 3):
    """Let pending loads resolve and a few animation frames draw."""
    page.evaluate(
        """(n) => new Promise((done) => {
             const step = () => (n-- > 0 ? requestAnimationFrame(step) : setTimeout(done, 30));
             setTimeout(step, 30);
           })""",
        frames,
    )


def frame_number(page) -> int:
    return int(page.locator(".frame-number").inner_text())


def map_pixels(page, index: int = 0) -> str:
    """The attribution canvas as a data URL: it is drawn from numbers only, so it stays readable."""
    return page.evaluate("([sel, i]) => document.querySelectorAll(sel)[i].toDataURL()", [MAP, index])


def wait_for_url(page, **params):
    expected = "&".join(f"{k}={v}" for k, v in params.items())
    page.wait_for_function(
        "(want) => want.split('&').every((p) => location.search.includes(p))",
        arg=expected,
        timeout=5_000,
    )


def test_sections_click_through(page, interface, manifest, screenshots):
    open_page(page, interface)
    assert page.locator("h1").inner_text() == f"{manifest.agent} on {manifest.env_id}"
    for heading in ("Trajectories", "Layer", "Bookmarks", "Hotkeys", "Timeline", "Attribution"):
        assert page.get_by_role("heading", name=heading, exact=False).count() >= 1, heading
    page.screenshot(path=screenshots / "main-1280x800.png")

    # Trajectories: one radio and one frame strip each.
    trajectories = page.get_by_role("radio", name="trajectory")
    assert trajectories.count() == len(manifest.trajectory_lengths)
    assert page.locator(".trajectory-strip canvas").count() == len(manifest.trajectory_lengths)
    if len(manifest.trajectory_lengths) > 1:
        trajectories.nth(1).check()
        settle(page)
        assert frame_number(page) == 1
        wait_for_url(page, trajectory=2, frame=1)
        trajectories.nth(0).check()
        settle(page)

    # Layers: one radio per layer, labelled by its label; the legend follows the layer.
    layer_radios = page.locator("input[name=rlv-layer]")
    assert layer_radios.count() == len(manifest.layers)
    for index, layer in enumerate(manifest.layers[:2]):
        layer_radios.nth(index).check()
        settle(page)
        assert layer.label in page.locator("#attribution-heading").inner_text()
        assert page.locator(".legend button.item").count() == len(layer.features) + 1  # + residual
        wait_for_url(page, layer=index + 1)

    # Frame info and the navigator.
    page.get_by_role("button", name="step forward").click()
    assert frame_number(page) == 2
    page.get_by_role("button", name="jump to end").click()
    assert frame_number(page) == manifest.trajectory_lengths[0]
    page.get_by_role("button", name="step back").click()
    assert frame_number(page) == manifest.trajectory_lengths[0] - 1
    page.get_by_role("button", name="jump to start").click()
    assert frame_number(page) == 1
    info = page.locator(".frame-info").inner_text()
    for label in ("Frame", "Last reward", "Next action", "Policy"):
        assert label in info
    # the first frame starts an episode
    assert page.locator(".frame-info .badge", has_text="new episode").count() == 1
    assert page.locator(".policy .segment").count() == len(manifest.action_names)
    assert page.locator(".frame-info .action").inner_text() in manifest.action_names

    fps = page.get_by_role("spinbutton")
    assert float(fps.input_value()) == manifest.fps
    fps.fill("30")
    page.get_by_role("button", name="play forwards").click()
    page.wait_for_function("Number(document.querySelector('.frame-number').textContent) > 3")
    page.get_by_role("button", name="pause").click()
    assert page.get_by_role("button", name="play forwards").count() == 1
    stopped = frame_number(page)
    page.get_by_role("button", name="play backwards").click()
    page.wait_for_function(f"Number(document.querySelector('.frame-number').textContent) < {stopped}")
    page.get_by_role("button", name="pause").click()

    # Scrubber: press and drag.
    scrubber = page.get_by_role("slider", name="frame scrubber")
    box = scrubber.bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    assert frame_number(page) == 1
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    count = min(256, manifest.trajectory_lengths[0])
    assert abs(frame_number(page) - (int(0.6 * count) + 1)) <= 1
    assert scrubber.get_attribute("aria-valuenow") == str(frame_number(page))

    # Line graphs: the advantage and each row's output, with the current value.
    graphs = page.locator(".graph")
    assert graphs.count() == 2
    assert graphs.nth(0).locator(".label").inner_text() == "advantage"
    assert graphs.nth(1).locator(".label").inner_text() == manifest.outputs[0]
    assert graphs.nth(0).locator("path").get_attribute("d").startswith("M")

    # Attribution rows: add one, choose an output, the options, remove it.
    page.get_by_role("button", name="add row").click()
    settle(page)
    rows = page.locator("article.row")
    assert rows.count() == 2
    logit = next(i for i, name in enumerate(manifest.outputs) if name.startswith("logit:"))
    rows.nth(1).get_by_role("combobox").select_option(str(logit))
    page.wait_for_function(f"document.querySelectorAll('{MAP}').length === 4")
    settle(page)
    assert page.locator(".graph .label", has_text=manifest.outputs[logit]).count() == 1
    group = next(i for i, name in enumerate(manifest.outputs) if name.startswith("group:"))
    rows.nth(1).get_by_role("combobox").select_option(str(group))
    settle(page)
    assert page.locator(".graph .label", has_text=manifest.outputs[group]).count() == 1
    page.get_by_label("combine positive and negative").check()
    settle(page)
    assert page.locator(MAP).count() == 2 and page.locator("canvas.map[data-mode=combined]").count() == 2
    page.get_by_label("show residual").check()
    page.get_by_label("overlay on observation").uncheck()
    settle(page)
    page.screenshot(path=screenshots / "two-rows-combined.png")
    page.get_by_label("combine positive and negative").uncheck()
    page.get_by_label("show residual").uncheck()
    page.get_by_label("overlay on observation").check()
    page.get_by_role("button", name=f"remove the {manifest.outputs[group]} row").click()
    assert rows.count() == 1
    assert page.get_by_role("button", name=f"remove the {manifest.outputs[0]} row").is_disabled()

    # Bookmarks: both groups, links that jump.
    low = [b for b in manifest.bookmarks if b.kind == "low"]
    high = [b for b in manifest.bookmarks if b.kind == "high"]
    bookmarks = page.locator("section[aria-labelledby=bookmarks-heading]")
    if low:
        assert "Unexpected failures" in bookmarks.inner_text()
    if high:
        assert "Unexpected successes" in bookmarks.inner_text()
    for bookmark in (low + high)[:2]:
        text = f"trajectory {bookmark.trajectory + 1}, frame {bookmark.frame + 1}"
        page.get_by_role("link", name=text, exact=True).first.click()
        settle(page)
        assert frame_number(page) == bookmark.frame + 1
        assert trajectories.nth(bookmark.trajectory).is_checked()
        wait_for_url(page, trajectory=bookmark.trajectory + 1, frame=bookmark.frame + 1)
        assert page.get_by_role("link", name=text, exact=True).first.get_attribute("aria-current") == "location"


def test_hotkeys(page, interface, manifest):
    open_page(page, interface)
    length = manifest.trajectory_lengths[0]
    page.locator("h1").click()  # focus on nothing in particular
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert frame_number(page) == 3
    page.keyboard.press("ArrowLeft")
    assert frame_number(page) == 2
    page.keyboard.press("End")
    assert frame_number(page) == length
    page.keyboard.press("Home")
    assert frame_number(page) == 1

    # Space plays; while playing the arrows set the direction.
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press(" ")
    assert page.get_by_role("button", name="play forwards").count() == 0  # it shows "pause" now
    page.wait_for_function("Number(document.querySelector('.frame-number').textContent) > 2")
    page.keyboard.press("ArrowLeft")
    assert page.locator("button[aria-pressed=true][title='Play backwards']").count() == 1
    page.keyboard.press("ArrowRight")
    assert page.locator("button[aria-pressed=true][title^='Play forwards']").count() == 1
    page.keyboard.press(" ")
    assert page.locator("button[aria-pressed=true]").count() == 0

    # 1-9 choose layers.
    for index in range(min(len(manifest.layers), 9)):
        page.keyboard.press(str(index + 1))
        assert page.locator("input[name=rlv-layer]").nth(index).is_checked()
        assert manifest.layers[index].label in page.locator("#attribution-heading").inner_text()

    # [ and ] step through the bookmarks in (trajectory, frame) order.
    ordered = sorted({(b.trajectory, b.frame) for b in manifest.bookmarks})
    if ordered:
        page.locator("input[name=rlv-trajectory]").nth(0).check()
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("Home")
        here = (0, 0)
        for trajectory, frame in [b for b in ordered if b > here][:3]:
            page.keyboard.press("]")
            assert frame_number(page) == frame + 1
            assert page.locator("input[name=rlv-trajectory]").nth(trajectory).is_checked()
        later = [b for b in ordered if b > here][:3]
        if len(later) > 1:
            page.keyboard.press("[")
            assert frame_number(page) == later[-2][1] + 1

    # Ignored while typing in a field.
    fps = page.get_by_role("spinbutton")
    before = frame_number(page)
    fps.focus()
    for key in ("ArrowRight", "End", "1", "]"):
        page.keyboard.press(key)
    assert frame_number(page) == before
    # The hotkeys are listed on the page.
    listed = page.locator("section[aria-labelledby=hotkeys-heading]").inner_text()
    for key in ("←", "→", "Space", "Home", "End", "[", "]", "1", "9"):
        assert key in listed


def test_url_state_round_trip(page, interface, manifest):
    trajectory = len(manifest.trajectory_lengths)  # the last one, 1-indexed
    layer = len(manifest.layers)
    frame = min(5, manifest.trajectory_lengths[-1])
    open_page(page, interface, f"?trajectory={trajectory}&layer={layer}&frame={frame}")
    assert frame_number(page) == frame
    assert page.locator("input[name=rlv-trajectory]").nth(trajectory - 1).is_checked()
    assert page.locator("input[name=rlv-layer]").nth(layer - 1).is_checked()
    page.keyboard.press("ArrowRight")
    wait_for_url(page, trajectory=trajectory, layer=layer, frame=frame + 1)
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function(DRAWN, timeout=30_000)
    assert frame_number(page) == frame + 1
    # Out-of-range and malformed values fall back to the defaults.
    open_page(page, interface, "?trajectory=999&layer=abc&frame=-3")
    assert page.locator("input[name=rlv-trajectory]").nth(0).is_checked()
    assert page.locator("input[name=rlv-layer]").nth(manifest.default_layer).is_checked()
    assert frame_number(page) == 1


def test_legend_hover_isolates_a_feature_and_stale_loads_are_dropped(page, interface, manifest):
    open_page(page, interface)
    page.keyboard.press("End")  # a frame away from the first
    settle(page)
    full = map_pixels(page)
    items = page.locator(".legend button.item")
    changed = 0
    for k in range(len(manifest.layers[manifest.default_layer].features)):
        items.nth(k).hover()
        settle(page)
        changed += map_pixels(page) != full
        assert items.nth(k).get_attribute("class").split().count("active") == 1
    page.mouse.move(1, 1)
    settle(page)
    assert changed >= 1, "hovering no feature changed the attribution canvas"
    assert map_pixels(page) == full  # un-hovering draws every feature again
    # The residual item isolates the residual and toggles it.
    items.last.hover()
    settle(page)
    residual_only = map_pixels(page)
    items.last.click()
    assert items.last.get_attribute("aria-pressed") == "true"
    items.last.click()
    page.mouse.move(1, 1)
    settle(page)
    assert residual_only != full

    # Switch layers quickly back and forth: only the last selection's maps are drawn.
    if len(manifest.layers) > 1:
        other = (manifest.default_layer + 1) % len(manifest.layers)
        page.evaluate(
            """([a, b]) => {
                 const radios = document.querySelectorAll('input[name=rlv-layer]');
                 radios[b].click(); radios[a].click(); radios[b].click(); radios[a].click();
               }""",
            [manifest.default_layer, other],
        )
        settle(page, 10)
        assert map_pixels(page) == full


def test_feature_popup(page, interface, manifest, screenshots):
    open_page(page, interface)
    legend = page.locator(".legend button.item")
    legend.nth(0).focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    mosaic = dialog.locator("button.mosaic")
    mosaic.wait_for()
    settle(page)
    layer = manifest.layers[manifest.default_layer]
    assert layer.features[0].name in dialog.locator("h2").inner_text()
    assert dialog.get_by_role("slider").count() == 2
    page.screenshot(path=screenshots / "popup-1280x800.png")

    # The sliders choose among the payload's popups; the wheel zooms.
    feature = read_payload(interface.parent / "data", f"feat-{manifest.default_layer}-0")
    zooms = sorted({p.expand_mult for p in feature.popups})
    zoom = dialog.get_by_role("slider").nth(0)
    if len(zooms) > 1:
        before = zoom.input_value()
        box = mosaic.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -100)
        page.wait_for_function("(v) => document.querySelector('dialog input[type=range]').value !== v", arg=before)
        page.mouse.wheel(0, 100)
        page.wait_for_function("(v) => document.querySelector('dialog input[type=range]').value === v", arg=before)

    # Hovering a patch with an example draws it opaque; clicking shows the whole observation.
    grid_rows, grid_cols = feature.popups[0].grid.shape
    box = mosaic.bounding_box()
    cells = [(r, c) for r in range(grid_rows) for c in range(grid_cols) if feature.popups[0].grid[r, c] >= 0]
    if cells and manifest.observations is not None:
        row, col = cells[0]
        page.mouse.move(1, 1)
        settle(page)
        plain = mosaic.screenshot()
        x = box["x"] + (col + 0.5) * box["width"] / grid_cols
        y = box["y"] + (row + 0.5) * box["height"] / grid_rows
        page.mouse.move(x, y)
        page.wait_for_function("document.querySelector('#popup-cursor').textContent.includes('observation')")
        settle(page, 5)
        assert mosaic.screenshot() != plain
        page.mouse.click(x, y)
        index = int(feature.popups[0].grid[row, col])
        dialog.get_by_role("img", name=f"observation {index + 1}").wait_for()
        page.screenshot(path=screenshots / "popup-observation-1280x800.png")

    # Keyboard: arrows move between patches, Enter shows one; Esc closes and focus returns.
    page.mouse.move(1, 1)
    mosaic.focus()
    page.keyboard.press("ArrowRight")
    assert "row 1, column 1" in dialog.locator("#popup-cursor").inner_text()
    page.keyboard.press("ArrowDown")
    assert "row 2, column 1" in dialog.locator("#popup-cursor").inner_text() or grid_rows == 1
    if feature.popups[0].grid[min(1, grid_rows - 1), 0] >= 0 and manifest.observations is not None:
        page.keyboard.press("Enter")
        index = int(feature.popups[0].grid[min(1, grid_rows - 1), 0])
        dialog.get_by_role("img", name=f"observation {index + 1}").wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('item')")

    # A click outside closes it too.
    legend.nth(1 % (len(layer.features))).click()
    dialog.wait_for()
    page.mouse.click(5, 5)
    dialog.wait_for(state="hidden")


def test_closing_the_popup_before_its_canvases_draw(page, interface, manifest):
    """Choosing a patch and closing the dialog in one task, before the next animation frame:
    the draws scheduled for the popup's canvases are dropped (a CI run once logged
    "Cannot read properties of null (reading 'width')" from exactly this)."""
    layer = manifest.layers[manifest.default_layer]
    examples = [
        (f, int(r), int(c))
        for f in range(len(layer.features))
        for r, c in zip(
            *np.nonzero(
                read_payload(interface.parent / "data", f"feat-{manifest.default_layer}-{f}").popups[0].grid >= 0
            )
        )
    ]
    assert manifest.observations is not None and examples, "the interface needs dataset examples"
    open_page(page, interface)
    for feature, row, col in examples[:: max(1, len(examples) // 5)][:5]:
        page.locator(".legend button.item").nth(feature).click()
        mosaic = page.get_by_role("dialog").locator("button.mosaic")
        mosaic.wait_for()
        settle(page)
        keys = ["ArrowRight"] + ["ArrowDown"] * row + ["ArrowRight"] * col
        closed = page.evaluate(
            """(keys) => new Promise((done) => {
                 const mosaic = document.querySelector("dialog button.mosaic");
                 const press = (key) => mosaic.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
                 keys.forEach(press);  // the cursor to the patch
                 queueMicrotask(() => {
                   press("Enter");  // choose it: its observation canvas appears and a draw is scheduled
                   queueMicrotask(() => {
                     document.querySelector("dialog button.close").click();
                     requestAnimationFrame(() => requestAnimationFrame(
                         () => done(!document.querySelector("dialog").open)));
                   });
                 });
               })""",
            keys,
        )
        assert closed
    assert page.evaluate("document.querySelector('dialog canvas')") is None


def test_runs_from_a_static_http_server(page, interface, manifest):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(interface.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{interface.name}"
        page.set_viewport_size(VIEWPORT)
        page.goto(url + "?frame=2")
        page.wait_for_function(DRAWN, timeout=30_000)
        assert frame_number(page) == 2
        page.keyboard.press("ArrowRight")
        wait_for_url(page, frame=3)
        page.locator(".legend button.item").first.click()
        page.get_by_role("dialog").locator("button.mosaic").wait_for()
        page.keyboard.press("Escape")
        page.get_by_role("dialog").wait_for(state="hidden")
    finally:
        server.shutdown()
        server.server_close()


def test_keyboard_focus_is_visible(page, interface):
    open_page(page, interface)
    page.keyboard.press("Tab")
    seen = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        outline = page.evaluate(
            "() => { const e = document.activeElement, s = getComputedStyle(e);"
            " return [e.tagName, s.outlineStyle, s.outlineWidth]; }"
        )
        tag, style, width = outline
        seen.add(tag)
        assert style != "none" and width != "0px", outline
    assert "INPUT" in seen


def test_every_arrow_key_press_draws_its_frame(page, interface, manifest):
    """Scrubbing with the arrow keys shows each frame it passes and draws its attribution once;
    presses that come faster than animation frames are all applied and drawn once, at the frame
    they end on. (How fast: benchmarks/interface_fps.py.)"""
    open_page(page, interface)
    page.locator("h1").click()  # focus on nothing in particular

    def drawn():
        return page.evaluate("[window.__rlv_metrics.framesDrawn, window.__rlv_metrics.lastFrame]")

    count, last = drawn()
    assert last == 0
    steps = min(manifest.trajectory_lengths[0] - 1, 30)
    for key, frames in (("ArrowRight", range(1, steps + 1)), ("ArrowLeft", range(steps - 1, -1, -1))):
        for frame in frames:
            page.keyboard.press(key)
            assert frame_number(page) == frame + 1
            page.wait_for_function("(f) => window.__rlv_metrics.lastFrame === f", arg=frame)
            count += 1
            assert drawn() == [count, frame], key

    page.evaluate(
        """(n) => {
             const press = () => window.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}));
             for (let i = 0; i < n; i++) press();
           }""",
        steps,
    )
    assert frame_number(page) == steps + 1
    page.wait_for_function("(f) => window.__rlv_metrics.lastFrame === f", arg=steps)
    settle(page)
    assert drawn() == [count + 1, steps]
