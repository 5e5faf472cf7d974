"""A run with a generator of states (seed 003): each target's states become a trajectory after the
played ones, every method explains them, their payloads agree with the manifest, the generated states
are what the agent sees, and a generator for another agent is refused before any work."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import load_agent
from understanding_rl_vision.agents.formats import checkpoint_identity
from understanding_rl_vision.cli import main
from understanding_rl_vision.contract import (
    check_against_manifest,
    map_key,
    read_manifest,
    read_payload,
    states_key,
    trajectory_key,
)
from understanding_rl_vision.contract.reader import read_sprites
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.states import GeneratorConfig, Target, train_generator
from understanding_rl_vision.states.measures import nearest_by_pixels, target_energies
from understanding_rl_vision.states.store import GENERATOR

TARGETS = ("high-value", "low-value", "action:RIGHT")


@pytest.fixture(scope="module")
def generator(checkpoint, tmp_path_factory):
    """A generator of the bundled agent's states, trained for one short epoch."""
    folder = tmp_path_factory.mktemp("generator")
    config = GeneratorConfig(num_frames=64, num_envs=4, epochs=1, batch_size=16)
    train_generator(load_agent(checkpoint), checkpoint_identity(checkpoint), folder, config, progress=False)
    return folder


@pytest.fixture(scope="module")
def run_dir(checkpoint, generator, small, tmp_path_factory):
    out = tmp_path_factory.mktemp("states-run") / "out"
    settings = {**small, "methods": ("ig", "gradient")}
    rl_clarity.run(
        checkpoint, out, progress=False, states=str(generator), state_targets=TARGETS, state_count=3, state_steps=15,
        **settings,
    )  # fmt: skip
    return out


def test_each_target_is_a_trajectory_after_the_played_ones(run_dir, small):
    data = run_dir / "data"
    manifest = read_manifest(data)
    played = small["num_envs"]
    assert manifest.states is not None and manifest.played_trajectories == played
    assert [t.name for t in manifest.states.targets] == list(TARGETS)
    assert [t.trajectory for t in manifest.states.targets] == [played, played + 1, played + 2]
    assert manifest.trajectory_lengths == (small["num_steps"],) * played + (3,) * 3
    assert manifest.states.start == "observations" and "epochs" in manifest.states.generator
    # bookmarks come from played frames only
    assert all(b.trajectory < played for b in manifest.bookmarks)
    for k, target in enumerate(manifest.states.targets):
        states = read_payload(data, states_key(k))
        check_against_manifest(manifest, states)
        trajectory = read_payload(data, trajectory_key(target.trajectory))
        check_against_manifest(manifest, trajectory)
        assert trajectory.firsts.all() and not trajectory.rewards.any() and not trajectory.advantages.any()
        assert (trajectory.actions == trajectory.logits.argmax(1)).all()
        for method in manifest.methods:  # every method explains the generated states
            if method.produces == "channels":
                key = f"{method.key_prefix}-{manifest.default_layer}-{target.trajectory}-0"
            else:
                key = map_key(method.key_prefix, -1, target.trajectory, 0)
            check_against_manifest(manifest, read_payload(data, key))


def test_the_states_are_what_the_agent_sees_and_their_neighbours_are_nearest(run_dir, checkpoint):
    data = run_dir / "data"
    manifest = read_manifest(data)
    agent = load_agent(checkpoint)
    observations = read_sprites(data, manifest.observations)
    for k, target in enumerate(manifest.states.targets):
        trajectory = read_payload(data, trajectory_key(target.trajectory))
        frames = read_sprites(data, trajectory.frames)  # CoinRun's frames are its observations
        out = agent(frames)
        np.testing.assert_allclose(trajectory.values, out.value.detach().numpy(), rtol=1e-4, atol=1e-4)
        states = read_payload(data, states_key(k))
        energy = target_energies(agent, Target(target.name), frames)
        np.testing.assert_allclose(states.energy, energy, rtol=1e-4, atol=1e-4)
        _, error = nearest_by_pixels(frames, observations)
        np.testing.assert_allclose(states.pixel_error, error, rtol=1e-3, atol=1e-6)
        chosen = observations[states.nearest_pixels]
        mse = ((chosen.astype(np.float64) - frames) / 255) ** 2
        np.testing.assert_allclose(mse.reshape(len(frames), -1).mean(1), error, rtol=1e-3, atol=1e-6)
        real = target_energies(agent, Target(target.name), observations)
        gaps = np.abs(real[None] - states.energy[:, None])
        assert (np.abs(real[states.nearest_energy] - states.energy) <= gaps.min(1) + 1e-5).all()
        assert ((states.novelty >= 0) & (states.novelty <= 1)).all()


def test_a_rerun_reuses_the_generated_states(checkpoint, generator, run_dir, small, tmp_path):
    before = read_payload(run_dir / "data", states_key(0))
    out = tmp_path / "again"
    settings = {**small, "methods": ("ig", "gradient")}
    rl_clarity.run(
        checkpoint, out, progress=False, cache_dir=str(run_dir) + ".cache", resample=False,
        states=str(generator), state_targets=TARGETS, state_count=3, state_steps=15, **settings,
    )  # fmt: skip
    np.testing.assert_array_equal(read_payload(out / "data", states_key(0)).energy, before.energy)


def test_without_a_generator_there_is_no_section(checkpoint, small, tmp_path):
    out = tmp_path / "plain"
    rl_clarity.run(checkpoint, out, progress=False, **small)
    manifest = read_manifest(out / "data")
    assert manifest.states is None and manifest.played_trajectories == small["num_envs"]
    assert '"states"' not in (out / "data" / "manifest.js").read_text()


def test_a_generator_for_another_agent_is_refused_before_any_work(checkpoint, generator, small, tmp_path, capsys):
    other = tmp_path / "other.safetensors"
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 1  # another agent: its weights differ by one bit
    other.write_bytes(bytes(data))
    out = tmp_path / "out"
    flags = ["--num-envs", "2", "--num-steps", "4", "--obs-num-envs", "2", "--num-obs", "2", "--quiet"]
    assert main(["run", str(other), "-o", str(out), "--states", str(generator), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "another agent" in err[0]
    assert not out.exists() and not (tmp_path / "out.cache").exists()


def test_bad_states_settings_are_one_line(checkpoint, generator, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["--states", str(tmp_path / "none")], "no generator"),
        (["--states", str(generator), "--state-targets", "action:JUMP_TWICE"], "no action"),
        (["--states", str(generator), "--state-targets", "calm"], "unknown target"),
        (["--states", str(generator), "--state-count", "0"], "state_count"),
    ]
    for flags, words in cases:
        assert main(["run", str(checkpoint), "-o", str(out), "--quiet", *flags]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and words in err[0], err
        assert not out.exists()


def test_a_damaged_generator_is_one_line(checkpoint, generator, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(generator, broken)
    (broken / GENERATOR).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(UserError, match="cannot read the generator"):
        rl_clarity.run(checkpoint, tmp_path / "out", progress=False, states=str(broken))
