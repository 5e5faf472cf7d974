"""The page's report card, compare-view badges, ablation legend and feature names (issue 21) in a
real Chromium from file://: one table row per method with its numbers and pass/fail words as the
manifest holds them; each compared method's deletion and insertion AUC on an evaluated frame, and
none on a frame the report did not evaluate; the legend's "removing this feature: return X -> Y";
naming a feature in the legend (shown in the legend, popup and bars, kept in the URL across a
reload, refused when another feature of the layer has the name, downloaded as the feature-names
file); and a run without a report or an ablation shows neither. No console errors or warnings
(the ``page`` fixture).

The data: a real small run with four methods (:func:`chromium_setup.build_methods_interface`),
and a copy whose manifest carries a made-up report card and ablation of real shape
(:func:`add_report_and_ablation`, the one place to change once a run computes them).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest
from chromium_setup import DRAWN, MINUS, build_methods_interface, percent, settle, shown
from chromium_setup import open_page as open_at

from understanding_rl_vision.contract import read_manifest, write_manifest
from understanding_rl_vision.contract.schema import (
    AblationInfo,
    CategoryScore,
    EpisodeStats,
    Manifest,
    ReportCard,
    ReportRow,
)

VIEWPORT = {"width": 1280, "height": 900}
open_page = functools.partial(open_at, viewport=VIEWPORT)
ARROW = "\N{RIGHTWARDS ARROW}"
NAMES_FORMAT = "understanding-rl-vision-feature-names"
FRAMES = ((0, 3), (0, 10), (1, 5))
"""(trajectory, frame) the made-up report card evaluated (0-based)."""


# ---------------------------------------------------------------------------- the data


def report_for(manifest: Manifest) -> ReportCard:
    """A report card of real shape for every method of ``manifest``: varied numbers (some over 1,
    some negative), passes, fails and checks that did not apply, object scores for some methods."""
    label = manifest.layers[manifest.default_layer].label
    randomised = ("logits", "3b", "2b")
    rows = []
    for i, m in enumerate(manifest.methods):
        objects = i % 2 == 0
        rows.append(
            ReportRow(
                method=m.name,
                title=m.title,
                site=label if m.layers else "input",
                sanity_spearman=(0.91 - 0.2 * i, 0.52 - 0.1 * i, 0.123 + 0.3 * i),
                sanity_ssim=(0.88, 0.61 - 0.05 * i, 0.4567 - 0.1 * i),
                deletion_auc=0.2134 + 0.1 * i,
                insertion_auc=0.5512 - 0.05 * i,
                frame_deletion=tuple(0.21 + 0.07 * i + 0.05 * f for f in range(len(FRAMES))),
                frame_insertion=tuple(0.55 - 0.09 * i + 0.02 * f for f in range(len(FRAMES))),
                completeness=1.2345 if m.name == "ig" else None,
                object_mass=0.34 - 0.1 * i if objects else None,
                pointing=0.8 - 0.2 * i if objects else None,
                categories=(
                    (
                        CategoryScore(category="Player", mass=0.21, chance=0.05, pointing=0.6),
                        CategoryScore(category="Enemy", mass=0.13, chance=0.07, pointing=0.2),
                    )
                    if objects
                    else ()
                ),
                passes=(("sanity", "deletion", "insertion") if i % 2 == 0 else ("deletion",))
                + (("completeness",) if m.name == "ig" else ())
                + (("objects",) if objects and i == 0 else ()),
                fails=(("sanity", "insertion") if i % 2 else ()) + (("objects", "pointing") if objects and i else ()),
            )
        )
    return ReportCard(
        output="value",
        frames=FRAMES,
        randomised=randomised,
        baseline="a Gaussian blur (sigma 5 pixels)",
        steps=16,
        random_deletion_auc=0.3456,
        random_insertion_auc=0.4012,
        centre_deletion_auc=0.3012,
        centre_insertion_auc=0.4433,
        random_frame_deletion=(0.35, 0.20, 0.50),
        random_frame_insertion=(0.40, 0.70, 0.45),
        object_chance=0.12,
        objects="OCAtari (RAM)",
        sanity_threshold=0.5,
        rows=tuple(rows),
    )


def ablation_for(manifest: Manifest) -> AblationInfo:
    """Each feature of the default layer removed: returns around the original's, one negative."""
    k = len(manifest.layers[manifest.default_layer].features)
    original = EpisodeStats(episodes=100, mean_return=5.2, interval=0.31, completion=0.5, timeouts=0.1, deaths=0.4)
    features = tuple(
        EpisodeStats(
            episodes=100,
            mean_return=(3.1 - 2.0 * f) if f != 1 else 5.25,
            interval=0.4 + 0.01 * f,
            completion=0.2 + 0.05 * f,
            timeouts=0.3 - 0.05 * f,
            deaths=0.5 - 0.02 * f,
        )
        for f in range(k)
    )
    return AblationInfo(
        layer=manifest.default_layer, original=original, features=features, ends="level completed, timeout or death"
    )


