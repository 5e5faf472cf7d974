"""The page's States of interest section (seed 003) in a real Chromium from file://: one strip per
target with a thumbnail per generated state, the agent's numbers and the target's energy as the
payloads hold them, the nearest real frames drawn; a click shows the state in the attribution
panel like any frame; the played-trajectory list leaves the states' trajectories out; a run
without states has no such section. No console errors or warnings (the ``page`` fixture).

The data: a real small run of a random CoinRun agent with a tiny generator trained for it (a few
seconds; see :func:`states_interface`), and ``small_interface`` (conftest.py) for a run without
states.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from chromium_setup import open_page, percent, random_checkpoint, settle, shown

from understanding_rl_vision.contract import read_payload

TARGETS = ("high-value", "low-value", "action:RIGHT")
STATE_COUNT = 4
ARROW = "\N{RIGHTWARDS ARROW}"


@pytest.fixture(scope="module")
def states_interface(tmp_path_factory) -> Path:
    """interface.html of a real run with states of interest: :func:`chromium_setup.random_checkpoint`,
    a generator trained one epoch on 32 frames, 2 trajectories of 12 frames, layer 2b, and
    STATE_COUNT states of each of TARGETS after 5 optimisation steps."""
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.agents import load_agent
    from understanding_rl_vision.agents.formats import checkpoint_identity
    from understanding_rl_vision.states import GeneratorConfig, train_generator

    folder = tmp_path_factory.mktemp("states")
    checkpoint = random_checkpoint(folder)
    generator = GeneratorConfig(num_frames=32, epochs=1, num_envs=4, batch_size=16, latent_size=8, width=4)
    agent = load_agent(checkpoint)
    train_generator(agent, checkpoint_identity(checkpoint), folder / "generator", generator, progress=False)
    run = rl_clarity.run(
        checkpoint,
        folder / "interface",
        progress=False,
        num_envs=2,
        num_steps=12,
        obs_num_envs=4,
        num_obs=4,
        obs_every=4,
        layers=("2b",),
        nmf_features=3,
        num_bookmarks=2,
        states=str(folder / "generator"),
        state_targets=TARGETS,
        state_count=STATE_COUNT,
        state_steps=5,
    )
    return run.path


@pytest.fixture(scope="module")
def data(states_interface) -> Path:
    return states_interface.parent / "data"


@pytest.fixture(scope="module")
def manifest(data):
    return read_payload(data, "manifest")


def softmax(row: np.ndarray) -> np.ndarray:
    exp = np.exp(row.astype(np.float64) - row.max())
    return exp / exp.sum()


def drawn(element) -> np.ndarray:
    """An element's pixels, from a screenshot (sprite sheets from file:// taint their canvases)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB"), np.int16)


def assert_not_blank(element, what: str) -> None:
    pixels = drawn(element)
    # not one flat colour (an empty canvas shows its plain grey background)
    assert pixels.reshape(-1, 3).std(axis=0).max() > 5, what


def strips(page):
    return page.locator("section.states-of-interest .strip")


def test_one_strip_per_target_with_the_payloads_numbers(page, states_interface, manifest, data):
    open_page(page, states_interface)
    section = page.locator("section.states-of-interest")
    assert section.count() == 1
    assert page.get_by_role("heading", name="States of interest").count() == 1
    assert manifest.states.generator in section.locator(".generator").inner_text()
    assert f"{len(TARGETS)} targets of states of interest" in page.locator(".masthead .summary").inner_text()
    # below the main panels
    attribution = page.locator("section.attribution").bounding_box()
    assert section.bounding_box()["y"] >= attribution["y"] + attribution["height"]
    section.scroll_into_view_if_needed()
    page.wait_for_function(
        "(n) => document.querySelectorAll('section.states-of-interest li.state').length === n",
        arg=len(TARGETS) * STATE_COUNT,
    )
    settle(page)

    assert strips(page).count() == len(manifest.states.targets) == len(TARGETS)
    names = manifest.action_names
    for k, target in enumerate(manifest.states.targets):
        strip = strips(page).nth(k)
        assert strip.locator("h3").inner_text().startswith(target.title)
        traj = read_payload(data, f"traj-{target.trajectory}")
        states = read_payload(data, f"states-{k}")
        assert strip.locator("button.pick").count() == STATE_COUNT == len(traj.values) == len(states.energy)
        items = strip.locator("li.state")
        for i in range(STATE_COUNT):
            item = items.nth(i)
            value = item.locator(".value")
            assert float(value.get_attribute("data-value")) == float(traj.values[i])
            assert value.inner_text() == shown(float(traj.values[i]))
            action = int(traj.actions[i])
            probability = softmax(traj.logits[i])[action]
            score = item.locator(".action")
            assert score.inner_text().split() == [names[action], percent(probability)]
            assert float(score.get_attribute("data-score")) == pytest.approx(probability, rel=1e-5)
            energy = item.locator(".energy")
            assert float(energy.get_attribute("data-start")) == float(states.start_energy[i])
            assert float(energy.get_attribute("data-end")) == float(states.energy[i])
            start, end = shown(float(states.start_energy[i])), shown(float(states.energy[i]))
            assert energy.inner_text() == f"{start} {ARROW} {end}"
            near = item.locator("figure.pixels")
            assert int(near.get_attribute("data-observation")) == int(states.nearest_pixels[i])
            assert near.locator(".pixel-error").inner_text() == f"err {shown(float(states.pixel_error[i]))}"
            assert near.locator(".novelty").inner_text() == f"{percent(float(states.novelty[i]))} new"
            by_energy = item.locator("figure.by-energy")
            assert int(by_energy.get_attribute("data-observation")) == int(states.nearest_energy[i])
            assert by_energy.locator(".energy-value").inner_text() == shown(float(states.nearest_energy_value[i]))


