"""A recurrent agent's memory in the page: the attribution to its incoming LSTM state, per frame,
read by the page's payload reader (svelte/src/lib/payload.js) like the Python reader, and drawn as
the "memory" bar of the feature totals with its share; a feed-forward interface has no such bar."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from understanding_rl_vision.contract import (
    AttributionPayload,
    attribution_key,
    read_manifest,
    read_payload,
    read_raw,
    write_payload,
)

VIEWPORT = {"width": 1280, "height": 800}
DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
LIB = Path(__file__).parents[2] / "svelte" / "src" / "lib"
READER, CONTRACT = LIB / "payload.js", LIB / "contract.js"
MINUS = "\N{MINUS SIGN}"  # format.js writes negative numbers with it
MEMORY_COLOR = "#4f6d8a"  # PAGE_DEFAULTS.memoryColor in svelte/src/lib/defaults.js
BARS = "figure.bars"
# FeatureBars.svelte's geometry: the bars' half-width is (W - LABEL - VALUE) / 2 pixels.
HALF_WIDTH = (200 - 30 - 46) / 2

TINY_RECURRENT_RUN = dict(
    progress=False,
    num_envs=1,
    num_steps=16,
    obs_num_envs=2,
    num_obs=8,
    obs_every=2,
    layers=("3a",),
    nmf_features=3,
    num_bookmarks=1,
)
"""One trajectory of 16 frames, one layer, 3 NMF features, the value only: a run of seconds."""


@pytest.fixture(scope="module")
def lstm_interface(tmp_path_factory) -> Path:
    """interface.html of a random LSTM agent (Greydanus et al.'s network) on Breakout."""
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.agents import make_agent, save_checkpoint
    from understanding_rl_vision.envs.spec import parse_env_id

    folder = tmp_path_factory.mktemp("lstm")
    spec = parse_env_id("ALE/Breakout-v5", observation="greydanus", frame_stack=1, screen_size=80)
    agent = make_agent("lstm", spec, (80, 80, 1), ("NOOP", "FIRE", "RIGHT", "LEFT"), seed=0)
    checkpoint = save_checkpoint(agent, folder / "lstm.safetensors")
    run = rl_clarity.run(checkpoint, folder / "interface", title="random LSTM agent", **TINY_RECURRENT_RUN)
    return run.path


def open_page(page, interface: Path, query: str = "") -> None:
    page.set_viewport_size(VIEWPORT)
    page.goto(interface.as_uri() + query)
    page.wait_for_function(DRAWN, timeout=30_000)
    settle(page)


def settle(page, frames: int = 3) -> None:
    """Let pending loads resolve and a few animation frames draw."""
    page.evaluate(
        """(n) => new Promise((done) => {
             const step = () => (n-- > 0 ? requestAnimationFrame(step) : setTimeout(done, 30));
             setTimeout(step, 30);
           })""",
        frames,
    )


def shown_number(text: str) -> float:
    """A number as format.js's number() writes it (a minus sign, not a hyphen)."""
    return float(text.replace(MINUS, "-"))


def memory_bar(page) -> dict:
    """What the page draws for the memory: its row's value text and data, the bar, the captions."""
    return page.evaluate(
        """(sel) => {
          const figure = document.querySelector(sel);
          const row = figure.querySelector('g[data-bar="memory"]');
          const rect = row && row.querySelector("rect");
          return row && {
            text: row.querySelector("text.value").textContent,
            value: Number(row.dataset.value),
            fill: rect.getAttribute("fill"),
            width: Number(rect.getAttribute("width")),
            bars: figure.querySelectorAll("g[data-bar]").length,
            label: figure.querySelector("svg").getAttribute("aria-label"),
            caption: figure.querySelector("figcaption").textContent.replace(/\\s+/g, " ").trim(),
          };
        }""",
        BARS,
    )


def test_the_memory_bar_shows_the_payload_memory_and_its_share(page, lstm_interface):
    data = lstm_interface.parent / "data"
    manifest = read_manifest(data)
    layer = manifest.default_layer
    payload = read_payload(data, attribution_key(layer, 0, 0))
    memory = payload.memory_totals
    n = manifest.trajectory_lengths[0]
    assert memory is not None and memory.shape == (n,) and memory.dtype == np.float32
    assert memory[0] == 0  # the first frame starts an episode: a zero state holds nothing
    assert np.abs(memory[1:]).max() > 0
    k = len(manifest.layers[layer].features)
    totals_max = max(np.abs(payload.totals).max(), np.abs(payload.residual_totals).max(), np.abs(memory).max())

    for frame in (5, n):  # 1-indexed, as the URL counts
        f = frame - 1
        if frame == 5:
            open_page(page, lstm_interface, f"?frame={frame}")
        else:
            page.keyboard.press("End")
            settle(page)
        shown = memory_bar(page)
        assert shown is not None, "no memory bar"
        assert shown["bars"] == k + 2  # the features, the residual and the memory
        assert shown["value"] == pytest.approx(float(memory[f]), rel=1e-6, abs=1e-12)
        assert abs(shown_number(shown["text"]) - memory[f]) <= 5e-4 + 1e-9
        assert shown["fill"] == MEMORY_COLOR
        assert shown["width"] == pytest.approx(max(abs(memory[f]) / totals_max * HALF_WIDTH, 0.5), rel=1e-4)

        magnitudes = np.abs(np.concatenate([payload.totals[f], [payload.residual_totals[f], memory[f]]]))
        share = 100 * abs(memory[f]) / magnitudes.sum()
        percent = re.search(rf"memory ([\d.{MINUS}]+) \((\d+)%\)", shown["label"])
        assert percent, shown["label"]
        assert abs(shown_number(percent.group(1)) - memory[f]) <= 5e-4 + 1e-9
        assert abs(int(percent.group(2)) - share) <= 0.5 + 1e-6
        caption = re.search(rf"sum ([\d.{MINUS}]+)\)\s*memory (\d+)%", shown["caption"])
        assert caption, shown["caption"]
        assert int(caption.group(2)) == int(percent.group(2))
        whole = payload.totals[f].sum() + payload.residual_totals[f] + memory[f]
        assert abs(shown_number(caption.group(1)) - whole) <= 5e-4 + 1e-6
        print(f"frame {frame}: memory {shown['text']} ({percent.group(2)}% of |attribution|), sum {caption.group(1)}")


def test_a_feed_forward_interface_has_no_memory_bar(page, small_interface):
    data = small_interface.parent / "data"
    manifest = read_manifest(data)
    key = attribution_key(manifest.default_layer, 0, 0)
    assert "memory_totals" not in read_raw(data, key)
    assert read_payload(data, key).memory_totals is None
    open_page(page, small_interface, "?frame=3")
    assert page.locator(f'{BARS} g[data-bar="residual"]').count() >= 1
    assert page.locator(f'{BARS} g[data-bar="memory"]').count() == 0
    for figure in page.locator(BARS).all():
        assert "memory" not in figure.inner_text()
        assert "memory" not in (figure.locator("svg").get_attribute("aria-label") or "")


def test_page_reader_decodes_memory_totals_like_the_python_reader(page, tmp_path):
    rng = np.random.default_rng(1)
    n, k, size = 6, 3, 5
    signed = rng.normal(size=(n, k, size, size)) * (rng.random((n, k, size, size)) < 0.3)
    residual = rng.normal(size=(n, size, size)) * 0.1
    payload = AttributionPayload(
        layer=0,
        trajectory=0,
        output=0,
        positive=np.maximum(signed, 0),
        negative=np.maximum(-signed, 0),
        residual=residual,
        totals=signed.sum((2, 3)),
        residual_totals=residual.sum((1, 2)),
        display_scale=1.0,
        memory_totals=rng.normal(size=n) * np.array([0, 1e-7, 1, -3, 250, -0.02]),
    )
    data = tmp_path / "data"
    data.mkdir()
    write_payload(data, payload.key(), payload)
    reader = "\n".join(line for line in READER.read_text().splitlines() if not line.startswith("import "))
    module = (CONTRACT.read_text() + reader).replace("export ", "")
    (tmp_path / "index.html").write_text(f"""<!doctype html><html><head><meta charset="utf-8"></head><body>
<script type="module">
{module}
installReceiver();
window.result = (async () => {{
  const payload = await loadPayload({payload.key()!r});
  const out = {{}};
  for (const [name, value] of Object.entries(payload)) {{
    if (value && typeof value === "object" && "dtype" in value) out[name] = Array.from(await decodeArray(value));
  }}
  return out;
}})();
</script></body></html>""")
    page.goto((tmp_path / "index.html").as_uri())
    result = page.evaluate("window.result")

    expected = read_payload(data, payload.key())
    assert set(result) == {"positive", "negative", "residual", "totals", "residual_totals", "memory_totals"}
    np.testing.assert_array_equal(np.array(result["memory_totals"], np.float32), expected.memory_totals)
    np.testing.assert_array_equal(expected.memory_totals, payload.memory_totals)
    for name in ("positive", "negative", "residual", "totals", "residual_totals"):
        decoded = np.array(result[name], np.float32).reshape(getattr(expected, name).shape)
        np.testing.assert_allclose(decoded, getattr(expected, name), rtol=1e-6, atol=1e-7, err_msg=name)
