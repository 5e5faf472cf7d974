"""custom_agent: any module, with functions for the logits and the value, through a real run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cleanrl_nets import CleanRLProcgenPPO, randomise, real_observations

from understanding_rl_vision import rl_clarity
from understanding_rl_vision.agents import agent_digest, custom_agent
from understanding_rl_vision.attribution.hooks import hook_count
from understanding_rl_vision.contract import check_against_manifest, read_manifest
from understanding_rl_vision.errors import ConfigError, UserError


@pytest.fixture(scope="module")
def net():
    return randomise(CleanRLProcgenPPO())


def make(net, **overrides):
    settings = dict(features=net.network, logits=net.actor, value=net.critic, env="coinrun")
    return custom_agent(net, **(settings | overrides))


def test_outputs_are_the_modules_own(net):
    agent = make(net)
    obs = real_observations("coinrun", 6)
    with torch.no_grad():
        logits, value = net(torch.from_numpy(obs).float())
        out = agent(obs)
    torch.testing.assert_close(out.logits, logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.value, value.reshape(-1), atol=1e-6, rtol=0)
    assert agent.action_names[7] == "RIGHT" and agent.observation_shape == (64, 64, 3)
    assert "network.1.res_block0" in agent.named_layers()  # the module's own names


def test_a_run_explains_the_modules_layers(net, tmp_path):
    agent = make(net)
    result = rl_clarity.run(
        agent=agent,
        output_dir=tmp_path / "out",
        progress=False,
        num_envs=2,
        num_steps=10,
        obs_num_envs=2,
        num_obs=4,
        obs_every=2,
        layers=("network.1.res_block1",),
        nmf_features=3,
        num_bookmarks=1,
        attr_policy=True,
        methods=("ig", "gradcam", "perturbation"),  # every method works on a custom module
        explain=("value", "action"),
    )
    manifest = read_manifest(result.directory / "data")
    assert [(m.name, m.layers) for m in manifest.methods] == [("ig", (0,)), ("gradcam", (0,)), ("perturbation", ())]
    data = result.directory / "data"
    assert {p.stem for p in data.glob("m1-0-*.js")} == {f"m1-0-{t}-{o}" for t in range(2) for o in range(22)}
    assert {p.stem for p in data.glob("m2-in-*.js")} == {f"m2-in-{t}-{o}" for t in range(2) for o in range(22)}
    assert [layer.name for layer in manifest.layers] == ["network.1.res_block1"]
    assert manifest.layers[0].shape == (32, 16, 16)
    assert "logit:RIGHT" in manifest.outputs and manifest.agent == "custom agent"
    check_against_manifest(result.directory / "data", manifest)
    assert hook_count(net) == 0


def test_the_cache_tells_agents_apart(net):
    a, b = make(net), make(net, value=lambda h: net.critic(h) * 2)
    assert agent_digest(a) == agent_digest(make(net))
    assert agent_digest(a) != agent_digest(b)


def test_mistakes_are_one_clear_error(net, tmp_path):
    with pytest.raises(UserError, match=r"logits must have shape \(N, 15\); got \(1, 256\)"):
        make(net, logits=lambda h: h)
    with pytest.raises(UserError, match="custom agent failed on an observation of shape"):
        make(net, features=net.network[3])  # a Flatten without the convolutions: wrong shapes downstream
    with pytest.raises(UserError, match="needs a torch.nn.Module"):
        custom_agent(lambda x: x, logits=np.sum, value=np.sum, env="coinrun")
    with pytest.raises(ConfigError, match="either a checkpoint file or agent="):
        rl_clarity.run(tmp_path / "x.safetensors", tmp_path / "out", agent=make(net))
