"""Ground truth from the console RAM: real Breakout frames give OCAtari's paddle, ball and bricks
where the screen shows them; other environments give none, and say why."""

import numpy as np

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.config import TrajectoryConfig
from understanding_rl_vision.demo import resolve_checkpoint
from understanding_rl_vision.envs import ProcgenSpec
from understanding_rl_vision.evaluation.objects import SOURCE, read_objects
from understanding_rl_vision.rollout import collect_trajectories


def test_breakout_objects_come_from_the_ram_the_rollout_recorded():
    agent = load_checkpoint(resolve_checkpoint("bundled:breakout-attention"))
    played = collect_trajectories(agent, TrajectoryConfig(num_envs=1, num_steps=40), seed=0, progress=False)
    assert played.ram is not None and played.ram.shape == (1, 40, 128) and played.ram.dtype == np.uint8
    objects, note = read_objects(agent.env_spec, played.ram[0])
    assert note == SOURCE and objects is not None and objects.screen == (210, 160) and objects.crop_rows is None
    categories = {str(c) for c in objects.categories[objects.valid]}
    assert {"Player", "Block"} <= categories and "NoObject" not in categories
    frame = played.frames[0, -1]  # the screen at the last observation
    for box, category in zip(objects.boxes[-1][objects.valid[-1]], objects.categories[-1][objects.valid[-1]]):
        x, y, w, h = box
        assert 0 <= x < 160 and 0 <= y < 210 and w > 0 and h > 0
        if category == "Player":  # the paddle is drawn where the RAM says: its pixels are not black
            assert frame[y : y + h, x : x + w].max() > 0


def test_environments_without_console_ram_have_no_ground_truth():
    assert read_objects(ProcgenSpec("coinrun"), None) == (None, "")
    agent = load_checkpoint(resolve_checkpoint("bundled:breakout-attention"))
    objects, note = read_objects(agent.env_spec, None)
    assert objects is None and "without the console RAM" in note
