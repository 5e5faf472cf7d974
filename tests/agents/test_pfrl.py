"""PFRL agents: real PFRL networks (the Atari examples' layouts) with random weights, saved by real
PFRL agents' ``save()``, loaded through our loader without PFRL, and checked output for output
against PFRL's own forward pass on real Breakout frames fed as the examples' ``phi`` feeds them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pfrl  # a test dependency only: the package never imports it
import pfrl_nets
import pytest
import torch
from cleanrl_nets import CleanRLAtariDQN, randomise, real_observations
from pfrl.initializers import init_chainer_default
from pfrl.q_functions import DiscreteActionValueHead, DuelingDQN
from pfrl_nets import nature_trunk
from torch import nn

from understanding_rl_vision.agents import describe_file, load_agent
from understanding_rl_vision.agents.formats import read_foreign, weights_file
from understanding_rl_vision.agents.formats.pfrl import PFRL_LAYOUTS
from understanding_rl_vision.attribution.layers import discover_layers
from understanding_rl_vision.cli import main
from understanding_rl_vision.errors import CheckpointError

ENV = "ALE/Breakout-v5"
ACTIONS = 4
CLOSE = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return real_observations(ENV)


def phi(obs: np.ndarray) -> torch.Tensor:
    """What PFRL's Atari examples feed the network: channels-first frames (as PFRL's Atari wrappers
    give them) as float32 / 255."""
    channels_first = np.ascontiguousarray(obs.transpose(0, 3, 1, 2))
    return torch.from_numpy(np.asarray(channels_first, dtype=np.float32) / 255)


def softmax_policy_and_value(hidden: int = 512) -> nn.Module:
    return pfrl_nets.softmax_policy_and_value(ACTIONS, hidden)


def ppo_model() -> nn.Module:
    return randomise(nn.Sequential(*nature_trunk(), softmax_policy_and_value()))


def large_cnn_actor_critic() -> nn.Module:
    return randomise(nn.Sequential(pfrl.nn.LargeAtariCNN(), softmax_policy_and_value()))


class SingleSharedBias(nn.Module):
    """train_dqn_ale.py's --arch doubledqn bias: one parameter added to every action's value."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros([1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias.expand_as(x)


def dqn_model(arch: str) -> nn.Module:
    """train_dqn_ale.py's parse_arch: ``nature``, ``doubledqn`` and ``dueling``."""
    if arch == "dueling":
        return randomise(DuelingDQN(ACTIONS))
    if arch == "doubledqn":
        head = [init_chainer_default(nn.Linear(512, ACTIONS, bias=False)), SingleSharedBias()]
    else:
        head = [init_chainer_default(nn.Linear(512, ACTIONS))]
    return randomise(nn.Sequential(pfrl.nn.LargeAtariCNN(), *head, DiscreteActionValueHead()))


def optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-4)


def save_actor_critic(model: nn.Module, directory, algorithm: str) -> None:
    if algorithm == "ppo":
        agent = pfrl.agents.PPO(model, optimizer(model), phi=phi)
    else:
        agent = pfrl.agents.A2C(model, optimizer(model), gamma=0.99, num_processes=1, phi=phi)
    agent.save(str(directory))


def save_q_function(model: nn.Module, directory) -> None:
    agent = pfrl.agents.DoubleDQN(
        model,
        optimizer(model),
        pfrl.replay_buffers.ReplayBuffer(10),
        gamma=0.99,
        explorer=pfrl.explorers.ConstantEpsilonGreedy(0.05, lambda: 0),
        replay_start_size=10,
        minibatch_size=10,
        phi=phi,
    )
    agent.save(str(directory))


