"""Stable-Baselines3 zips: real SB3 trains PPO, A2C and DQN on ALE Breakout in a subprocess
(the ``sb3_zips`` fixture, tests/conftest.py); this process, with SB3 never imported, must
compute the same logits, values and Q-values."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from understanding_rl_vision.agents import describe_file, load_agent
from understanding_rl_vision.errors import CheckpointError


def ours(agent, observations: np.ndarray):
    with torch.no_grad():
        out = agent(observations)
    return out.logits.numpy(), out.value.numpy()


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_actor_critic_zip_matches_sb3(sb3_zips, algo):
    assert "stable_baselines3" not in sys.modules
    reference = np.load(sb3_zips / "reference.npz")
    agent = load_agent(sb3_zips / f"{algo}.zip", env="ALE/Breakout-v5")
    assert "stable_baselines3" not in sys.modules  # loading never needed it
    assert agent.action_names == ("NOOP", "FIRE", "RIGHT", "LEFT")
    assert agent.observation_shape == (84, 84, 4) and agent.env_spec.frame_stack == 4
    assert agent.gamma == 0.99 and agent.lam == (0.95 if algo == "ppo" else 1.0)
    logits, value = ours(agent, reference["observations"])
    log_probs = torch.log_softmax(torch.from_numpy(logits), -1).numpy()  # SB3 reports normalised logits
    np.testing.assert_allclose(log_probs, reference[f"{algo}_logits"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(value, reference[f"{algo}_value"], atol=1e-5, rtol=0)
    assert np.abs(np.diff(reference[f"{algo}_value"])).max() > 0  # the observations really differ


def test_dqn_zip_matches_sb3_q_values(sb3_zips):
    reference = np.load(sb3_zips / "reference.npz")
    agent = load_agent(sb3_zips / "dqn.zip", env="ALE/Breakout-v5")
    assert agent.action_outputs == "q_values"
    q, value = ours(agent, reference["observations"])
    np.testing.assert_allclose(q, reference["dqn_q"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(value, reference["dqn_q"].max(axis=1), atol=1e-5, rtol=0)
    actions = agent.act(reference["observations"], torch.Generator().manual_seed(0)).actions
    greedy = (actions == reference["dqn_q"].argmax(axis=1)).mean()
    assert greedy >= 0.8  # epsilon-greedy with epsilon 0.05


def test_inspect_names_the_policy_and_layers_without_an_env(sb3_zips):
    report = describe_file(sb3_zips / "ppo.zip")
    assert report["format"] == "stable-baselines3" and report["policy"] == "ActorCriticCnnPolicy"
    assert report["renamed"]["conv3"] == "features_extractor.cnn.4"
    shapes = {layer["name"]: layer["shape"] for layer in report["layers"]}
    assert shapes["conv1"] == [32, 20, 20] and shapes["conv3"] == [64, 7, 7] and shapes["fc"] == [512]
    assert report["env"] is None and report["num_actions"] == 4


def test_mlp_policy_is_not_a_pixel_policy(sb3_zips):
    with pytest.raises(CheckpointError, match=r"ActorCriticPolicy .*not a pixel policy"):
        load_agent(sb3_zips / "mlp.zip", env="ALE/Breakout-v5")


def test_zip_without_policy_weights(sb3_zips, tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(sb3_zips / "ppo.zip") as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            if item.filename != "policy.pth":
                target.writestr(item, source.read(item.filename))
    with pytest.raises(CheckpointError, match="without policy.pth"):
        load_agent(broken, env="ALE/Breakout-v5")


def test_sb3_zip_needs_an_env(sb3_zips):
    with pytest.raises(Exception, match="does not record its environment; name it with --env"):
        load_agent(sb3_zips / "ppo.zip")


def test_evaluate_command_takes_an_sb3_zip(sb3_zips):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "understanding_rl_vision.cli",
            "evaluate",
            str(sb3_zips / "dqn.zip"),
            "--env",
            "ALE/Breakout-v5",
            "--episodes",
            "2",
            "--num-envs",
            "2",
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["episodes"] == 2 and report["env"] == "ALE/Breakout-v5"
    assert report["env_spec"]["frame_stack"] == 4 and report["mean_return"] >= 0