def test_states_and_nearest_frames_are_drawn(page, states_interface, manifest, data):
    open_page(page, states_interface)
    page.locator("section.states-of-interest").scroll_into_view_if_needed()
    total = len(TARGETS) * STATE_COUNT
    # every sprite canvas drew its image: the state's frame and its two nearest real frames
    page.wait_for_function(
        "(n) => document.querySelectorAll('section.states-of-interest canvas.sprite[data-drawn]').length === n",
        arg=3 * total,
    )
    for k in range(len(TARGETS)):
        states = read_payload(data, f"states-{k}")
        item = strips(page).nth(k).locator("li.state").nth(STATE_COUNT - 1)
        item.scroll_into_view_if_needed()
        pixels, energy = item.locator("figure.pixels canvas"), item.locator("figure.by-energy canvas")
        assert pixels.get_attribute("data-drawn") == str(states.nearest_pixels[-1])
        assert energy.get_attribute("data-drawn") == str(states.nearest_energy[-1])
        assert_not_blank(pixels, f"target {k}: the frame nearest in pixels")
        assert_not_blank(energy, f"target {k}: the frame nearest in energy")
        assert_not_blank(item.locator("button.pick canvas"), f"target {k}: the generated state")


def test_clicking_a_state_shows_it_in_the_attribution_panel(page, states_interface, manifest, data):
    open_page(page, states_interface)
    target = manifest.states.targets[1]
    traj = read_payload(data, f"traj-{target.trajectory}")
    before = page.evaluate("window.__rlv_metrics.attributionDraws")
    map_before = page.evaluate("document.querySelector('canvas.map').toDataURL()")

    state = strips(page).nth(1).locator("button.pick").nth(2)
    state.scroll_into_view_if_needed()
    state.click()
    # the attribution panel scrolls into view
    page.wait_for_function(
        """() => {
             const top = document.querySelector('section.attribution').getBoundingClientRect().top;
             return top >= -1 && top < 60;
           }""",
        timeout=5_000,
    )
    page.wait_for_function(
        "(n) => window.__rlv_metrics.lastFrame === 2 && window.__rlv_metrics.attributionDraws > n", arg=before
    )
    settle(page)
    # the page shows that trajectory at that frame, labelled as a state
    assert page.locator(".frame-number").inner_text() == "3"
    assert page.locator(".frame-info dd").first.inner_text().startswith(f"3 / {STATE_COUNT}")
    label = f"States of interest: {target.title}"
    assert label in page.locator("#timeline-heading").inner_text()
    assert page.locator(".frame-info .picture").get_attribute("aria-label") == f"state 3 of {label}"
    assert page.locator(".frame-info .value").inner_text() == shown(float(traj.values[2]))
    assert page.locator(".frame-info .action").inner_text() == manifest.action_names[int(traj.actions[2])]
    page.wait_for_function(
        "(want) => location.search.includes(want)", arg=f"trajectory={target.trajectory + 1}&", timeout=5_000
    )
    assert "frame=3&" in page.evaluate("location.search")
    # an attribution canvas redrew with the state's maps
    assert page.evaluate("document.querySelector('canvas.map').toDataURL()") != map_before
    # the state is highlighted, and only it
    selected = page.locator("section.states-of-interest li.state.selected")
    assert selected.count() == 1
    assert selected.locator("button.pick").get_attribute("aria-label").startswith(f"state 3 of {target.title}")
    assert page.locator("button.pick[aria-pressed=true]").count() == 1
    # no played trajectory is selected; the list says what is shown instead
    assert page.locator("input[name=rlv-trajectory]:checked").count() == 0
    assert label in page.locator("section[aria-labelledby=trajectories-heading] .showing").inner_text()
    # stepping works there like anywhere
    page.keyboard.press("ArrowRight")
    assert page.locator(".frame-number").inner_text() == "4"
    assert page.locator("section.states-of-interest li.state.selected").get_attribute("data-state") == "3"


def test_the_trajectory_list_shows_only_played_trajectories(page, states_interface, manifest):
    played = manifest.played_trajectories
    assert 0 < played < len(manifest.trajectory_lengths)
    open_page(page, states_interface)
    radios = page.get_by_role("radio", name="trajectory")
    assert radios.count() == played
    assert page.locator(".trajectory-strip").count() == played
    assert page.locator("section[aria-labelledby=trajectories-heading]").inner_text().count("trajectory ") == played
    assert f"{played} trajectories," in page.locator(".masthead .summary").inner_text()
    for link in page.locator("section[aria-labelledby=bookmarks-heading] a").all():
        assert int(link.inner_text().split(",")[0].split()[1]) <= played
    # opened on a states trajectory (e.g. a shared link), the page shows it labelled
    target = manifest.states.targets[0]
    open_page(page, states_interface, f"?trajectory={target.trajectory + 1}&frame=2")
    assert page.locator(".frame-number").inner_text() == "2"
    assert f"States of interest: {target.title}" in page.locator("#timeline-heading").inner_text()
    assert radios.count() == played
    radios.nth(0).check()
    settle(page)
    assert page.locator("#timeline-heading").inner_text().endswith("trajectory 1")
    assert page.locator(".frame-number").inner_text() == "1"


def test_a_run_without_states_has_no_section(page, small_interface):
    assert read_payload(small_interface.parent / "data", "manifest").states is None
    open_page(page, small_interface)
    assert page.locator("section.states-of-interest").count() == 0
    assert page.get_by_role("heading", name="States of interest").count() == 0
    assert "states of interest" not in page.locator(".masthead .summary").inner_text()
    assert "States of interest" not in page.locator("main").inner_text()
