"""``states train`` on the DotGrid test env: tiny real trainings (64 frames, batches of 16, two or
three epochs of three steps), their files, their log, refusals, and an exact resume."""

from __future__ import annotations

import csv
import hashlib
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_states import ACTIONS, DOTGRID, SHAPE, tiny_agent
from torch import nn

from understanding_rl_vision.agents.base import Agent
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.states import GeneratorConfig, load_generator, read_header, train_generator
from understanding_rl_vision.states.train import FRAMES, LOG, LOG_COLUMNS, TRAIN_STATE, saved_generator_config

IDENTITY = hashlib.sha256(b"tiny agent").hexdigest()
CONFIG = GeneratorConfig(latent_size=8, width=4, num_frames=64, num_envs=4, batch_size=16, epochs=2)


def train(save_dir, config=CONFIG, **options):
    return train_generator(tiny_agent(), IDENTITY, save_dir, config, progress=False, **options)


def log_rows(save_dir) -> list[dict[str, str]]:
    with open(save_dir / LOG, newline="") as handle:
        return list(csv.DictReader(handle))


def weights(save_dir) -> dict[str, torch.Tensor]:
    return load_generator(save_dir, IDENTITY)[0].state_dict()


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("two") / "generator"
    assert train(save_dir) == save_dir / "generator.safetensors"
    return save_dir


@pytest.fixture
def copy_of_two_epochs(two_epochs, tmp_path):
    return shutil.copytree(two_epochs, tmp_path / "copy")


def test_a_training_writes_the_generator_its_state_its_frames_and_its_log(two_epochs):
    assert sorted(p.name for p in two_epochs.iterdir()) == sorted([FRAMES, "generator.safetensors", LOG, TRAIN_STATE])
    rows = log_rows(two_epochs)
    assert [int(r["epoch"]) for r in rows] == [1, 2] and [int(r["step"]) for r in rows] == [3, 6]  # 58 frames: 3 x 16
    assert list(rows[0]) == list(LOG_COLUMNS)
    for row in rows:
        assert all(math.isfinite(float(row[c])) for c in LOG_COLUMNS), row
        assert 0 <= float(row["heldout_action_agreement"]) <= 1 and float(row["heldout_psnr"]) > 0
        weights = CONFIG.perception_weight, CONFIG.kl_weight
        total = float(row["reconstruction"]) + weights[0] * float(row["perception"]) + weights[1] * float(row["kl"])
        assert float(row["loss"]) == pytest.approx(total, abs=2e-6)
    header = read_header(two_epochs)
    assert header["agent"] == IDENTITY and header["observation_shape"] == list(SHAPE)
    assert header["config"]["latent_size"] == 8 and header["extra"]["epochs"] == 2 and header["extra"]["frames"] == 64
    assert header["extra"]["heldout_psnr"] == pytest.approx(float(rows[-1]["heldout_psnr"]), abs=1e-5)
    vae, _ = load_generator(two_epochs, IDENTITY)
    assert vae.latent_size == 8 and vae.width == 4
    state = torch.load(two_epochs / TRAIN_STATE, map_location="cpu", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 6
    assert all(torch.equal(state["vae"][k], v) for k, v in vae.state_dict().items())
    assert saved_generator_config(two_epochs) == CONFIG
    with np.load(two_epochs / FRAMES) as frames:
        assert frames["observations"].shape == (64, *SHAPE) and frames["observations"].dtype == np.uint8
        assert frames["saliency"].shape == (64, 24, 24) and frames["saliency"].dtype == np.uint8
        assert np.all(frames["saliency"].reshape(64, -1).max(axis=1) == 255)  # each frame's peak is 1
        assert (frames["observations"][..., 0] == 220).any()  # DotGrid's red dot: real frames


def test_a_second_fresh_training_in_the_same_folder_is_refused(two_epochs):
    before = (two_epochs / LOG).read_bytes()
    with pytest.raises(UserError, match=r"already holds a generator's training .*--resume"):
        train(two_epochs)
    assert (two_epochs / LOG).read_bytes() == before


def test_resuming_continues_exactly_where_a_straight_training_would_be(copy_of_two_epochs, tmp_path):
    saved = weights(copy_of_two_epochs)
    before = log_rows(copy_of_two_epochs)
    train(copy_of_two_epochs, replace(CONFIG, epochs=3), resume=True)
    rows = log_rows(copy_of_two_epochs)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and rows[:2] == before
    assert int(rows[2]["step"]) == 9 and read_header(copy_of_two_epochs)["extra"]["epochs"] == 3
    resumed = weights(copy_of_two_epochs)
    assert any(float((resumed[k] - saved[k]).abs().max()) > 1e-4 for k in saved)
    train(tmp_path / "straight", replace(CONFIG, epochs=3))
    straight = weights(tmp_path / "straight")
    for name, tensor in straight.items():
        assert torch.allclose(resumed[name].float(), tensor.float(), rtol=1e-5, atol=1e-6), name
    for column in ("reconstruction", "kl", "loss", "heldout_psnr"):
        assert float(rows[2][column]) == pytest.approx(float(log_rows(tmp_path / "straight")[2][column]), rel=1e-4)


def test_resuming_a_finished_training_drops_log_rows_past_its_saved_epoch(copy_of_two_epochs):
    with open(copy_of_two_epochs / LOG, "a", newline="") as handle:  # a row written after the last save
        csv.writer(handle).writerow([3, 9, 1.0, 0.5, 0.0, 0.0, 0.5, 10.0, 10.0, 0.5])
    train(copy_of_two_epochs, resume=True)  # already at its 2 epochs: nothing to train
    assert [int(r["epoch"]) for r in log_rows(copy_of_two_epochs)] == [1, 2]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"latent_size": 16}, "latent_size 8 -> 16"),
        ({"saliency_weight": 1.0, "seed": 2}, "saliency_weight 4.0 -> 1.0, seed 0 -> 2"),
    ],
)
def test_resuming_with_another_setting_is_refused_naming_it(copy_of_two_epochs, change, named):
    resumable = "epochs, save_every, snapshot_every, device"
    with pytest.raises(UserError, match=rf"cannot resume .*\({named}\); only {resumable} may change"):
        train(copy_of_two_epochs, replace(CONFIG, epochs=3, **change), resume=True)
    assert len(log_rows(copy_of_two_epochs)) == 2


