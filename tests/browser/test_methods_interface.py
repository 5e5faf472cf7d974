"""The page's explanation methods in a real Chromium from file://: each row's method menu, map
methods drawn as heatmaps with a colour bar, perturbation's actor and critic in one overlay, the
compare view, the gain control, the method hotkey and the URL round trip, with no console errors
(the ``page`` fixture fails on any).

The data: a real small run with integrated gradients, Grad-CAM, SmoothGrad and perturbation of
the value, the action taken and the actor (:func:`chromium_setup.build_methods_interface`); and a
copy of it whose manifest says Grad-CAM was computed at the default layer only, for what the page
shows at a layer a method lacks.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from chromium_setup import build_methods_interface

from understanding_rl_vision.contract import read_manifest, read_payload, write_manifest

VIEWPORT = {"width": 1280, "height": 900}
DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
PERCENTILE = 0.99
TIMES = "\N{MULTIPLICATION SIGN}"  # the gain is shown as x2, with this sign


@pytest.fixture(scope="session")
def methods_interface(tmp_path_factory) -> Path:
    return build_methods_interface(tmp_path_factory.mktemp("methods"))


@pytest.fixture(scope="session")
def one_layer_interface(methods_interface, tmp_path_factory) -> Path:
    """The same run, its manifest saying Grad-CAM was computed at the default layer only."""
    folder = tmp_path_factory.mktemp("one-layer") / "interface"
    shutil.copytree(methods_interface.parent, folder)
    manifest = read_manifest(folder / "data")
    methods = tuple(
        dataclasses.replace(m, layers=(manifest.default_layer,)) if m.name == "gradcam" else m for m in manifest.methods
    )
    write_manifest(folder / "data", dataclasses.replace(manifest, methods=methods))
    return folder / methods_interface.name


@pytest.fixture
def manifest(methods_interface):
    return read_manifest(methods_interface.parent / "data")


def open_page(page, interface: Path, query: str = ""):
    page.set_viewport_size(VIEWPORT)
    page.goto(interface.as_uri() + query)
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)


def settle(page, frames: int = 3):
    page.evaluate(
        """(n) => new Promise((done) => {
             const step = () => (n-- > 0 ? requestAnimationFrame(step) : setTimeout(done, 30));
             setTimeout(step, 30);
           })""",
        frames,
    )


def page_percentile(*arrays: np.ndarray, q: float = PERCENTILE) -> float:
    """The page's full-colour value at gain 1: the q-quantile of the nonzero |values|."""
    values = np.sort(np.concatenate([np.abs(a[a != 0]).ravel() for a in arrays]).astype(np.float64))
    return float(values[max(math.ceil(q * len(values)) - 1, 0)])


def method_index(manifest, name: str) -> int:
    return next(i for i, m in enumerate(manifest.methods) if m.name == name)


def entry(manifest, name: str):
    return manifest.methods[method_index(manifest, name)]


def payload(interface: Path, manifest, name: str, site, trajectory: int, output: int):
    """A method's payload as the Python reader reads it; site: a layer index or "in"."""
    prefix = entry(manifest, name).key_prefix
    return read_payload(interface.parent / "data", f"{prefix}-{site}-{trajectory}-{output}")


def percentile_of(interface: Path, manifest, name: str, site, trajectory: int, output: int) -> float:
    maps = payload(interface, manifest, name, site, trajectory, output)
    return page_percentile(maps.positive, maps.negative)


def titles_of(manifest, output: int) -> list[str]:
    return [m.title for m in manifest.methods if output in m.outputs]


def names_of(manifest, output: int) -> list[str]:
    return [m.name for m in manifest.methods if output in m.outputs]


def row(page, index: int = 0):
    return page.locator("article.row").nth(index)


def menu_titles(page, index: int = 0) -> list[str]:
    return [t.strip() for t in row(page, index).locator("select.method option").all_inner_texts()]


def choose_method(page, manifest, name: str, index: int = 0):
    row(page, index).locator("select.method").select_option(str(method_index(manifest, name)))
    settle(page)


def painted(page, selector: str) -> int:
    """Pixels with any opacity in a heatmap canvas: it is drawn from numbers only, so it is readable."""
    return page.evaluate(
        """(sel) => {
             const c = document.querySelector(sel);
             const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
             let n = 0;
             for (let i = 3; i < px.length; i += 4) n += px[i] > 0;
             return n;
           }""",
        selector,
    )


def wait_painted(page, selector: str):
    page.wait_for_function(
        "(sel) => { const c = document.querySelector(sel); return c && Number(c.dataset.painted) > 0; }",
        arg=selector,
        timeout=10_000,
    )


def shown_methods(page) -> list[str]:
    return [r.get_attribute("data-method") for r in page.locator("article.row").all()]


