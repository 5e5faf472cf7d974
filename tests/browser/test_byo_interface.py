"""Bring your own agent, end to end: `run` on a real Stable-Baselines3 PPO zip and a DQN zip
(ALE Breakout) writes interfaces that open in Chromium; the DQN page calls its outputs Q-values."""

import subprocess
import sys

import pytest

from understanding_rl_vision.contract import read_manifest

DRAWN = "window.__rlv_metrics && window.__rlv_metrics.firstAttributionDraw !== null"
FLAGS = (
    "--env ALE/Breakout-v5 --num-envs 2 --num-steps 16 --obs-num-envs 2 --num-obs 4 "
    "--obs-every 4 --nmf-features 3 --num-bookmarks 1 --attr-policy --quiet"
).split()


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_run_on_a_stable_baselines3_zip_opens_in_chromium(sb3_zips, tmp_path, page, algo):
    out = tmp_path / algo
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "understanding_rl_vision.cli",
            "run",
            str(sb3_zips / f"{algo}.zip"),
            "-o",
            str(out),
            *FLAGS,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out / "data")
    assert manifest.env_id == "ALE/Breakout-v5" and manifest.agent == f"{algo}.zip"
    assert [layer.name for layer in manifest.layers] == ["relu1", "relu2", "relu3"]  # the Nature CNN's bottlenecks
    assert manifest.action_names == ("NOOP", "FIRE", "RIGHT", "LEFT")
    assert manifest.action_outputs == ("q_values" if algo == "dqn" else "logits")

    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto((out / "interface.html").as_uri())
    page.wait_for_function(DRAWN, timeout=30_000)
    assert page.locator("canvas.map").count() >= 2
    menu = page.locator(".row select").first
    options = menu.locator("option").all_inner_texts()
    info = page.locator(".frame-info").inner_text()
    if algo == "dqn":
        assert "Q:RIGHT" in options and "value (max Q)" in options and "logit:RIGHT" not in options
        assert "Q-values" in info and "Policy" not in info
        assert page.locator("optgroup[label='Q-values']").count() >= 1
    else:
        assert "logit:RIGHT" in options and "value" in options
        assert "Policy" in info and "%" in info


def test_methods_on_a_dqn_zip_open_in_the_compare_view(sb3_zips, tmp_path, page):
    """Q-values explained by three methods: the action taken is the Q-value of the action the agent
    took, perturbation perturbs every one of the four stacked frames."""
    out = tmp_path / "dqn-methods"
    methods = ["--methods", "ig,gradcam,perturbation", "--explain", "value,action,actor", "--layers", "relu2"]
    command = [sys.executable, "-m", "understanding_rl_vision.cli", "run", str(sb3_zips / "dqn.zip"), "-o", str(out)]
    result = subprocess.run([*command, *FLAGS, *methods], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out / "data")
    assert manifest.action_outputs == "q_values" and manifest.outputs[:3] == ("value", "action", "actor")
    assert [m.name for m in manifest.methods] == ["ig", "gradcam", "perturbation"]

    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{(out / 'interface.html').as_uri()}?compare=2")
    page.wait_for_function(DRAWN, timeout=30_000)
    grid = page.locator("section.compare")
    cells = grid.locator("li[data-method]")
    page.wait_for_function(
        "document.querySelectorAll('section.compare li[data-method] canvas').length >= 3", timeout=30_000
    )
    assert [cells.nth(i).get_attribute("data-method") for i in range(cells.count())] == [
        "ig",
        "gradcam",
        "perturbation",
    ]
    assert grid.locator("select").locator("option:checked").inner_text() == "Q of the action taken"
