"""The scripts in examples/ and its notebook, each at its quick size (RLV_EXAMPLE_QUICK=1), in a
process of its own as a user would run them, writing under a temporary folder (RLV_EXAMPLE_OUT)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import nbformat
import pytest
import torch
from nbclient import NotebookClient
from PIL import Image

from understanding_rl_vision.attribution.methods import REGISTRY
from understanding_rl_vision.contract import read_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 240
"""Seconds one example may take at its quick size (each takes 5-25 s on 2 cores)."""


def run_example(name: str, out: Path, *args: str) -> str:
    """Run ``examples/<name>`` quick, in ``out`` (also its output folder); its stdout."""
    env = {**os.environ, "RLV_EXAMPLE_QUICK": "1", "RLV_EXAMPLE_OUT": str(out)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def card_lines(stdout: str) -> dict[str, str]:
    """The report card's method rows as format_card prints them, by title."""
    titles = ("Integrated gradients", "Grad-CAM", "Perturbation saliency")
    lines = stdout.splitlines()
    return {t: line for line in lines for t in titles if re.match(rf"{re.escape(t)}\s+(2b|input)\s", line)}


def test_coinrun_interface(tmp_path):
    stdout = run_example("coinrun_interface.py", tmp_path)
    folder = tmp_path / "coinrun-interface" / "vision"
    assert (folder / "interface.html").is_file()
    assert f"interface: {folder / 'interface.html'}" in stdout
    manifest = read_manifest(folder / "data")
    assert [m.name for m in manifest.methods] == ["ig", "gradcam", "perturbation"]
    assert manifest.report is not None
    assert [row.method for row in manifest.report.rows] == ["ig", "gradcam", "perturbation"]
    assert set(card_lines(stdout)) == {"Integrated gradients", "Grad-CAM", "Perturbation saliency"}


def test_sb3_breakout(tmp_path):
    run_example("sb3_breakout.py", tmp_path)
    out = tmp_path / "sb3-breakout"
    assert (out / "ppo-breakout.zip").is_file()
    manifest = read_manifest(out / "vision" / "data")
    assert (out / "vision" / "interface.html").is_file()
    assert [layer.name for layer in manifest.layers] == ["conv3"]
    assert "FIRE" in manifest.action_names and len(manifest.action_names) == 4


def test_custom_agent(tmp_path):
    stdout = run_example("custom_agent.py", tmp_path)
    plain = torch.nn.Conv2d(3, 3, 1)  # no attention layer: what applies to the example's network
    applicable = [n for n, m in REGISTRY.items() if m.info.produces != "tree" and m.applies_to(plain)]
    assert "ig" in applicable and "perturbation" in applicable and "attention-tree" not in applicable
    drawn = re.findall(r"^\s*(\S+): (?:map|channels) at ", stdout, re.MULTILINE)
    assert drawn == applicable
    assert re.search(rf"methods\.png: {len(applicable)} methods$", stdout, re.MULTILINE)
    with Image.open(tmp_path / "custom-agent" / "methods.png") as image:
        rows = math.ceil((len(applicable) + 1) / 4)  # the frame, then one panel per method, 4 a row
        assert image.size == (12 * 80, round(3.3 * rows * 80))  # figsize (3 x 4, 3.3 x rows) at 80 dpi


def test_compare_methods(tmp_path):
    stdout = run_example("compare_methods.py", tmp_path)
    rows = card_lines(stdout)
    assert set(rows) == {"Integrated gradients", "Grad-CAM"}
    assert all(" 2b " in line for line in rows.values())
    assert "2 frames, output value" in stdout


def test_video(tmp_path):
    stdout = run_example("video.py", tmp_path)
    mp4, gif = tmp_path / "video" / "coinrun.mp4", tmp_path / "video" / "coinrun.gif"
    assert mp4.stat().st_size > 0 and gif.stat().st_size > 0
    with av.open(str(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 16
    with Image.open(gif) as image:
        assert image.n_frames == 16
    assert (tmp_path / "video" / "coinrun-run" / "interface.html").is_file()
    assert "panels Grad-CAM" in stdout


def test_edit_and_evaluate(tmp_path):
    stdout = run_example("edit_and_evaluate.py", tmp_path, "2")
    returns = re.findall(r"^(original|edited) return:\s+(-?\d+\.\d+)", stdout, re.MULTILINE)
    assert [kind for kind, _ in returns] == ["original", "edited"]
    assert all(0 <= float(value) <= 10 for _, value in returns)  # CoinRun pays 10 for the coin
    assert "removed feature 2 of layer 2b" in stdout
    assert (tmp_path / "edit-and-evaluate" / "edited.safetensors").is_file()


def test_notebook(tmp_path, monkeypatch):
    path = EXAMPLES / "notebook.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "clear the notebook's outputs"
    monkeypatch.setenv("RLV_EXAMPLE_QUICK", "1")  # the kernel inherits the environment
    monkeypatch.setenv("RLV_EXAMPLE_OUT", str(tmp_path))
    client = NotebookClient(
        notebook, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1 and "<iframe" in html[0] and "/interface.html" in html[0]
    printed = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert set(card_lines(printed)) == {"Integrated gradients", "Grad-CAM", "Perturbation saliency"}
    assert (tmp_path / "notebook" / "vision" / "interface.html").is_file()


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")))
def test_every_example_says_what_it_needs_and_takes(name):
    """Each script opens with what it shows, what it needs and what it takes on 2 cores."""
    text = (EXAMPLES / name).read_text()
    docstring = text.split('"""')[1]
    assert "What it shows:" in docstring and "Needs:" in docstring and "Time on 2 CPU cores:" in docstring
    assert "RLV_EXAMPLE_QUICK" in docstring and "from _quick import" in text
    assert f"test_{Path(name).stem}" in globals(), f"{name} has no test"