def test_method_menu_lists_the_methods_of_the_output_and_draws_a_heatmap(page, methods_interface, manifest):
    assert [m.name for m in manifest.methods] == ["ig", "gradcam", "smoothgrad", "perturbation"]
    value, action, actor = (manifest.outputs.index(name) for name in ("value", "action", "actor"))
    open_page(page, methods_interface)
    assert menu_titles(page) == titles_of(manifest, value)
    assert shown_methods(page) == ["ig"]
    assert row(page).locator("canvas.map").count() >= 1  # integrated gradients: channel views as before
    assert page.locator(".legend").count() == 1

    choose_method(page, manifest, "gradcam")
    wait_painted(page, "article.row canvas.heatmap")
    assert painted(page, "article.row canvas.heatmap") > 0
    assert row(page).locator("canvas.map").count() == 0
    assert page.locator(".legend").count() == 0  # no channel row left
    assert shown_methods(page) == ["gradcam"]

    # The colour bar of a non-negative map: 0, and the payload's 99th percentile of nonzero values.
    layer = manifest.default_layer
    maps = payload(methods_interface, manifest, "gradcam", layer, 0, value)
    expected = page_percentile(maps.positive, maps.negative)
    assert 0 < expected <= float(maps.positive.max())
    bar = row(page).locator(".colorbar")
    assert bar.count() == 1
    assert float(bar.get_attribute("data-low")) == 0
    assert float(bar.get_attribute("data-high")) == pytest.approx(expected, rel=1e-5)
    text = bar.inner_text()
    assert f"{entry(manifest, 'gradcam').title} of value" in text
    assert f"{float(f'{expected:.3g}'):g}" in text

    # Another output of the same method keeps the method; one it lacks switches to one that has it.
    outputs = row(page).locator("select").first
    outputs.select_option(str(action))
    settle(page)
    assert shown_methods(page) == ["gradcam"]
    assert "logit of the action taken" in row(page).locator(".colorbar").inner_text()
    outputs.select_option(str(actor))
    settle(page)
    assert shown_methods(page) == ["perturbation"]
    assert menu_titles(page) == titles_of(manifest, actor)

    # A signed input map: diverging colours, symmetric ends.
    outputs.select_option(str(value))
    choose_method(page, manifest, "smoothgrad")
    wait_painted(page, "article.row canvas.heatmap")
    bar = row(page).locator(".colorbar")
    assert float(bar.get_attribute("data-low")) == -float(bar.get_attribute("data-high")) < 0
    assert "at the input" in row(page).inner_text()
    expected = percentile_of(methods_interface, manifest, "smoothgrad", "in", 0, value)
    assert float(bar.get_attribute("data-high")) == pytest.approx(expected, rel=1e-5)


def test_a_method_missing_at_a_layer_says_so(page, one_layer_interface):
    manifest = read_manifest(one_layer_interface.parent / "data")
    layer = manifest.default_layer
    other = next(i for i in range(len(manifest.layers)) if i != layer)
    open_page(page, one_layer_interface)
    choose_method(page, manifest, "gradcam")
    wait_painted(page, "article.row canvas.heatmap")
    page.locator("input[name=rlv-layer]").nth(other).check()
    settle(page)
    note = row(page).locator(".note")
    assert note.count() == 1 and page.locator("article.row canvas.heatmap").count() == 0
    assert f"not computed at layer {manifest.layers[other].label}" in note.inner_text()
    assert f"only at {manifest.layers[layer].label}" in note.inner_text()
    option = row(page).locator(f"select.method option[value='{method_index(manifest, 'gradcam')}']")
    assert f"(not at layer {manifest.layers[other].label})" in option.inner_text()
    # Cycling skips it here; input maps and channel methods stay available.
    page.locator("h1").click()
    seen = set()
    for _ in range(len(manifest.methods)):
        page.keyboard.press("m")
        seen.add(shown_methods(page)[0])
    assert seen == {"ig", "smoothgrad", "perturbation"}
    # The compare view's Grad-CAM cell says so too.
    page.get_by_label("compare methods").check()
    assert "not computed at layer" in page.locator("section.compare li[data-method=gradcam]").inner_text()
    page.locator("input[name=rlv-layer]").nth(layer).check()
    wait_painted(page, "section.compare li[data-method=gradcam] canvas.heatmap")