def add_report_and_ablation(interface: Path, folder: Path) -> Path:
    """A copy of ``interface``'s run in ``folder`` whose manifest carries a report card and an
    ablation (the lead will switch this to a run that computes them)."""
    shutil.copytree(interface.parent, folder)
    data = folder / "data"
    manifest = read_manifest(data)
    write_manifest(data, dataclasses.replace(manifest, report=report_for(manifest), ablation=ablation_for(manifest)))
    return folder / interface.name


@pytest.fixture(scope="module")
def plain_interface(tmp_path_factory) -> Path:
    """A real small run with four methods, without report or ablation."""
    return build_methods_interface(tmp_path_factory.mktemp("report-plain"))


@pytest.fixture(scope="module")
def report_interface(plain_interface, tmp_path_factory) -> Path:
    return add_report_and_ablation(plain_interface, tmp_path_factory.mktemp("report") / "interface")


@pytest.fixture(scope="module")
def manifest(report_interface) -> Manifest:
    return read_manifest(report_interface.parent / "data")


# ---------------------------------------------------------------------------- helpers


def verdict(row: ReportRow, check: str) -> str:
    return "pass" if check in row.passes else "fail" if check in row.fails else "n/a"


def legend_names(page) -> list[str]:
    return [n.strip() for n in page.locator(".legend li.feature .name").all_inner_texts()]


def wait_for_url(page, text: str) -> None:
    page.wait_for_function("(text) => decodeURIComponent(location.search).includes(text)", arg=text)


# ---------------------------------------------------------------------------- the report card


def test_report_card_has_a_row_per_method_with_its_numbers_and_verdicts(page, report_interface, manifest):
    report = manifest.report
    open_page(page, report_interface)
    section = page.locator("section.report-card")
    assert section.count() == 1
    assert page.get_by_role("heading", name="Report card").count() == 1
    # below the main panels
    attribution = page.locator("section.attribution").bounding_box()
    assert section.bounding_box()["y"] >= attribution["y"] + attribution["height"]
    about = section.locator(".about").inner_text()
    for text in (report.output, report.baseline, f"{len(report.frames)} frames", report.objects, "3b"):
        assert text in about

    rows = section.locator("tbody.method")
    assert rows.count() == len(report.rows) == len(manifest.methods)
    for i, expected in enumerate(report.rows):
        row = rows.nth(i)
        assert row.get_attribute("data-method") == expected.method
        title = row.locator("th.title").inner_text()
        assert expected.title in title
        assert ("on the input" if expected.site == "input" else f"at {expected.site}") in title

        sanity = row.locator("td[data-check=sanity]")
        assert sanity.locator(".spearman").inner_text() == shown(expected.sanity_spearman[-1])
        assert sanity.locator(".ssim").inner_text() == shown(expected.sanity_ssim[-1])
        spark = sanity.locator("svg.sparkline")
        assert spark.count() == 1
        label = spark.get_attribute("aria-label")
        for layer, value in zip(report.randomised, expected.sanity_spearman):
            assert f"+{layer} {shown(value)}" in label
        assert len(spark.locator("polyline").get_attribute("points").split()) == len(expected.sanity_spearman) + 1

        deletion = row.locator("td[data-check=deletion]")
        assert deletion.locator(".value").inner_text() == shown(expected.deletion_auc)
        refs = deletion.locator(".refs").inner_text()
        assert refs == f"rand {shown(report.random_deletion_auc)} · centre {shown(report.centre_deletion_auc)}"
        insertion = row.locator("td[data-check=insertion]")
        assert insertion.locator(".value").inner_text() == shown(expected.insertion_auc)
        refs = insertion.locator(".refs").inner_text()
        assert refs == f"rand {shown(report.random_insertion_auc)} · centre {shown(report.centre_insertion_auc)}"

        completeness = row.locator("td[data-check=completeness] .value").inner_text()
        assert completeness == ("n/a" if expected.completeness is None else shown(expected.completeness))
        objects = row.locator("td[data-check=objects] .value").inner_text()
        if expected.object_mass is None:
            assert objects == "n/a"
        else:
            assert objects == f"{percent(expected.object_mass)} / {percent(report.object_chance)}"
        pointing = row.locator("td[data-check=pointing] .value").inner_text()
        assert pointing == ("n/a" if expected.pointing is None else percent(expected.pointing))

        for check in ("sanity", "deletion", "insertion", "completeness", "objects", "pointing"):
            word = row.locator(f"td[data-check={check}] .verdict").inner_text().strip()
            assert word == verdict(expected, check), (expected.method, check)

    # the words cover passes, fails and n/a
    words = {w.strip() for w in section.locator(".verdict").all_inner_texts()}
    assert words == {"pass", "fail", "n/a"}
    key = section.locator(".key").inner_text()
    assert "lower is better" in key and "higher is better" in key and "should drop" in key and "above chance" in key


