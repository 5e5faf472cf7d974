"""An attention agent's own methods in a real Chromium from file://: the Attention map (its 7x7
mask stretched over the frame) and the Attention tree (nodes at their receptive fields' centres,
edges to their parents), its depth slider and the node under the pointer, with no console errors
(the ``page`` fixture fails on any).

The data: a real small run of a random attention agent (seed 002's design, Nature trunk) on
Breakout with integrated gradients, SmoothGrad, Attention and Attention tree; the expected nodes
and boxes are read from its tree payloads with the Python reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from chromium_setup import settle

from understanding_rl_vision.contract import read_manifest, read_payload

VIEWPORT = {"width": 1280, "height": 900}
DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
PIXELS = 2  # the receptive field's outline may differ from the payload's box by rounding
TIMES = "\N{MULTIPLICATION SIGN}"  # the mask's size is shown as 7x7, with this sign


@pytest.fixture(scope="module")
def attention_interface(tmp_path_factory) -> Path:
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.agents import make_agent, save_checkpoint
    from understanding_rl_vision.envs import make_vec_env, parse_env_id

    folder = tmp_path_factory.mktemp("attention")
    with make_vec_env(parse_env_id("ALE/Breakout-v5"), num_envs=1, seed=0) as env:
        agent = make_agent("attention", env.spec, env.observation_shape, env.action_names, seed=0, heads=2)
    run = rl_clarity.run(
        save_checkpoint(agent, folder / "attention.safetensors"),
        folder / "interface",
        progress=False,
        num_envs=2,
        num_steps=24,
        obs_num_envs=4,
        num_obs=8,
        obs_every=4,
        nmf_features=4,
        num_bookmarks=2,
        explain=("value", "attention"),
        methods=("ig", "smoothgrad", "attention", "attention-tree"),
        title="random attention agent",
    )
    return run.path


@pytest.fixture(scope="module")
def manifest(attention_interface):
    return read_manifest(attention_interface.parent / "data")


def method(manifest, name: str):
    return next((i, m) for i, m in enumerate(manifest.methods) if m.name == name)


def tree_payload(interface: Path, manifest, trajectory: int = 0):
    _, tree = method(manifest, "attention-tree")
    return read_payload(interface.parent / "data", f"{tree.key_prefix}-tree-{trajectory}-{tree.outputs[0]}")


def open_page(page, interface: Path):
    page.set_viewport_size(VIEWPORT)
    page.goto(interface.as_uri())
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)


def choose(page, manifest, name: str):
    page.locator("article.row select.method").select_option(str(method(manifest, name)[0]))
    settle(page)


def shown_nodes(tree, frame: int, depth: int) -> np.ndarray:
    """Indices of the nodes the page draws: valid, down to the depth."""
    return np.flatnonzero(tree.valid[frame].astype(bool) & (tree.level[frame] <= depth))


def wait_tree(page, selector: str, frame: int, nodes: int):
    page.wait_for_function(
        "([sel, frame, nodes]) => { const c = document.querySelector(sel);"
        " return c && c.dataset.frame === String(frame) && c.dataset.nodes === String(nodes); }",
        arg=[selector, frame, nodes],
        timeout=10_000,
    )


def alpha_at(page, selector: str, points: list[tuple[float, float]]) -> list[int]:
    """The canvas's opacity at points given in CSS pixels from its top left."""
    return page.evaluate(
        """([sel, points]) => {
             const c = document.querySelector(sel);
             const ratio = c.width / c.getBoundingClientRect().width;
             const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;  // one readback
             return points.map(([x, y]) => px[4 * (Math.floor(y * ratio) * c.width + Math.floor(x * ratio)) + 3]);
           }""",
        [selector, points],
    )


def centres(tree, frame: int, nodes, width: float, height: float) -> list[tuple[float, float]]:
    boxes = tree.boxes[frame, nodes]
    return [((left + right) / 2 * width, (top + bottom) / 2 * height) for top, left, bottom, right in boxes]


