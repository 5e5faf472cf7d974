"""CleanRL state dicts, TorchScript modules and plain state dicts: recognised by their layout,
rebuilt as our modules, and checked output for output against the module that saved them
(the CleanRL networks are in cleanrl_nets.py)."""

from __future__ import annotations

import json

import pytest
import torch
from cleanrl_nets import CleanRLAtariDQN, CleanRLAtariPPO, CleanRLProcgenPPO, randomise, real_observations
from torch import nn

from understanding_rl_vision.agents import describe_file, load_agent
from understanding_rl_vision.agents.formats.layouts import LAYOUTS
from understanding_rl_vision.cli import main
from understanding_rl_vision.errors import CheckpointError, UserError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")  # we make TorchScript files


@pytest.fixture(scope="module")
def breakout_obs():
    return real_observations("ALE/Breakout-v5")


@pytest.fixture(scope="module")
def coinrun_obs():
    return real_observations("coinrun")


def test_cleanrl_ppo_atari(tmp_path, breakout_obs):
    theirs = randomise(CleanRLAtariPPO())
    torch.save(theirs.state_dict(), tmp_path / "ppo_atari.cleanrl_model")
    agent = load_agent(tmp_path / "ppo_atari.cleanrl_model", env="ALE/Breakout-v5")
    with torch.no_grad():
        logits, value = theirs(torch.from_numpy(breakout_obs).permute(0, 3, 1, 2).float())
        out = agent(breakout_obs)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.value, value.reshape(-1), atol=1e-5, rtol=0)
    assert agent.architecture.name == "nature" and agent.action_outputs == "logits"


def test_cleanrl_dqn_atari_explains_q_values(tmp_path, breakout_obs):
    theirs = randomise(CleanRLAtariDQN())
    torch.save(theirs.state_dict(), tmp_path / "dqn_atari.cleanrl_model")
    agent = load_agent(tmp_path / "dqn_atari.cleanrl_model", env="ALE/Breakout-v5")
    with torch.no_grad():
        q = theirs(torch.from_numpy(breakout_obs).permute(0, 3, 1, 2).float())
        out = agent(breakout_obs)
    torch.testing.assert_close(out.logits, q, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.value, q.max(dim=1).values, atol=1e-5, rtol=0)
    assert agent.action_outputs == "q_values"


def test_cleanrl_ppo_procgen(tmp_path, coinrun_obs):
    theirs = randomise(CleanRLProcgenPPO())
    torch.save(theirs.state_dict(), tmp_path / "ppo_procgen.cleanrl_model")
    agent = load_agent(tmp_path / "ppo_procgen.cleanrl_model", env="coinrun")
    with torch.no_grad():
        logits, value = theirs(torch.from_numpy(coinrun_obs).float())
        out = agent(coinrun_obs)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.value, value.reshape(-1), atol=1e-5, rtol=0)
    assert agent.architecture.kwargs == {"channels": [16, 32, 32], "hidden_size": 256}
    report = describe_file(tmp_path / "ppo_procgen.cleanrl_model", env="coinrun")
    assert report["layout"] == "cleanrl ppo_procgen Agent"
    assert report["renamed"]["stacks.1.res0"] == "network.1.res_block0"
    assert report["action_names"][:2] == ["LEFT+DOWN", "LEFT"]


class Scripted(nn.Module):
    """A TorchScript-friendly module returning (logits, value) from NHWC input, as exported."""

    def __init__(self, inner: CleanRLProcgenPPO):
        super().__init__()
        self.network, self.actor, self.critic = inner.network, inner.actor, inner.critic

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.network(obs.permute(0, 3, 1, 2) / 255.0)
        return self.actor(hidden), self.critic(hidden).squeeze(-1)