@pytest.mark.parametrize(
    ("make", "algorithm", "layout"),
    [
        (ppo_model, "ppo", "pfrl-actor-critic"),
        (ppo_model, "a2c", "pfrl-actor-critic"),
        (large_cnn_actor_critic, "a2c", "pfrl-actor-critic"),
    ],
)
def test_actor_critic_matches_pfrl(tmp_path, frames, make, algorithm, layout):
    model = make()
    save_actor_critic(model, tmp_path / "agent", algorithm)
    with torch.no_grad():
        distribution, value = model(phi(frames))
    for path in (tmp_path / "agent", tmp_path / "agent" / "model.pt"):  # the directory or its model.pt
        agent = load_agent(path, env=ENV)
        with torch.no_grad():
            out = agent(frames)
        torch.testing.assert_close(torch.log_softmax(out.logits, -1), distribution.logits, **CLOSE)
        torch.testing.assert_close(torch.softmax(out.logits, -1), distribution.probs, **CLOSE)
        torch.testing.assert_close(out.value, value.reshape(-1), **CLOSE)
        assert agent.architecture.name == "nature" and agent.action_outputs == "logits"
    assert value.std() > 0  # the frames really differ


@pytest.mark.parametrize("arch", ["nature", "doubledqn", "dueling"])
def test_q_functions_match_pfrl(tmp_path, frames, arch):
    model = dqn_model(arch)
    save_q_function(model, tmp_path / "agent")
    assert (tmp_path / "agent" / "target_model.pt").is_file()  # a DQN agent's directory, as PFRL writes it
    agent = load_agent(tmp_path / "agent", env=ENV)
    with torch.no_grad():
        q = model(phi(frames)).q_values
        out = agent(frames)
    torch.testing.assert_close(out.logits, q, **CLOSE)
    torch.testing.assert_close(out.value, q.max(dim=1).values, **CLOSE)
    assert agent.action_outputs == "q_values" and agent.architecture.kwargs["head"] == "q"
    assert agent.action_names == ("NOOP", "FIRE", "RIGHT", "LEFT")


@pytest.mark.parametrize(
    "make", [ppo_model, large_cnn_actor_critic, lambda: dqn_model("nature"), lambda: dqn_model("dueling")]
)
def test_hooked_layers_are_the_convolutions(tmp_path, make):
    torch.save(make().state_dict(), tmp_path / "model.pt")
    agent = load_agent(tmp_path / "model.pt", env=ENV)
    layers = agent.named_layers()
    assert [name for name, module in layers.items() if isinstance(module, nn.Conv2d)] == ["conv1", "conv2", "conv3"]
    found = discover_layers(agent.model, torch.zeros(1, 4, 84, 84))
    assert [(layer.name, layer.shape) for layer in found] == [
        ("relu1", (32, 20, 20)),
        ("relu2", (64, 9, 9)),
        ("relu3", (64, 7, 7)),
    ]


def test_sniffed_by_content_not_by_name(tmp_path, frames):
    model = dqn_model("dueling")
    torch.save(model.state_dict(), tmp_path / "weights.bin")
    foreign = read_foreign(tmp_path / "weights.bin")
    assert foreign.format == "pfrl" and foreign.recognised.layout.startswith("pfrl DuelingDQN")
    assert foreign.recognised.architecture.kwargs == {"hidden_size": 1024, "head": "q"}  # both streams in fc