def test_gain_changes_the_drawn_scale(page, methods_interface, manifest):
    open_page(page, methods_interface)
    choose_method(page, manifest, "gradcam")
    wait_painted(page, "article.row canvas.heatmap")
    page.keyboard.press("End")
    settle(page)
    bar = row(page).locator(".colorbar")
    high = float(bar.get_attribute("data-high"))
    before = page.evaluate("document.querySelector('article.row canvas.heatmap').toDataURL()")
    row(page).locator("input.gain").fill("4")  # one octave: x2
    settle(page)
    assert row(page).locator(".gain-controls output").first.inner_text() == f"{TIMES}2"
    assert float(bar.get_attribute("data-high")) == pytest.approx(high / 2)
    assert page.evaluate("document.querySelector('article.row canvas.heatmap').toDataURL()") != before

    # Channel rows (integrated gradients) scale the same way, from their payload's percentile.
    choose_method(page, manifest, "ig")
    scale = row(page).locator(".scale")
    maps = read_payload(methods_interface.parent / "data", f"attr-{manifest.default_layer}-0-0")
    expected = page_percentile(maps.positive, maps.negative)
    assert float(scale.get_attribute("data-scale")) == pytest.approx(expected / 2, rel=1e-5)
    row(page).locator("input.gain").fill("0")
    assert float(scale.get_attribute("data-scale")) == pytest.approx(expected, rel=1e-5)
    assert expected <= maps.display_scale  # the percentile, not the maximum

    # The observation's opacity: only with the overlay on.
    opacity = row(page).locator("input.opacity")
    assert opacity.is_enabled()
    opacity.fill("30")
    assert row(page).locator(".gain-controls output").nth(1).inner_text() == "30%"
    page.get_by_label("overlay on observation").uncheck()
    assert opacity.is_disabled()


def test_rows_start_with_the_configured_gain_and_opacity(page, methods_interface):
    rebuilt = build_methods_interface(methods_interface.parents[1], "configured", gain=2.0, observation_opacity=0.4)
    open_page(page, rebuilt)
    outputs = row(page).locator(".gain-controls output")
    assert outputs.first.inner_text() == f"{TIMES}2" and outputs.nth(1).inner_text() == "40%"


def test_actor_and_critic_in_one_overlay(page, methods_interface, manifest):
    value, actor = manifest.outputs.index("value"), manifest.outputs.index("actor")
    open_page(page, methods_interface)
    row(page).locator("select").first.select_option("pair")
    settle(page)
    assert shown_methods(page) == ["perturbation"]
    assert menu_titles(page) == [entry(manifest, "perturbation").title]
    wait_painted(page, "article.row canvas.heatmap")
    bars = row(page).locator(".colorbar")
    assert bars.count() == 2
    assert "actor" in bars.nth(0).inner_text() and "critic" in bars.nth(1).inner_text()
    for bar, output in zip(bars.all(), (actor, value)):
        expected = percentile_of(methods_interface, manifest, "perturbation", "in", 0, output)
        assert float(bar.get_attribute("data-high")) == pytest.approx(expected, rel=1e-5)
    # Blue (actor) and red (critic) both appear in the overlay.
    colours = page.evaluate(
        """() => {
             const c = document.querySelector("article.row canvas.heatmap");
             const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
             let blue = 0, red = 0;
             for (let i = 0; i < px.length; i += 4) {
               if (px[i + 3] < 40) continue;
               if (px[i + 2] > px[i]) blue++;
               if (px[i] > px[i + 2]) red++;
             }
             return [blue, red];
           }"""
    )
    assert colours[0] > 0 and colours[1] > 0, colours
    # The critic's line graph is shown; the actor (every logit at once) has none.
    assert [label.inner_text() for label in page.locator(".graph .label").all()] == ["advantage", "value"]


def test_compare_view_shows_every_method_and_follows_the_timeline(page, methods_interface, manifest):
    value, actor = manifest.outputs.index("value"), manifest.outputs.index("actor")
    open_page(page, methods_interface)
    page.get_by_label("compare methods").check()
    grid = page.locator("section.compare")
    grid.wait_for()
    cells = grid.locator("li.cell")
    explaining = [m for m in manifest.methods if value in m.outputs]
    assert [c.get_attribute("data-method") for c in cells.all()] == [m.name for m in explaining]
    for m in explaining:
        if m.produces == "map":
            wait_painted(page, f"section.compare li[data-method={m.name}] canvas.heatmap")
    assert grid.locator("li[data-method=ig] canvas.cell-map").count() == 1
    assert grid.locator(".colorbar").count() == sum(m.produces == "map" for m in explaining)

    # Scrubbing moves every cell to the new frame.
    page.locator("h1").click()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    settle(page)
    frames = page.evaluate(
        "[...document.querySelectorAll('section.compare canvas.heatmap, section.compare canvas.cell-map')]"
        ".map((c) => c.dataset.frame)"
    )
    assert frames == ["3"] * len(explaining), frames

    # Each heading's hover note: title, summary and citation.
    heading = grid.locator("li[data-method=gradcam] h3 button")
    heading.hover()
    tip = grid.locator("li[data-method=gradcam] [role=tooltip]")
    assert tip.is_visible()
    gradcam = entry(manifest, "gradcam")
    for text in (gradcam.title, gradcam.summary, gradcam.citation):
        assert text in tip.inner_text()
    assert page.locator(f"#{heading.get_attribute('aria-describedby')}").count() == 1

    # Another output: the methods that explain it.
    grid.locator("select").select_option(str(actor))
    settle(page)
    assert [c.get_attribute("data-method") for c in cells.all()] == names_of(manifest, actor)
    grid.get_by_role("button", name="close the compare view").click()
    assert page.locator("section.compare").count() == 0
    assert not page.get_by_label("compare methods").is_checked()