def test_report_card_rows_open_to_their_categories(page, report_interface, manifest):
    open_page(page, report_interface)
    rows = page.locator("section.report-card tbody.method")
    for i, expected in enumerate(manifest.report.rows):
        toggle = rows.nth(i).get_by_role("button", name="categories")
        if not expected.categories:
            assert toggle.count() == 0
            continue
        assert toggle.get_attribute("aria-expanded") == "false"
        assert rows.nth(i).locator("tr.categories").count() == 0
        objects = rows.nth(i).locator("td[data-check=objects]").get_attribute("title")
        assert "Player: mass 21% (chance 5%), pointing 60%" in objects
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"
        items = rows.nth(i).locator("tr.categories li")
        assert items.count() == len(expected.categories)
        for item, category in zip(items.all(), expected.categories):
            text = " ".join(item.inner_text().split())
            assert text == (
                f"{category.category} mass {percent(category.mass)} (chance {percent(category.chance)}), "
                f"pointing {percent(category.pointing)}"
            )
        toggle.click()
        assert rows.nth(i).locator("tr.categories").count() == 0


# ---------------------------------------------------------------------------- compare-view badges


def badge_text(report: ReportCard, row: ReportRow, i: int) -> str:
    def mark(kind, value, random):
        if value == random:
            return "same"
        return "better" if (value < random if kind == "deletion" else value > random) else "worse"

    d, rd = row.frame_deletion[i], report.random_frame_deletion[i]
    n, rn = row.frame_insertion[i], report.random_frame_insertion[i]
    return (
        f"del {shown(d)} (rand {shown(rd)}) {mark('deletion', d, rd)} · "
        f"ins {shown(n)} (rand {shown(rn)}) {mark('insertion', n, rn)}"
    )


def check_badges(page, manifest: Manifest, i: int) -> None:
    report = manifest.report
    cells = page.locator("section.compare li.cell")
    assert cells.count() >= 3
    for cell in cells.all():
        row = next(r for r in report.rows if r.method == cell.get_attribute("data-method"))
        badge = cell.locator(".report-badge")
        assert badge.count() == 1
        assert badge.get_attribute("data-report-frame") == str(i)
        assert " ".join(badge.inner_text().split()) == badge_text(report, row, i)
        assert cell.locator(".report-nearest").count() == 0


def test_compare_view_badges_on_evaluated_frames_only(page, report_interface, manifest):
    value = manifest.outputs.index("value")
    t, f = FRAMES[0]
    open_page(page, report_interface, f"?trajectory={t + 1}&frame={f + 1}&compare={value + 1}")
    page.locator("section.compare").wait_for()
    check_badges(page, manifest, 0)
    # a badge marks both ways: this frame's numbers include a better and a worse one
    marks = {b.strip() for b in page.locator("section.compare .report-badge b").all_inner_texts()}
    assert {"better", "worse"} <= marks

    # the next frame was not evaluated: no badge, a note with the nearest evaluated frame
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    settle(page)
    assert page.locator(".frame-number").inner_text() == str(f + 2)
    assert page.locator("section.compare .report-badge").count() == 0
    notes = page.locator("section.compare .report-nearest")
    assert notes.count() == page.locator("section.compare li.cell").count()
    assert f"nearest: frame {f + 1}" in notes.first.inner_text()
    notes.first.get_by_role("button").click()
    settle(page)
    assert page.locator(".frame-number").inner_text() == str(f + 1)
    check_badges(page, manifest, 0)

    # another evaluated frame, in the other trajectory: its own numbers
    t, f = FRAMES[2]
    open_page(page, report_interface, f"?trajectory={t + 1}&frame={f + 1}&compare={value + 1}")
    check_badges(page, manifest, 2)


