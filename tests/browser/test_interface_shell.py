"""The rendered interface.html runs its inlined bundle from file:// and over http, reads the
manifest through a script tag, and shows checkpoint strings as text."""

import functools
import http.server
import threading

import numpy as np
import pytest

from understanding_rl_vision.contract import (
    AttributionPayload,
    FeatureInfo,
    LayerInfo,
    Manifest,
    write_feature,
    write_manifest,
    write_payload,
    write_trajectory,
)
from understanding_rl_vision.render import render_interface

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def interface(tmp_path):
    manifest = Manifest(
        env_id="coinrun",
        agent=HOSTILE,
        action_names=(HOSTILE, "RIGHT"),
        action_groups={"RIGHT": (1,)},
        outputs=("value",),
        layers=(
            LayerInfo(
                name="stacks.1.res1",
                label="2b",
                shape=(32, 16, 16),
                features=(FeatureInfo(name="feature 1", color="#cc0000"),),
            ),
        ),
        default_layer=0,
        trajectory_lengths=(4, 4),
        observation_size=(64, 64),
        fps=12.0,
        bookmarks=(),
        observations=None,
        action_outputs="logits",
    )
    write_manifest(tmp_path / "data", manifest)
    write_start_payloads(tmp_path / "data", manifest)
    return render_interface(tmp_path, title="demo </script><b>x</b>")


def write_start_payloads(data, manifest):
    """What the page loads at start (all zero): every trajectory, the default layer's first map
    and that layer's features."""
    actions = len(manifest.action_names)
    for t, n in enumerate(manifest.trajectory_lengths):
        write_trajectory(
            data,
            t,
            frames=np.zeros((n, 8, 8, 3), np.uint8),
            rewards=np.zeros(n),
            firsts=np.eye(1, n)[0],
            actions=np.zeros(n, int),
            values=np.zeros(n),
            logits=np.zeros((n, actions)),
            advantages=np.zeros(n),
        )
    layer = manifest.layers[manifest.default_layer]
    n, k, (_, h, w) = manifest.trajectory_lengths[0], len(layer.features), layer.shape
    attribution = AttributionPayload(
        layer=manifest.default_layer,
        trajectory=0,
        output=0,
        positive=np.zeros((n, k, h, w)),
        negative=np.zeros((n, k, h, w)),
        residual=np.zeros((n, h, w)),
        totals=np.zeros((n, k)),
        residual_totals=np.zeros(n),
        display_scale=1.0,
    )
    write_payload(data, attribution.key(), attribution)
    for f in range(k):
        write_feature(data, manifest.default_layer, f, thumbnail=np.zeros((8, 8, 3), np.uint8), popups=())


def check_page(page, url):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    heading = page.locator("h1")
    heading.wait_for()
    assert heading.inner_text() == f"{HOSTILE} on coinrun"  # shown as text, never parsed as HTML
    assert page.locator("main img").count() == 0 and not dialogs
    assert "2 trajectories, 1 layers" in page.locator("main").inner_text()
    assert page.title() == "demo </script><b>x</b>"


def test_interface_runs_from_a_file_url(page, interface):
    check_page(page, interface.as_uri())


def test_interface_runs_from_a_static_http_server(page, interface):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(interface.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        check_page(page, f"http://127.0.0.1:{server.server_address[1]}/interface.html")
    finally:
        server.shutdown()
        server.server_close()