def test_attention_map_is_drawn_from_its_7x7_mask(page, attention_interface, manifest):
    _, attention = method(manifest, "attention")
    assert attention.map_shape == (7, 7) and manifest.outputs[attention.outputs[0]] == "attention"
    open_page(page, attention_interface)
    row = page.locator("article.row")
    # Listed in the menu whatever the row explains; choosing it explains the attention.
    assert {"Attention", "Attention tree"} <= {t.strip() for t in row.locator("select.method option").all_inner_texts()}
    choose(page, manifest, "attention")
    assert row.locator("select").first.input_value() == str(attention.outputs[0])
    page.wait_for_function(
        "() => Number(document.querySelector('article.row canvas.heatmap')?.dataset.painted) > 0", timeout=10_000
    )
    assert row.locator(".error").count() == 0
    assert f"7{TIMES}7" in row.locator("figure:has(.stack) figcaption").inner_text()

    # One painted position per nonzero cell of the frame's mask.
    maps = read_payload(attention_interface.parent / "data", f"{attention.key_prefix}-in-0-{attention.outputs[0]}")
    assert maps.positive.shape[1:] == (7, 7)
    heatmap = row.locator("canvas.heatmap")
    assert int(heatmap.get_attribute("data-painted")) == int(np.count_nonzero(maps.positive[0]))

    # The map changes what the frame looks like.
    stack = row.locator(".stack")
    with_map = stack.screenshot()
    heatmap.evaluate("(c) => (c.style.visibility = 'hidden')")
    bare = stack.screenshot()
    heatmap.evaluate("(c) => (c.style.visibility = '')")
    assert with_map != bare


def test_attention_tree_nodes_depth_and_hover(page, attention_interface, manifest):
    _, entry = method(manifest, "attention-tree")
    tree = tree_payload(attention_interface, manifest)
    deepest = len(tree.levels) - 1
    assert tree.levels[0] == "attention.mask" and deepest >= 1
    labels = {layer.name: layer.label for layer in manifest.layers}
    open_page(page, attention_interface)
    choose(page, manifest, "attention-tree")
    row = page.locator("article.row")
    assert row.locator("select").first.input_value() == str(entry.outputs[0])
    canvas = "article.row canvas.tree"

    # Every level, by default: the frame's valid nodes, each drawn at its receptive field's centre.
    nodes = shown_nodes(tree, 0, deepest)
    assert len(nodes) > 0
    wait_tree(page, canvas, 0, len(nodes))
    roots = shown_nodes(tree, 0, 0)
    assert page.locator(canvas).get_attribute("data-roots") == str(len(roots)) and len(roots) > 0
    stack = row.locator(".stack")
    box = stack.bounding_box()
    assert all(a > 0 for a in alpha_at(page, canvas, centres(tree, 0, nodes, box["width"], box["height"])))
    legend = row.locator(".levels").inner_text()
    for name in tree.levels:
        assert name in legend
        if name in labels:
            assert f"layer {labels[name]}" in legend

    # Depth 0: the roots alone; a step forward follows the timeline.
    depth = row.locator("input.depth")
    assert depth.input_value() == str(deepest)
    depth.fill("0")
    wait_tree(page, canvas, 0, len(roots))
    assert row.locator("output").filter(has_text="roots only").count() == 1
    depth.fill(str(deepest))
    wait_tree(page, canvas, 0, len(nodes))
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    wait_tree(page, canvas, 1, len(shown_nodes(tree, 1, deepest)))
    page.keyboard.press("ArrowLeft")
    wait_tree(page, canvas, 0, len(nodes))

    # Hover the node farthest from any other (so that no other node is under the pointer).
    points = np.array(centres(tree, 0, nodes, box["width"], box["height"]))
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 1e9
    chosen = int(np.argmax(distance.min(axis=1))) if len(points) > 1 else 0
    node = int(nodes[chosen])
    level = int(tree.level[0, node])
    page.mouse.move(box["x"] + points[chosen][0], box["y"] + points[chosen][1])
    settle(page)
    note = row.locator(".node-note")
    assert note.get_attribute("data-node") == str(node)
    text = note.inner_text()
    assert tree.levels[level] in text and f"level {level}" in text
    assert f"(y {int(tree.y[0, node])}, x {int(tree.x[0, node])})" in text
    contribution = float(tree.contribution[0, node])
    assert float(note.get_attribute("data-contribution")) == pytest.approx(contribution, rel=1e-6, abs=1e-12)
    shown = float(note.locator(".contribution").inner_text().replace("\N{MINUS SIGN}", "-"))
    assert shown == pytest.approx(contribution, rel=5e-3, abs=1e-12)
    field = row.locator(".field").bounding_box()
    top, left, bottom, right = (float(v) for v in tree.boxes[0, node])
    assert field["width"] == pytest.approx((right - left) * box["width"], abs=PIXELS)
    assert field["height"] == pytest.approx((bottom - top) * box["height"], abs=PIXELS)
    assert field["x"] - box["x"] == pytest.approx(left * box["width"], abs=PIXELS)
    assert field["y"] - box["y"] == pytest.approx(top * box["height"], abs=PIXELS)
    page.mouse.move(0, 0)
    settle(page)
    assert row.locator(".field").count() == 0

    # The compare view of the attention draws the same tree.
    page.get_by_label("compare methods").check()
    page.locator("section.compare select").select_option(str(entry.outputs[0]))
    settle(page)
    wait_tree(page, "section.compare li[data-method=attention-tree] canvas.tree", 0, len(nodes))
