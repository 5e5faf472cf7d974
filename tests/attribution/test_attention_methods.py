"""An attention agent's own map, and its ``attention`` output under the gradient methods, against
Captum's Saliency (SmoothGrad and VarGrad on the same noise draws; the general noise-tunnel
comparison with Captum's NoiseTunnel is in test_gradient_methods.py)."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Saliency

from understanding_rl_vision.agents import make_agent
from understanding_rl_vision.agents.attention import capture_attention
from understanding_rl_vision.attribution import explain_agent, hook_count
from understanding_rl_vision.attribution.methods import method_class
from understanding_rl_vision.attribution.methods.noise_tunnel import noise_samples
from understanding_rl_vision.attribution.outputs import ATTENTION_OUTPUT
from understanding_rl_vision.envs import make_vec_env, parse_env_id
from understanding_rl_vision.errors import UserError

TOLERANCE = 1e-4  # max |ours - Captum| relative to max |Captum|


@pytest.fixture(scope="module")
def setup():
    """A two-head attention agent and four real Breakout frames after a few random steps."""
    spec = parse_env_id("ALE/Breakout-v5")
    with make_vec_env(spec, num_envs=4, seed=0) as env:
        agent = make_agent("attention", env.spec, env.observation_shape, env.action_names, seed=0, heads=2)
        step = env.reset()
        for t in range(12):
            step = env.step(torch.full((env.num_envs,), 1 if t == 0 else 2 + t % 2).numpy())
    return agent, explain_agent(agent), agent.preprocess(step.obs)


def test_the_attention_entry_is_the_sum_of_what_passes_the_attention(setup):
    agent, explained, inputs = setup
    assert explained.entries[-1] == ATTENTION_OUTPUT and len(explained.entries) == 1 + 4 + 1
    seen = []
    handle = agent.model.attention.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        vector = explained.forward(inputs)
    finally:
        handle.remove()
    assert torch.allclose(vector[:, -1], seen[-1].flatten(1).sum(dim=1), rtol=1e-5)
    out = agent.forward_preprocessed(inputs)
    assert torch.allclose(vector[:, 0], out.value, atol=1e-6) and torch.allclose(vector[:, 1:5], out.logits, atol=1e-6)
    assert hook_count(agent.model) == 0
    assert ATTENTION_OUTPUT not in explain_agent(make_agent("nature", None, (84, 84, 4), "ABCD", seed=0)).entries


def test_gradient_of_the_attention_matches_captum(setup):
    _, explained, inputs = setup
    (output,) = explained.outputs([ATTENTION_OUTPUT])
    ours = method_class("gradient")().attribute(explained, inputs, [output])[0]
    reference = Saliency(lambda x: explained.forward(x)[:, -1]).attribute(inputs.clone().requires_grad_(), abs=False)
    reference = reference.detach().sum(dim=1)  # our maps sum the input channels, signs kept
    assert reference.abs().max() > 0
    assert float((ours - reference).abs().max() / reference.abs().max()) < TOLERANCE


@pytest.mark.parametrize("kind", ["smoothgrad", "vargrad"])
def test_smoothgrad_and_vargrad_of_the_attention_match_captum(setup, kind):
    _, explained, inputs = setup
    (output,) = explained.outputs([ATTENTION_OUTPUT])
    method = method_class(kind)(noise_samples=4)
    ours = method.attribute(explained, inputs, [output])[0]
    draws = noise_samples(inputs, 4, method.noise_level, method.noise_seed)
    noisy = (inputs[None] + draws).flatten(0, 1).requires_grad_()
    grads = Saliency(lambda x: explained.forward(x)[:, -1]).attribute(noisy, abs=False).detach()
    grads = grads.unflatten(0, (4, len(inputs)))
    reference = grads.mean(0) if kind == "smoothgrad" else grads.var(0, unbiased=False)
    reference = reference.sum(dim=1)
    assert float((ours - reference).abs().max() / reference.abs().max()) < TOLERANCE


def test_the_attention_method_reads_the_mask(setup):
    agent, explained, inputs = setup
    outputs = explained.outputs(["value", ATTENTION_OUTPUT])
    maps = method_class("attention")().attribute(explained, inputs, outputs)
    with capture_attention(agent.model) as seen, torch.no_grad():
        agent.forward_preprocessed(inputs)
    assert maps.shape == (2, 4, 7, 7)
    assert torch.allclose(maps[0], seen[-1].sum(dim=1), atol=1e-6) and torch.equal(maps[0], maps[1])
    assert torch.allclose(maps.sum(dim=(2, 3)), torch.full((2, 4), 2.0), atol=1e-5)  # two masks, each sums to 1
    assert hook_count(agent.model) == 0


def test_attention_methods_apply_only_to_attention_agents(setup):
    agent = setup[0]
    plain = make_agent("nature", None, (84, 84, 4), "ABCD", seed=0)
    for name in ("attention", "attention-tree"):
        cls = method_class(name)
        assert cls.info.explains == "attention" and cls.info.automatic
        assert cls.applies_to(agent.model) and not cls.applies_to(plain.model)
    assert method_class("gradient").applies_to(plain.model)
    explained = explain_agent(plain)
    with pytest.raises(UserError, match="no attention layer"):
        method_class("attention")().attribute(
            explained, plain.preprocess(torch.zeros(1, 84, 84, 4)), explained.outputs()
        )