def test_resuming_nothing_is_refused(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        train(tmp_path, resume=True)


def test_a_damaged_training_state_is_one_line(copy_of_two_epochs):
    (copy_of_two_epochs / TRAIN_STATE).write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read the generator's training state") as info:
        train(copy_of_two_epochs, resume=True)
    assert len(str(info.value).splitlines()) == 1


class Remembering(nn.Module):
    """A model with a recurrent state (what makes an agent recurrent)."""

    state_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)


def test_a_recurrent_agent_is_refused(tmp_path):
    agent = Agent(model=Remembering(), observation_shape=SHAPE, action_names=ACTIONS, env_spec=DOTGRID)
    assert agent.recurrent
    with pytest.raises(UserError, match="need a feed-forward agent; this one is recurrent"):
        train_generator(agent, IDENTITY, tmp_path / "out", CONFIG, progress=False)
    assert not (tmp_path / "out").exists()


def test_the_agent_is_left_as_it_was(tmp_path):
    agent = tiny_agent()
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    train_generator(agent, IDENTITY, tmp_path, replace(CONFIG, epochs=1), progress=False)
    assert all(p.requires_grad for p in agent.model.parameters())
    assert all(p.grad is None for p in agent.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in agent.model.state_dict().items())


def test_a_training_stopped_before_its_first_epoch_resumes_with_its_frames(two_epochs, tmp_path, monkeypatch):
    """The frames and an epoch-0 state are saved before training starts, so a chunk stopped in the
    first epoch resumes instead of being refused as a folder that already holds a training."""
    import understanding_rl_vision.states.train as module

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    save_dir = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(module, "generator_loss", stop)
        with pytest.raises(KeyboardInterrupt):
            train(save_dir)
    assert sorted(p.name for p in save_dir.iterdir()) == sorted([FRAMES, LOG, TRAIN_STATE])  # no generator yet
    assert log_rows(save_dir) == []
    with pytest.raises(UserError, match="already holds"):
        train(save_dir)
    train(save_dir, resume=True)
    assert [int(r["epoch"]) for r in log_rows(save_dir)] == [1, 2]
    for name, tensor in weights(two_epochs).items():  # the same training as one that never stopped
        torch.testing.assert_close(weights(save_dir)[name], tensor, rtol=1e-4, atol=1e-5)


def test_snapshots_keep_the_generator_of_every_nth_epoch(two_epochs, tmp_path):
    save_dir = tmp_path / "snapshots"
    train(save_dir, replace(CONFIG, snapshot_every=1))
    first, second = (load_generator(save_dir / f"generator-epoch-{e}.safetensors", IDENTITY) for e in (1, 2))
    assert first[1]["extra"]["epochs"] == 1 and second[1]["extra"]["epochs"] == 2
    for name, tensor in weights(save_dir).items():  # the last snapshot is the generator itself
        torch.testing.assert_close(second[0].state_dict()[name], tensor, rtol=0, atol=0)
    moved = [
        n
        for n, t in first[0].state_dict().items()
        if t.is_floating_point() and not torch.equal(t, weights(save_dir)[n])
    ]
    assert moved  # the first epoch's generator is another one
    train(save_dir, replace(CONFIG, snapshot_every=2, epochs=3), resume=True)  # a resume may change it
    assert not (save_dir / "generator-epoch-3.safetensors").exists()
