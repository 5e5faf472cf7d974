"""``understanding-rl-vision video`` end to end: real runs in, mp4 and GIF files out, decoded back."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from understanding_rl_vision.cli import main
from understanding_rl_vision.contract.reader import read_manifest, read_payload
from understanding_rl_vision.contract.schema import map_key
from understanding_rl_vision.render.video import compose, encode, source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from chromium_setup import SMALL_RUN, random_checkpoint

FRAMES = SMALL_RUN["num_steps"]
SMALL_FLAGS = "--obs-num-envs 2 --num-obs 4 --obs-every 2 --layers 2b --nmf-features 2 --ig-steps 2 --quiet".split()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A small real run: integrated gradients, Grad-CAM and perturbation of the value, the action
    taken and the actor, on a random CoinRun agent."""
    from understanding_rl_vision import rl_clarity

    folder = tmp_path_factory.mktemp("video-run")
    rl_clarity.run(
        random_checkpoint(folder),
        folder / "run",
        methods=("ig", "gradcam", "perturbation"),
        explain=("value", "action", "actor"),
        **SMALL_RUN,
    )
    return folder / "run"


def decode(path: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream, dict]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        return frames, stream, dict(container.metadata)


def one_error(capsys, expected: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0], err


def sheet_for(run: Path, layout="row", **chosen) -> tuple[compose.Sheet, list[source.Panel], source.Trajectory]:
    data, manifest = source.read_run(run)
    track = source.read_trajectory(data, manifest, 0)
    panels = source.read_panels(data, manifest, 0, **chosen)
    return compose.plan_sheet(track, panels, layout), panels, track


