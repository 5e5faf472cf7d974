"""``attribute(method=...)``, the one public entry point, reaches every registered method with the
same outputs, layers and actions as the method's own ``attribute``."""

import numpy as np
import pytest
import torch

from understanding_rl_vision.agents import load_checkpoint
from understanding_rl_vision.attribution import attribute, explain_agent, hook_count
from understanding_rl_vision.attribution.methods import method_class
from understanding_rl_vision.demo import bundled_agent_path
from understanding_rl_vision.envs import make_vec_env
from understanding_rl_vision.errors import UserError


@pytest.fixture(scope="module")
def setup():
    agent = load_checkpoint(bundled_agent_path())
    with make_vec_env("coinrun", num_envs=3, seed=1) as env:
        observations = env.reset().obs
    actions = np.array([2, 7, 4])
    return agent, observations, actions


@pytest.mark.parametrize("name", ["gradcam", "hirescam", "gradient", "smoothgrad"])
def test_attribute_reaches_the_method_with_its_actions(setup, name):
    agent, observations, actions = setup
    explained = explain_agent(agent)
    method = method_class(name)()
    layer = "2b" if method.info.attaches == "layer" else None
    result = attribute(agent, observations, layer, ["value", "action"], method=name, actions=actions)
    inputs = agent.preprocess(observations)
    name_of_layer = result.layer if method.info.attaches == "layer" else None
    expected = method.attribute(
        explained, inputs, explained.outputs(["value", "action"]), name_of_layer, actions=torch.as_tensor(actions)
    )
    assert result.outputs == ("value", "action") and result.values.shape == expected.shape
    torch.testing.assert_close(result.values, expected, rtol=1e-5, atol=1e-7 * float(expected.abs().max()))
    assert result.layer == ("input" if layer is None else result.layer) and hook_count(agent.model) == 0


def test_integrated_gradients_stays_the_default_and_takes_actions(setup):
    agent, observations, actions = setup
    logits = [f"logit:{agent.action_names[a]}" for a in actions]
    taken = attribute(agent, observations, "2b", ["action"], actions=actions, steps=3).values[0]
    each = attribute(agent, observations, "2b", logits, steps=3).values
    for frame in range(3):
        torch.testing.assert_close(taken[frame], each[frame, frame], rtol=1e-5, atol=1e-8)


def test_wrong_requests_fail_in_one_line(setup):
    agent, observations, _ = setup
    with pytest.raises(UserError, match="needs the actions taken"):
        attribute(agent, observations, "2b", ["action"], method="gradcam")
    with pytest.raises(UserError, match="Grad-CAM explains a layer, not the input"):
        attribute(agent, observations, "input", ["value"], method="gradcam")
    with pytest.raises(UserError, match="only perturbation explains"):
        attribute(agent, observations, "2b", ["actor"], method="gradcam")
    with pytest.raises(UserError, match="unknown method 'lime'"):
        attribute(agent, observations, "2b", ["value"], method="lime")