def test_evaluated_frames_list_opens_the_compare_view(page, report_interface, manifest):
    open_page(page, report_interface)
    assert page.locator("section.compare").count() == 0
    section = page.locator("section.report-card")
    section.locator("details.frames summary").click()
    buttons = section.locator("details.frames button")
    assert buttons.count() == len(FRAMES)
    buttons.nth(1).click()
    page.locator("section.compare").wait_for()
    settle(page)
    assert page.locator(".frame-number").inner_text() == str(FRAMES[1][1] + 1)
    check_badges(page, manifest, 1)


# ---------------------------------------------------------------------------- ablation in the legend


def test_legend_shows_what_removing_each_feature_did(page, report_interface, manifest):
    ablation = manifest.ablation
    open_page(page, report_interface)
    notes = page.locator(".legend li.feature .ablation")
    assert notes.count() == len(ablation.features) == len(manifest.layers[ablation.layer].features)
    original = ablation.original
    for note, without in zip(notes.all(), ablation.features):
        text = note.inner_text()
        change = f"removing this feature: return {shown(original.mean_return)} {ARROW} {shown(without.mean_return)}"
        assert text.startswith(f"{change} ± {shown(without.interval)}"), text
        title = note.get_attribute("title")
        assert f"Timeouts {percent(original.timeouts)} {ARROW} {percent(without.timeouts)}" in title
        assert f"deaths {percent(original.deaths)} {ARROW} {percent(without.deaths)}" in title
        assert f"{shown(original.mean_return)} ± {shown(original.interval)} over {original.episodes} episodes" in title
    assert MINUS in notes.nth(2).inner_text()  # a negative return, with the page's minus sign
    assert ablation.ends in page.locator(".legend .ablation-about").inner_text()

    # another layer: no ablation there
    other = next(i for i in range(len(manifest.layers)) if i != ablation.layer)
    page.locator("input[name=rlv-layer]").nth(other).check()
    settle(page)
    assert page.locator(".legend h3").inner_text().endswith(manifest.layers[other].label)
    assert page.locator(".legend .ablation").count() == 0
    assert "removing this feature" not in page.locator(".legend").inner_text()


def test_a_report_card_and_ablation_the_run_computed(page, plain_interface):
    """The same page on a run that computed them (``report_frames``, ``ablation_episodes``): every
    method's row and the legend's notes show the manifest's numbers."""
    interface = build_methods_interface(
        plain_interface.parent, name="computed", report_frames=2, report_steps=2, ablation_episodes=2
    )
    manifest = read_manifest(interface.parent / "data")
    report, ablation = manifest.report, manifest.ablation
    assert report is not None and ablation is not None and len(report.frames) == 2
    open_page(page, interface)
    rows = page.locator("section.report-card tbody.method")
    assert rows.count() == len(report.rows) == len(manifest.methods)
    for i, expected in enumerate(report.rows):
        row = rows.nth(i)
        assert row.get_attribute("data-method") == expected.method
        assert row.locator("td[data-check=deletion] .value").inner_text() == shown(expected.deletion_auc)
        assert row.locator("td[data-check=insertion] .value").inner_text() == shown(expected.insertion_auc)
        for check in ("sanity", "deletion", "insertion", "completeness"):
            assert row.locator(f"td[data-check={check}] .verdict").inner_text().strip() == verdict(expected, check)
    notes = page.locator(".legend li.feature .ablation")
    assert notes.count() == len(ablation.features)
    original = ablation.original.mean_return
    for note, without in zip(notes.all(), ablation.features):
        assert f"return {shown(original)} {ARROW} {shown(without.mean_return)}" in note.inner_text()


# ---------------------------------------------------------------------------- feature names


def rename(page, k: int, text: str) -> None:
    page.locator(".legend li.feature").nth(k).get_by_role("button", name=f"rename feature {k + 1}").click()
    field = page.get_by_label(f"name of feature {k + 1}")
    field.fill(text)
    field.press("Enter")