def test_inspect_names_the_format_and_layout(tmp_path, capsys):
    save_actor_critic(ppo_model(), tmp_path / "agent", "ppo")
    report = describe_file(tmp_path / "agent")
    assert report["format"] == "pfrl" and report["layout"].startswith("pfrl train_ppo_ale.py model")
    assert report["renamed"]["policy"] == "9.child_modules.0.0" and report["saved"] == ["model.pt", "optimizer.pt"]
    assert report["num_actions"] == ACTIONS and report["env"] is None
    assert main(["inspect", str(tmp_path / "agent"), "--env", ENV, "--json"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["action_names"] == ["NOOP", "FIRE", "RIGHT", "LEFT"] and full["preprocessing"]["scale"] == 1 / 255
    assert {"name": "conv3", "type": "Conv2d", "shape": [64, 7, 7]} in full["layers"]
    assert main(["inspect", str(tmp_path / "agent" / "model.pt")]) == 0
    assert "format:        pfrl (pfrl train_ppo_ale.py model" in capsys.readouterr().out
    assert weights_file(tmp_path / "agent") == weights_file(tmp_path / "agent" / "model.pt")  # what a digest reads


def small_a2c_model() -> nn.Module:
    """train_a2c_ale.py's and train_a3c.py's two-convolution network."""
    return nn.Sequential(
        nn.Conv2d(4, 16, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2592, 256),
        nn.ReLU(),
        softmax_policy_and_value(256),
    )


def categorical_dqn() -> nn.Module:
    return nn.Sequential(
        pfrl.nn.LargeAtariCNN(),
        pfrl.q_functions.DistributionalFCStateQFunctionWithDiscreteAction(
            512, ACTIONS, 51, -10, 10, n_hidden_channels=0, n_hidden_layers=0
        ),
    )


def damaged_dueling() -> dict[str, torch.Tensor]:
    state = DuelingDQN(ACTIONS).state_dict()
    state["v_stream.output.weight"] = torch.zeros(1, 256)
    return state


def hostile_dueling() -> dict[str, torch.Tensor]:
    """Streams of 1 MB that would fold into a Q layer of 10^10 weights."""
    state = DuelingDQN(ACTIONS).state_dict()
    wide = 100_000
    state |= {
        "a_stream.hidden_layers.0.weight": torch.zeros(1, 1),
        "a_stream.hidden_layers.0.bias": torch.zeros(1),
        "a_stream.output.weight": torch.zeros(wide, 1),
        "a_stream.output.bias": torch.zeros(wide),
        "v_stream.hidden_layers.0.weight": torch.zeros(wide, 1),
        "v_stream.hidden_layers.0.bias": torch.zeros(wide),
        "v_stream.output.weight": torch.zeros(1, wide),
    }
    return state


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (lambda: small_a2c_model().state_dict(), "two-convolution NIPS 2013 CNN"),
        (lambda: pfrl.nn.RecurrentSequential(*nature_trunk(), nn.GRU(512, 512)).state_dict(), "recurrent"),
        (lambda: categorical_dqn().state_dict(), "is a PFRL distributional"),
        (lambda: pfrl.q_functions.DistributionalDuelingDQN(ACTIONS, 51, -10, 10).state_dict(), "distributional"),
        (damaged_dueling, "stream layers do not chain"),
        (hostile_dueling, "Q layer would hold 10,000,100,000 weights"),
        (lambda: nn.Sequential(nn.Conv2d(4, 8, 3), nn.Linear(8, 2)).state_dict(), "matches no layout we know"),
    ],
)
def test_unsupported_or_damaged_networks_are_one_error_line(tmp_path, capsys, state, message):
    (tmp_path / "agent").mkdir()
    torch.save(state(), tmp_path / "agent" / "model.pt")
    with pytest.raises(CheckpointError, match=message) as caught:
        load_agent(tmp_path / "agent", env=ENV)
    assert "\n" not in str(caught.value)
    assert main(["inspect", str(tmp_path / "agent")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_a_directory_holds_only_pfrl_layouts(tmp_path):
    """A directory says "PFRL agent": a CleanRL state dict in its model.pt is not taken for one."""
    (tmp_path / "agent").mkdir()
    torch.save(CleanRLAtariDQN().state_dict(), tmp_path / "dqn.cleanrl_model")
    assert read_foreign(tmp_path / "dqn.cleanrl_model").format == "state-dict"
    shutil.copy(tmp_path / "dqn.cleanrl_model", tmp_path / "agent" / "model.pt")
    with pytest.raises(CheckpointError, match="matches no layout we know") as caught:
        load_agent(tmp_path / "agent", env=ENV)
    assert all(layout.name in str(caught.value) for layout in PFRL_LAYOUTS)


def test_missing_model_pt_is_one_error_line(tmp_path, capsys):
    (tmp_path / "agent").mkdir()
    torch.save({}, tmp_path / "agent" / "optimizer.pt")
    assert main(["inspect", str(tmp_path / "agent")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a directory, not a file" in err and "PFRL agent directories" in err and "model.pt" in err
    assert "\n" not in err
    missing = tmp_path / "agent" / "model.pt"
    assert main(["inspect", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: checkpoint not found: {missing}"