class Unfamiliar(nn.Module):
    """A network whose weights match no layout we know."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Conv2d(3, 8, 5, stride=4)
        self.pi = nn.Linear(8 * 15 * 15, 15)
        self.v = nn.Linear(8 * 15 * 15, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.encoder(x)).flatten(1)
        return self.pi(h), self.v(h).squeeze(-1)


def test_torchscript_with_a_known_layout_is_rebuilt_with_hookable_layers(tmp_path, coinrun_obs):
    inner = randomise(CleanRLProcgenPPO())
    scripted = torch.jit.script(Scripted(inner))
    scripted.save(str(tmp_path / "agent.pt"))
    (tmp_path / "agent.json").write_text(json.dumps({"env": "coinrun", "scale": 1.0, "layout": "NHWC"}))
    agent = load_agent(tmp_path / "agent.pt")  # env from the metadata JSON
    assert "stacks.1.res0" in agent.named_layers()
    with torch.no_grad():
        logits, value = scripted(torch.from_numpy(coinrun_obs).float())
        out = agent(coinrun_obs)
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.value, value, atol=1e-5, rtol=0)


def test_unfamiliar_torchscript_runs_as_is_and_explains_its_input(tmp_path, coinrun_obs):
    from understanding_rl_vision import rl_clarity
    from understanding_rl_vision.contract import check_against_manifest, read_manifest, read_payload
    from understanding_rl_vision.errors import UserError

    module = randomise(Unfamiliar())
    torch.jit.trace(module, torch.zeros(1, 3, 64, 64)).save(str(tmp_path / "odd.pt"))
    agent = load_agent(tmp_path / "odd.pt", env="coinrun")
    assert agent.named_layers() == {}
    with torch.no_grad():
        expected = module(torch.from_numpy(coinrun_obs).permute(0, 3, 1, 2).float() / 255)
        out = agent(coinrun_obs)
    torch.testing.assert_close(out.logits, expected[0], atol=1e-5, rtol=0)
    result = rl_clarity.run(
        tmp_path / "odd.pt",
        tmp_path / "out",
        env="coinrun",
        progress=False,
        num_envs=2,
        num_steps=8,
        obs_num_envs=2,
        num_obs=4,
        obs_every=2,
        nmf_features=2,
        num_bookmarks=1,
        methods=("ig", "gradient", "smoothgrad"),  # input methods work on a model we cannot hook
        explain=("value", "action"),
        noise_samples=2,
    )
    manifest = read_manifest(result.directory / "data")
    assert [layer.name for layer in manifest.layers] == ["input"]
    assert [m.name for m in manifest.methods] == ["ig", "gradient", "smoothgrad"]
    for prefix in ("m1", "m2"):
        for t in range(2):
            for o in range(2):
                check_against_manifest(manifest, read_payload(result.directory / "data", f"{prefix}-in-{t}-{o}"))
    with pytest.raises(UserError, match="Grad-CAM explains a layer, and no layer it can read is chosen"):
        rl_clarity.run(tmp_path / "odd.pt", tmp_path / "cam", env="coinrun", progress=False, methods=("gradcam",))


def test_state_dict_of_no_known_layout_lists_the_known_ones(tmp_path):
    torch.save(Unfamiliar().state_dict(), tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="matches no layout we know") as caught:
        load_agent(tmp_path / "odd.pth", env="coinrun")
    message = str(caught.value)
    assert "encoder.weight" in message and all(layout.name in message for layout in LAYOUTS)
    assert "\n" not in message


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    torch.save({"network.0.weight": torch.zeros(1), "hook": Unfamiliar()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="without unpickling code"):
        load_agent(tmp_path / "evil.pth", env="coinrun")


def test_wrong_env_for_the_weights(tmp_path):
    torch.save(randomise(CleanRLAtariPPO()).state_dict(), tmp_path / "ppo.pth")
    with pytest.raises(UserError, match="takes 4-channel observations but procgen:coinrun"):
        load_agent(tmp_path / "ppo.pth", env="coinrun")
    with pytest.raises(UserError, match="--frame-stack 3 does not fit"):
        load_agent(tmp_path / "ppo.pth", env="ALE/Breakout-v5", frame_stack=3)


def test_inspect_command(tmp_path, capsys):
    torch.save(randomise(CleanRLAtariDQN()).state_dict(), tmp_path / "dqn.pth")
    assert main(["inspect", str(tmp_path / "dqn.pth"), "--env", "ALE/Breakout-v5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "state-dict" and report["layout"] == "cleanrl dqn_atari QNetwork"
    assert report["action_outputs"] == "q_values" and report["action_names"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert {"name": "conv3", "type": "Conv2d", "shape": [64, 7, 7]} in report["layers"]
    assert main(["inspect", str(tmp_path / "dqn.pth")]) == 0
    text = capsys.readouterr().out
    assert "format:        state-dict (cleanrl dqn_atari QNetwork)" in text
    assert "environment:   not recorded (pass --env)" in text and "conv3" in text
    assert main(["inspect", str(tmp_path / "missing.pth")]) == 2
    assert capsys.readouterr().err.strip() == f"error: checkpoint not found: {tmp_path / 'missing.pth'}"
