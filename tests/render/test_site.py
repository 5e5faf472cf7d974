"""``understanding-rl-vision site``: finished real runs gathered into one static site."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.cli import main
from understanding_rl_vision.contract.reader import read_manifest, read_payload, read_sprite
from understanding_rl_vision.contract.schema import trajectory_key
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.render import site as site_module
from understanding_rl_vision.render.html import read_page
from understanding_rl_vision.serve import make_server, url_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from chromium_setup import SMALL_RUN, random_checkpoint

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two real small runs of one random CoinRun agent, both in folders named ``run``: integrated
    gradients alone, and integrated gradients with Grad-CAM under a hostile title."""
    folder = tmp_path_factory.mktemp("site-runs")
    checkpoint = random_checkpoint(folder)
    first = rl_clarity.run(checkpoint, folder / "a" / "run", cache_dir=folder / "cache", title="first", **SMALL_RUN)
    second = rl_clarity.run(
        checkpoint,
        folder / "b" / "run",
        cache_dir=folder / "cache",
        methods=("ig", "gradcam"),
        title=HOSTILE,
        **SMALL_RUN,
    )
    return first.directory, second.directory


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    assert main(["site", str(runs[0]), str(runs[1]), "-o", str(out), "--title", "two runs"]) == 0
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_index_lists_each_run_with_what_it_holds(built, runs):
    index = (built / "index.html").read_text()
    entries = re.findall(r'<li class="run" data-slug="([^"]+)">', index)
    assert entries == ["run", "run-2"]  # two folders named run: numbered, in the order given
    assert "<title>two runs</title>" in index
    assert HOSTILE not in index and "&lt;img src=x onerror=alert(1)&gt;" in index  # text, never markup
    methods = re.findall(r'<dd class="methods">([^<]*)</dd>', index)
    assert methods == ["Integrated gradients", "Integrated gradients, Grad-CAM"]
    frames = 2 * SMALL_RUN["num_steps"]
    assert re.findall(r'<dd class="frames">([^<]*)</dd>', index) == [f"2 ({frames} frames)"] * 2
    assert re.findall(r'<dd class="env">([^<]*)</dd>', index) == ["procgen:coinrun"] * 2
    sizes = re.findall(r'<dd class="size">([\d.]+) (KB|MB)</dd>', index)
    for (number, unit), slug in zip(sizes, entries, strict=True):
        on_disk = sum(p.stat().st_size for p in (built / slug).rglob("*") if p.is_file())
        shown, rounding = (float(number) * 1e3, 500) if unit == "KB" else (float(number) * 1e6, 0.05e6)
        assert shown == pytest.approx(on_disk, rel=0.06, abs=rounding)  # one decimal of MB: up to 50 KB off
    assert all(f'href="{slug}/interface.html"' in index for slug in entries)


def test_each_run_is_copied_whole_and_its_page_links_the_shared_bundle(built, runs):
    for source, slug in zip(runs, ("run", "run-2"), strict=True):
        assert files(built / slug / "data") == files(source / "data")
        page = (built / slug / "interface.html").read_text()
        assert '<script src="../assets/app.js"></script>' in page
        assert '<link rel="stylesheet" href="../assets/app.css">' in page
        assert len(page) < 10_000 < (source / "interface.html").stat().st_size  # the bundle is not inlined
        assert read_page(built / slug / "interface.html") == read_page(source / "interface.html")
    static = Path(site_module.__file__).parent / "static"
    assert files(built / "assets") == files(static)  # one copy of the bundle, as the package ships it


def test_the_thumbnail_is_the_first_trajectorys_middle_frame_enlarged(built, runs):
    data = runs[0] / "data"
    manifest = read_manifest(data)
    middle = manifest.trajectory_lengths[0] // 2
    frame = read_sprite(data, read_payload(data, trajectory_key(0)).frames, middle)[..., :3]
    thumbnail = np.asarray(Image.open(built / "run" / "thumbnail.png").convert("RGB"))
    scale = site_module.THUMBNAIL_WIDTH // frame.shape[1]
    assert scale >= 2 and thumbnail.shape == (frame.shape[0] * scale, frame.shape[1] * scale, 3)
    np.testing.assert_array_equal(thumbnail[::scale, ::scale], frame)


def test_the_site_is_written_only_where_this_tool_may(built, runs, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["site", str(runs[0]), "-o", str(foreign), "--overwrite"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep" and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert main(["site", str(runs[0]), "-o", str(built)]) == 2  # exists: needs --overwrite
    assert main(["site", str(tmp_path), "-o", str(tmp_path / "s")]) == 2  # not a run
    assert main(["site", str(runs[0]), str(runs[0]), "-o", str(tmp_path / "s")]) == 2
    assert main(["site", str(runs[0]), "-o", str(runs[0] / "site")]) == 2  # inside a run
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5 and all(line.startswith("error: ") for line in errors), errors
    assert "not a finished run" in errors[2] and "twice" in errors[3] and "contain each other" in errors[4]
    assert not (tmp_path / "s").exists() and not (runs[0] / "site").exists()


def test_overwrite_replaces_a_site_this_tool_wrote(runs, tmp_path):
    out = tmp_path / "site"
    rl_clarity.site([runs[0], runs[1]], out)
    index = rl_clarity.site([runs[1]], out, title="one run", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [".understanding-rl-vision.json", "assets", "index.html", "run"]
    assert "<title>one run</title>" in index.read_text()


def test_an_empty_list_of_runs_is_refused():
    with pytest.raises(UserError, match="at least one run"):
        rl_clarity.site([], "site")


def test_serve_opens_a_site_at_its_index(built):
    server = make_server(built, port=0, quiet=True)
    try:
        assert url_of(server).endswith("/index.html")
    finally:
        server.server_close()