def test_method_note_in_the_row(page, methods_interface, manifest):
    smoothgrad = entry(manifest, "smoothgrad")
    open_page(page, methods_interface)
    choose_method(page, manifest, "smoothgrad")
    trigger = row(page).get_by_role("button", name=f"about {smoothgrad.title}")
    trigger.focus()
    tip = row(page).locator("[role=tooltip]")
    assert tip.is_visible()
    assert smoothgrad.citation in tip.inner_text() and smoothgrad.summary in tip.inner_text()
    page.keyboard.press("Escape")
    assert not tip.is_visible()
    assert smoothgrad.summary in row(page).locator("label:has(select.method)").get_attribute("title")


def test_hotkey_cycles_the_methods_of_the_focused_row(page, methods_interface, manifest):
    value = manifest.outputs.index("value")
    names = [m.name for m in manifest.methods if value in m.outputs]
    open_page(page, methods_interface)
    assert "next explanation method" in page.locator("section[aria-labelledby=hotkeys-heading]").inner_text()
    page.locator("h1").click()
    seen = []
    for _ in range(len(names)):
        page.keyboard.press("m")
        seen.append(shown_methods(page)[0])
    assert seen == names[1:] + names[:1]
    page.keyboard.press("Shift+M")
    assert shown_methods(page)[0] == names[-1]

    # With the focus in the second row, that row cycles.
    page.get_by_role("button", name="add row").click()
    settle(page)
    second = row(page, 1)
    second.locator("select").first.select_option(str(value))
    before = shown_methods(page)
    second.locator("input.gain").focus()
    page.keyboard.press("m")
    after = shown_methods(page)
    assert after[0] == before[0] and after[1] != before[1]
    # Not while choosing in a menu.
    second.locator("select.method").focus()
    page.keyboard.press("m")
    assert shown_methods(page) == after


def test_url_keeps_rows_methods_and_the_compare_view(page, methods_interface, manifest):
    action = manifest.outputs.index("action")
    open_page(page, methods_interface)
    choose_method(page, manifest, "gradcam")
    row(page).locator("input.gain").fill("-5")  # x0.42: no "." may reach the URL's row token
    row(page).locator("input.opacity").fill("30")
    page.get_by_role("button", name="add row").click()
    settle(page)
    row(page, 1).locator("select").first.select_option("pair")
    page.get_by_label("compare methods").check()
    page.locator("section.compare select").select_option(str(action))
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => location.search.includes('rows=') && location.search.includes('compare=')"
        " && location.search.includes('perturbation') && location.search.includes('frame=2')",
        timeout=5_000,
    )
    url = page.url

    def state():
        rows = page.locator("article.row").all()
        return {
            "methods": shown_methods(page),
            "outputs": [r.locator("select").first.input_value() for r in rows],
            "gains": [r.locator(".gain-controls output").first.inner_text() for r in rows],
            "opacities": [r.locator(".gain-controls output").nth(1).inner_text() for r in rows],
            "compare": page.locator("section.compare select").input_value(),
            "frame": page.locator(".frame-number").inner_text(),
        }

    before = state()
    assert before["methods"] == ["gradcam", "perturbation"]
    assert before["outputs"] == [str(manifest.outputs.index("value")), "pair"]
    assert before["gains"] == [f"{TIMES}0.42", f"{TIMES}1"] and before["opacities"] == ["30%", "75%"]
    assert "gradcam.g-5.o30" in url
    assert before["compare"] == str(action) and before["frame"] == "2"
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)
    assert state() == before
    wait_painted(page, "article.row canvas.heatmap")

    # Tokens naming unknown outputs or methods are dropped; with none valid, the default rows.
    open_page(page, methods_interface, "?rows=99.ig,1.nosuch,1.gradcam.g1e9&compare=999")
    assert shown_methods(page) == ["gradcam"]
    assert page.locator(".gain-controls output").first.inner_text() == f"{TIMES}16"
    assert page.locator("section.compare").count() == 0
    open_page(page, methods_interface, "?rows=abc")
    assert shown_methods(page) == ["ig"]
