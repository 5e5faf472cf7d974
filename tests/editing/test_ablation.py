"""The ablation table on the bundled agent: every agent plays the same levels, the original's row
is what ``evaluate`` measures, and episode ends are classified as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.contract.schema import AblationInfo, EpisodeStats
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.editing import ablate, format_table
from understanding_rl_vision.editing.ablation import PROCGEN_STEP_LIMIT, summarise
from understanding_rl_vision.envs import Episode
from understanding_rl_vision.errors import UserError
from understanding_rl_vision.training import evaluate


@pytest.fixture(scope="module")
def agent():
    return load_checkpoint(bundled_agent_path())


def silent_direction(agent) -> np.ndarray:
    """A direction of relu_fc (256) orthogonal to every policy and value weight, yet present in
    the activations: removing it changes no output, so the agent plays exactly as before."""
    weights = torch.cat([agent.model.policy.weight, agent.model.value.weight]).detach().double().numpy()
    basis, _ = np.linalg.qr(weights.T)  # (256, 16): the outputs' row space
    with torch.no_grad():
        hidden = torch.relu(agent.model.fc(torch.ones(1, 2048))).double().numpy()[0]
    return hidden - basis @ (basis.T @ hidden)


def used_direction(agent) -> np.ndarray:
    """The relu_fc direction the policy's most different logits read."""
    w = agent.model.policy.weight.detach().double().numpy()
    return w[7] - w[1]  # RIGHT against LEFT


def test_ablate_plays_the_same_levels_as_evaluate(agent):
    directions = [silent_direction(agent), used_direction(agent)]
    result = ablate(agent, "relu_fc", directions, 4, num_envs=2, seed=1, names=["silent", "right"], progress=False)
    reference = evaluate(agent, 4, num_envs=2, seed=1, baseline=False, progress=False)
    assert result.original.episodes == 4 and all(f.episodes == 4 for f in result.features)
    assert result.original.mean_return == pytest.approx(reference.mean_return)
    assert result.original.completion == pytest.approx(reference.level_completion_rate)
    assert result.features[0] == result.original  # nothing the outputs read was removed: the same play
    assert result.changes[0] == 0 and result.change_intervals[0] == 0
    for stats in (result.original, *result.features):
        assert stats.completion is not None and 0 <= stats.completion <= 1
        assert stats.completion + stats.timeouts + stats.deaths == pytest.approx(1)
        assert 0 <= stats.mean_return <= 10 and stats.interval >= 0  # CoinRun pays 10 for the coin
    assert result.features[1].mean_return == pytest.approx(result.original.mean_return + result.changes[1])
    assert result.names == ("silent", "right") and result.env == "procgen:coinrun"
    info = result.info(1)
    assert isinstance(info, AblationInfo) and info.layer == 1 and info.original == result.original
    table = format_table(result)
    assert "without feature 1 (silent)" in table and "without feature 2 (right)" in table and "original" in table
    assert "1000 steps" in table  # how timeouts were told


def test_an_ablation_gives_the_manifest_record(agent):
    info = ablate(agent, "relu_fc", [silent_direction(agent)], 2, num_envs=2, seed=1, progress=False).info(4)
    assert isinstance(info, AblationInfo) and info.layer == 4 and len(info.features) == 1
    assert "timeout" in info.ends


def test_episode_ends_are_classified():
    episodes = [
        Episode(0, 10.0, 50, True),
        Episode(1, 0.0, PROCGEN_STEP_LIMIT, False),  # the step limit: a timeout
        Episode(0, 0.0, 30, False),  # ended early without the coin: died
        Episode(1, 0.0, 999, False),
    ]
    stats = summarise(episodes, PROCGEN_STEP_LIMIT)
    sd = np.std([10, 0, 0, 0], ddof=1)
    assert stats == EpisodeStats(
        episodes=4, mean_return=2.5, interval=pytest.approx(1.96 * sd / 2), completion=0.25, timeouts=0.25, deaths=0.5
    )
    atari = summarise([Episode(0, 3.0, 10, None), Episode(1, 5.0, 10, None)], None)
    assert atari.completion is None and atari.timeouts == 0 and atari.deaths == 0
    assert atari.interval == pytest.approx(1.96 * math.sqrt(2) / math.sqrt(2))


def test_bad_requests_are_refused(agent):
    with pytest.raises(UserError, match="at least 2 episodes"):
        ablate(agent, "relu_fc", [silent_direction(agent)], 1, progress=False)
    with pytest.raises(UserError, match="no feature directions"):
        ablate(agent, "relu_fc", [], 4, progress=False)
    with pytest.raises(UserError, match="2 names for 1 directions"):
        ablate(agent, "relu_fc", [silent_direction(agent)], 4, names=["a", "b"], progress=False)
    with pytest.raises(UserError, match="over 3 channels, but the layer has 256"):
        ablate(agent, "relu_fc", [(1.0, 2.0, 3.0)], 4, progress=False)