def test_naming_a_feature_shows_everywhere_survives_a_reload_and_downloads(page, report_interface, manifest):
    layer = manifest.layers[manifest.default_layer]
    defaults = [f.name for f in layer.features]
    open_page(page, report_interface)
    assert legend_names(page) == defaults

    rename(page, 1, "  coin detector ")  # trimmed
    assert legend_names(page) == [defaults[0], "coin detector", *defaults[2:]]
    assert page.get_by_label("name of feature 2").count() == 0  # the field closed
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "rename feature 2 (coin detector)"
    # the bars and the popup name it too
    page.wait_for_function("document.querySelector('figure.bars g[data-bar=\"1\"] title')")
    assert page.locator('figure.bars g[data-bar="1"] title').first.text_content() == "coin detector"
    assert "coin detector" in page.locator("figure.bars svg").first.get_attribute("aria-label")
    page.locator(".legend button.item").nth(1).click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert "coin detector, layer" in dialog.locator("h2").inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    # a duplicate is refused with a message, the field stays open; Escape cancels
    rename(page, 0, "coin detector")
    problem = page.locator(".legend li.feature").nth(0).get_by_role("alert")
    assert problem.inner_text() == "“coin detector” already names feature 2"
    assert page.get_by_label("name of feature 1").get_attribute("aria-invalid") == "true"
    page.get_by_label("name of feature 1").press("Escape")
    assert page.get_by_label("name of feature 1").count() == 0
    assert legend_names(page) == [defaults[0], "coin detector", *defaults[2:]]
    # a default name of another feature is taken too
    rename(page, 0, defaults[2])
    assert "already names feature 3" in page.locator(".legend li.feature").nth(0).get_by_role("alert").inner_text()
    page.get_by_label("name of feature 1").press("Escape")

    # leaving the field saves
    page.locator(".legend li.feature").nth(3).get_by_role("button", name="rename feature 4").click()
    page.get_by_label("name of feature 4").fill('wall, "edge" & 🧱')
    page.locator("h1").click()
    assert legend_names(page)[3] == 'wall, "edge" & 🧱'

    # the names ride in the URL: a reload keeps them
    wait_for_url(page, '"4":"wall')
    params = parse_qs(page.evaluate("location.search")[1:])
    assert json.loads(params["names"][0]) == {layer.label: {"2": "coin detector", "4": 'wall, "edge" & 🧱'}}
    page.reload()
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)
    assert legend_names(page) == [defaults[0], "coin detector", defaults[2], 'wall, "edge" & 🧱']

    # clearing a name restores the run's
    rename(page, 3, "")
    assert legend_names(page) == [defaults[0], "coin detector", *defaults[2:]]

    # the download: exactly the feature-names format, only renamed features
    with page.expect_download() as info:
        page.locator(".legend a.download-names").click()
    download = info.value
    assert download.suggested_filename.startswith("feature-names-") and download.suggested_filename.endswith(".json")
    saved = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert saved == {
        "format": NAMES_FORMAT,
        "version": 1,
        "agent": manifest.agent,
        "layers": {layer.label: {"2": "coin detector"}},
    }
    assert list(saved) == ["format", "version", "agent", "layers"]

    # the Python side reads it back, where its reader exists
    try:
        from understanding_rl_vision.editing.names import read_feature_names
    except ImportError:
        return
    assert read_feature_names(download.path()) == {layer.label: {2: "coin detector"}}


def test_names_in_a_shared_link_and_bad_ones_dropped(page, report_interface, manifest):
    layer = manifest.layers[manifest.default_layer]
    other = next(info for i, info in enumerate(manifest.layers) if i != manifest.default_layer)
    defaults = [f.name for f in layer.features]
    names = {
        layer.label: {"1": "  ball ", "2": "ball", "3": "", "9": "out of range", "0": "zero", "x": "bad"},
        other.label: {"1": "deep one"},
        "nosuch": {"1": "nothing"},
    }
    open_page(page, report_interface, "?names=" + quote(json.dumps(names)))
    assert legend_names(page) == ["ball", *defaults[1:]]  # the duplicate and the invalid ones dropped
    page.locator("input[name=rlv-layer]").nth(manifest.layers.index(other)).check()
    settle(page)
    assert legend_names(page)[0] == "deep one"
    # malformed values open the page with the run's names
    for query in ("?names=%7Bnot%20json", "?names=%5B1%2C2%5D", '?names={"2b":"x"}', "?names="):
        open_page(page, report_interface, query)
        assert legend_names(page) == defaults


# ---------------------------------------------------------------------------- without a report


def test_a_run_without_report_or_ablation_shows_neither(page, plain_interface):
    manifest = read_manifest(plain_interface.parent / "data")
    assert manifest.report is None and manifest.ablation is None
    value = manifest.outputs.index("value")
    t, f = FRAMES[0]
    open_page(page, plain_interface, f"?trajectory={t + 1}&frame={f + 1}&compare={value + 1}")
    page.locator("section.compare").wait_for()
    assert page.locator("section.report-card").count() == 0
    assert page.get_by_role("heading", name="Report card").count() == 0
    assert page.locator(".report-badge, .report-nearest").count() == 0
    assert page.locator(".legend .ablation").count() == 0
    assert "removing this feature" not in page.locator("body").inner_text()
    # the legend and its names still work
    rename(page, 0, "first")
    assert legend_names(page)[0] == "first"
    assert page.locator(".legend a.download-names").count() == 1