def test_mp4_decodes_with_every_frame(run_dir, tmp_path, capsys):
    out = tmp_path / "all.mp4"
    assert main(["video", "--from", str(run_dir), "-o", str(out), "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    frames, stream, metadata = decode(out)
    assert len(frames) == FRAMES
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert metadata["comment"] == encode.MARKER
    sheet, panels, _ = sheet_for(run_dir)
    height, width = sheet.size
    assert frames[0].shape == (height + height % 2, width + width % 2, 3)
    titles = [p.title for p in panels]
    # ig and Grad-CAM of value and action; perturbation's actor and critic share one panel, action its own
    assert len(titles) == 6 and "Perturbation saliency · actor (blue) + value (red)" in titles


def _cell_centre(sheet: compose.Sheet, panel: int, cell: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    top, left = sheet.origin(panel)
    height, width = sheet.panel
    return top + int((cell[0] + 0.5) * height / grid[0]), left + int((cell[1] + 0.5) * width / grid[1])


def test_gradcam_overlay_is_red_where_the_map_is_strongest(run_dir, tmp_path):
    """Seed 000's look: frame / 2 + jet / 2, so 2 * pixel - frame is the jet colour there: its red
    end (red >= 128, no blue) at the map's peak, its blue end (0, 0, 128) where the map is lowest."""
    out = tmp_path / "gradcam.mp4"
    assert main(["video", "--from", str(run_dir), "--methods", "gradcam", "--outputs", "value", "-o", str(out)]) == 0
    frames, _, _ = decode(out)
    data = run_dir / "data"
    manifest = read_manifest(data)
    entry = next(m for m in manifest.all_methods if m.name == "gradcam")
    payload = read_payload(data, map_key(entry.key_prefix, manifest.default_layer, 0, 0))
    maps = payload.positive - payload.negative
    sheet, _, _ = sheet_for(run_dir, methods=["gradcam"], outputs=["value"])
    shift = sheet.origin(1)[1] - sheet.origin(0)[1]  # from the plain frame's panel to the overlay's

    def jet_there(index: int, cell: tuple[int, int]) -> np.ndarray:
        y, x = _cell_centre(sheet, 1, cell, maps.shape[1:])
        return 2 * frames[index][y, x].astype(float) - frames[index][y, x - shift].astype(float)

    checked = 0
    for index in range(FRAMES):
        low, high = maps[index].min(), maps[index].max()
        if high <= low:
            continue  # a flat map has no strongest position
        red, green, blue = jet_there(index, np.unravel_index(np.argmax(maps[index]), maps[index].shape))
        assert red >= 110 and blue <= 40 and red > green + 60, (index, red, green, blue)
        lowest = np.argwhere(maps[index] == low)
        inner = [
            c for c in lowest if (maps[index][max(c[0] - 1, 0) : c[0] + 2, max(c[1] - 1, 0) : c[1] + 2] == low).all()
        ]
        if inner:
            red, green, blue = jet_there(index, tuple(inner[0]))
            assert blue >= 100 and red <= 40 and green <= 40, (index, red, green, blue)
        checked += 1
    assert checked >= FRAMES // 2


def test_actor_saliency_saturates_blue_where_strongest(run_dir, tmp_path):
    out = tmp_path / "perturbation.mp4"
    assert (
        main(["video", "--from", str(run_dir), "--methods", "perturbation", "--outputs", "actor", "-o", str(out)]) == 0
    )
    frames, _, _ = decode(out)
    data = run_dir / "data"
    manifest = read_manifest(data)
    entry = next(m for m in manifest.all_methods if m.name == "perturbation")
    actor = list(manifest.outputs).index("actor")
    maps = read_payload(data, map_key(entry.key_prefix, -1, 0, actor)).positive
    index = int(np.argmax(maps.reshape(FRAMES, -1).max(axis=1)))
    peak = np.unravel_index(np.argmax(maps[index]), maps[index].shape)
    sheet, _, _ = sheet_for(run_dir, methods=["perturbation"], outputs=["actor"])
    y, x = _cell_centre(sheet, 1, peak, maps.shape[1:])
    assert frames[index][y, x][2] >= 230  # the strongest saliency adds full blue (seed 001's look)


def test_gif_grid_and_frame_cap(run_dir, tmp_path):
    out = tmp_path / "short.gif"
    args = ["video", "--from", str(run_dir), "--methods", "gradcam", "--layout", "grid", "--frames", "10"]
    assert main([*args, "-o", str(out), "--quiet"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 10
        assert gif.info["comment"].decode() == encode.MARKER
        sheet, panels, _ = sheet_for(run_dir, "grid", methods=["gradcam"])
        assert len(panels) == 2 and sheet.columns == 2 and sheet.rows == 2  # frame + value + action in a 2x2 grid
        assert gif.size == (sheet.size[1] + sheet.size[1] % 2, sheet.size[0] + sheet.size[0] % 2)


def test_computes_from_the_bundled_agent(tmp_path):
    out = tmp_path / "bundled.mp4"
    assert main(["video", "bundled", "--methods", "ig,gradcam", "--frames", "8", "-o", str(out), *SMALL_FLAGS]) == 0
    frames, _, _ = decode(out)
    assert len(frames) == 8
    manifest = read_manifest(tmp_path / "bundled-run" / "data")
    assert manifest.trajectory_lengths == (8,)
    assert [m.name for m in manifest.all_methods] == ["ig", "gradcam"]
    assert (tmp_path / "bundled-run" / "interface.html").is_file()
    # again from the finished run: nothing computed, the same frames drawn
    again = tmp_path / "again.mp4"
    assert main(["video", "--from", str(tmp_path / "bundled-run"), "-o", str(again), "--quiet"]) == 0
    assert len(decode(again)[0]) == 8


def test_overwrites_only_its_own_files(run_dir, tmp_path, capsys):
    theirs = tmp_path / "theirs.mp4"
    theirs.write_bytes(b"not a video of ours")
    assert main(["video", "--from", str(run_dir), "-o", str(theirs), "--overwrite", "--quiet"]) == 2
    one_error(capsys, "not written by this tool")
    assert theirs.read_bytes() == b"not a video of ours"
    ours = tmp_path / "ours.mp4"
    assert main(["video", "--from", str(run_dir), "--frames", "3", "-o", str(ours), "--quiet"]) == 0
    assert main(["video", "--from", str(run_dir), "--frames", "3", "-o", str(ours), "--quiet"]) == 2
    one_error(capsys, "exists; pass --overwrite")
    assert main(["video", "--from", str(run_dir), "--frames", "5", "-o", str(ours), "--overwrite", "--quiet"]) == 0
    assert len(decode(ours)[0]) == 5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-o", "{tmp}/x.avi"], "must end in .mp4 or .gif"),
        (["-o", "{tmp}/missing/x.mp4"], "no such folder"),
        (["--layer", "9z", "--methods", "gradcam"], "not computed at layer '9z'"),
        (["--methods", "smoothgrad"], "method(s) smoothgrad not in this run"),
        (["--outputs", "logit:LEFT"], "output(s) logit:LEFT not in this run"),
        (["--num-steps", "5"], "num_steps would change what it computed"),
    ],
)
def test_bad_input_is_one_error_line(run_dir, tmp_path, capsys, args, expected):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    output = [] if "-o" in args else ["-o", str(tmp_path / "v.mp4")]
    assert main(["video", "--from", str(run_dir), *output, *args, "--quiet"]) == 2
    one_error(capsys, expected)
    assert not list(tmp_path.iterdir())  # no video, no partial file


def test_a_bad_flag_value_is_one_error_line(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["video", "--from", str(run_dir), "--layout", "circle", "-o", str(tmp_path / "v.mp4")])
    assert stop.value.code == 2
    one_error(capsys, "invalid choice")


def test_checkpoint_and_from_together_or_neither(run_dir, tmp_path, capsys):
    assert main(["video", "bundled", "--from", str(run_dir), "-o", str(tmp_path / "v.mp4")]) == 2
    one_error(capsys, "not both")
    assert main(["video", "-o", str(tmp_path / "v.mp4")]) == 2
    one_error(capsys, "give a checkpoint")
    assert main(["video", "--from", str(tmp_path), "-o", str(tmp_path / "v.mp4")]) == 2
    one_error(capsys, "is not a finished run")


def test_an_interrupted_video_leaves_no_file(run_dir, tmp_path, monkeypatch):
    drawn = []

    def interrupted(*args, **kwargs):
        for batch in real(*args, **kwargs):
            drawn.append(len(batch))
            yield batch
            raise KeyboardInterrupt

    real = compose.draw_frames
    monkeypatch.setattr("understanding_rl_vision.render.video.draw_frames", interrupted)
    out = tmp_path / "cut.mp4"
    assert main(["video", "--from", str(run_dir), "-o", str(out), "--quiet"]) == 130
    assert drawn == [compose.BATCH if FRAMES > compose.BATCH else FRAMES]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no video, no partial file


def test_seed_000_grad_cam_of_a_pfrl_mario_agent(tmp_path):
    """Seed 000 end to end: a PFRL PPO network (train_ppo_ale.py's layout, 7 SIMPLE_MOVEMENT
    outputs) saved as PFRL saves it, Grad-CAM of the value and the action taken over Super Mario Bros."""
    from pfrl_nets import save_ppo  # builds and saves with PFRL itself, a test dependency

    torch.manual_seed(0)
    agent_dir = tmp_path / "pfrl-agent"
    save_ppo(agent_dir, 7)

    out = tmp_path / "mario.mp4"
    args = ["video", str(agent_dir), "--env", "SuperMarioBros-1-1-v0", "--methods", "gradcam"]
    small = ["--obs-num-envs", "2", "--num-obs", "4", "--obs-every", "2", "--layers", "relu3", "--quiet"]
    assert main([*args, "--outputs", "value,action", "--frames", "6", "-o", str(out), *small]) == 0
    frames, _, _ = decode(out)
    assert len(frames) == 6
    manifest = read_manifest(tmp_path / "mario-run" / "data")
    assert manifest.env_id == "SuperMarioBros-1-1-v0" and manifest.outputs == ("value", "action")
    assert manifest.action_names == ("NOOP", "RIGHT", "RIGHT+JUMP", "RIGHT+RUN", "RIGHT+JUMP+RUN", "JUMP", "LEFT")
    sheet, panels, track = sheet_for(tmp_path / "mario-run")
    assert track.frames.shape[1:] == (240, 256, 3) and sheet.zoom == 1  # the colour screen, as a person sees it
    assert [p.look for p in panels] == ["jet", "jet"]


def test_seed_001_actor_blue_critic_red_of_the_bundled_lstm_agent(tmp_path):
    """Seed 001 end to end: the bundled A3C LSTM Breakout agent, perturbation saliency with the 2018
    settings (radius 5, stride 5, blur 3 on 80x80), the actor added in blue and the critic in red
    over the playing field the agent sees."""
    out = tmp_path / "seed-001.mp4"
    args = ["video", "bundled:breakout-lstm", "--methods", "perturbation", "--outputs", "actor,value"]
    small = [flag if flag != "2b" else "3a" for flag in SMALL_FLAGS]  # the lstm network's layers: 1a..4a
    assert main([*args, "--frames", "6", "-o", str(out), *small]) == 0
    frames, _, _ = decode(out)
    run = tmp_path / "seed-001-run"
    data = run / "data"
    manifest = read_manifest(data)
    assert manifest.trajectory_lengths == (6,)
    entry = next(m for m in manifest.all_methods if m.name == "perturbation")
    track = source.read_trajectory(data, manifest, 0)
    assert track.frames.shape[1:] == (160, 160, 3)  # rows 35:195 of the screen, what the 80x80 input covers
    sheet, panels, _ = sheet_for(run, methods=["perturbation"], outputs=["actor", "value"])
    assert [p.title for p in panels] == ["Perturbation saliency · actor (blue) + value (red)"]
    for name, channel in (("actor", 2), ("value", 0)):
        maps = read_payload(data, map_key(entry.key_prefix, -1, 0, list(manifest.outputs).index(name))).positive
        assert maps.shape == (6, 80, 80) and maps.max() > 0
        index = int(np.argmax(maps.reshape(6, -1).max(axis=1)))
        peak = np.unravel_index(np.argmax(maps[index]), maps[index].shape)
        y, x = _cell_centre(sheet, 1, peak, maps.shape[1:])
        assert frames[index][y, x][channel] >= 200, (name, frames[index][y, x])
