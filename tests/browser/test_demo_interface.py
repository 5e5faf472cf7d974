"""The README's first command: `understanding-rl-vision demo` builds the bundled agent's interface,
and Chromium opens it from file:// with every layer, output and method, drawing attribution and the
report card, with no console errors. First paint is printed (docs/benchmarks.md). The trajectories
are cut to 32 frames, the observation set to 256 and the report card to 2 frames (``--num-steps 32
--num-obs 16 --report-frames 2``) so that the suite stays within its time: the full demo takes 4
minutes and is run by ``make demo``."""

import subprocess
import sys

from understanding_rl_vision.contract import read_manifest

DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"


def test_the_demo_command_builds_an_interface_that_opens_in_chromium(tmp_path, page):
    out = tmp_path / "rl-vision-demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "understanding_rl_vision.cli",
            "demo",
            "-o",
            str(out),
            "--quiet",
            "--num-steps",
            "32",
            "--num-obs",
            "16",
            "--report-frames",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "bundled agent: impala agent for coinrun (easy mode)" in result.stdout
    assert f"wrote {out / 'interface.html'}" in result.stdout
    manifest = read_manifest(out / "data")
    assert [layer.label for layer in manifest.layers] == ["1a", "1b", "2a", "2b", "3a", "3b", "3c"]
    assert manifest.layers[manifest.default_layer].label == "2b"
    logits = tuple(f"logit:{name}" for name in manifest.action_names)
    groups = tuple(f"group:{name}" for name in ("RIGHT", "LEFT", "UP", "DOWN", "no-arrow"))
    assert manifest.outputs == ("value", "action", "actor", *logits, *groups) and len(logits) == 15
    assert manifest.trajectory_lengths == (32,) * 3
    scalars = (0, 1, *range(3, 3 + 15 + 5))  # every output but the actor, which only perturbation explains
    assert [(m.name, m.outputs) for m in manifest.methods] == [
        ("ig", scalars),
        ("gradcam", scalars),
        ("perturbation", tuple(range(3 + 15 + 5))),
    ]
    assert manifest.bookmarks and all(b.advantage > 0 for b in manifest.bookmarks if b.kind == "high")

    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto((out / "interface.html").as_uri())
    page.wait_for_function(DRAWN, timeout=30_000)
    first_paint = page.evaluate("window.__rlv_metrics.firstAttributionDraw")
    print(f"\ndemo interface: first paint {first_paint:.0f} ms after navigation")
    assert page.get_by_role("heading", name="Bundled CoinRun agent (demo)").count() == 1
    assert page.locator("canvas.map").count() >= 2
    # the demo's report card: one row per method, judged on the frames asked for
    assert manifest.report is not None and len(manifest.report.frames) == 2
    rows = page.locator("section.report-card tbody.method")
    assert [rows.nth(i).get_attribute("data-method") for i in range(rows.count())] == ["ig", "gradcam", "perturbation"]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"demo output: {size / 1e6:.1f} MB")

    # The compare view: every method for the action taken, side by side, each drawn.
    page.goto(f"{(out / 'interface.html').as_uri()}?compare=2")
    page.wait_for_function(
        "document.querySelectorAll('section.compare li[data-method] canvas').length >= 3", timeout=30_000
    )
    cells = page.locator("section.compare li[data-method]")
    assert [cells.nth(i).get_attribute("data-method") for i in range(cells.count())] == [
        "ig",
        "gradcam",
        "perturbation",
    ]
