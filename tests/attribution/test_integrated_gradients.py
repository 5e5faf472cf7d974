"""Integrated gradients checked against Captum, plus the axioms and the engine's own promises."""

import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from understanding_rl_vision.attribution import (
    attribute,
    capture,
    completeness_error,
    explain_agent,
    forward_hooks,
    hook_count,
    input_gradients,
    integrated_gradients,
    quadrature,
)

ARCHITECTURES = {
    "impala": ("coinrun", ["stacks.0.res1", "stacks.1.res1", "relu"]),
    "nature": ("ALE/Breakout-v5", ["relu1", "relu2", "relu3"]),
    "clear": ("coinrun", ["relu1a", "relu2b", "relu4a"]),
}
CAPTUM_RULE = {"riemann": "riemann_right", "gauss-legendre": "gausslegendre"}


def with_random_biases(agent, seed=0):
    """Non-zero biases make the network above a layer non-homogeneous, so IG is not trivially exact."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in agent.model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return agent


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def case(request, make_random_agent):
    env, layers = ARCHITECTURES[request.param]
    agent = with_random_biases(make_random_agent(env, request.param))
    h, w, c = agent.observation_shape
    inputs = torch.rand(3, c, h, w, generator=torch.Generator().manual_seed(1))
    return agent, inputs, layers


def captum_layer_ig(explained, inputs, layer, weights, steps, rule):
    """Captum's IntegratedGradients on the sub-network above ``layer``, zero baseline."""
    with capture(explained.model, [layer]) as captured, torch.no_grad():
        explained.forward(inputs)
    activation = captured[layer].detach()

    def upper(scaled):  # the network above the layer, fed the scaled activation
        with forward_hooks(explained.model, {layer: lambda module, args, out: scaled}):
            return explained.forward(inputs[:1]) @ weights

    ig = IntegratedGradients(upper)
    return ig.attribute(activation, baselines=torch.zeros_like(activation), n_steps=steps, method=CAPTUM_RULE[rule])


@pytest.mark.parametrize("rule", ["riemann", "gauss-legendre"])
def test_matches_captum_on_the_subnetwork_for_value_and_three_logits(case, rule):
    agent, inputs, layers = case
    explained = explain_agent(agent)
    logits = [name for name in explained.entries if name.startswith("logit:")]
    outputs = explained.outputs(["value", logits[0], logits[1], logits[-1]])
    for layer in layers:
        ours = integrated_gradients(explained, inputs, layer, outputs, steps=10, rule=rule)
        assert ours.values.shape == (4, 3, *capture_shape(explained, inputs, layer))
        for k, output in enumerate(outputs):
            reference = captum_layer_ig(explained, inputs, layer, torch.tensor(output.weights), 10, rule)
            difference = (ours.values[k] - reference).abs().max() / reference.abs().max()
            assert difference <= 1e-4, (layer, output.name, float(difference))
    assert hook_count(agent.model) == 0


def capture_shape(explained, inputs, layer):
    with capture(explained.model, [layer]) as captured, torch.no_grad():
        explained.forward(inputs[:1])
    return tuple(captured[layer].shape[1:])


def test_input_gradients_equal_captum_saliency_without_abs(case):
    agent, inputs, _ = case
    explained = explain_agent(agent)
    outputs = explained.outputs(["value", "logits"])
    ours = input_gradients(explained, inputs, outputs)
    for k in (0, 1, len(outputs) - 1):
        weights = torch.tensor(outputs[k].weights)
        reference = Saliency(lambda x, w=weights: explained.forward(x) @ w).attribute(
            inputs.clone().requires_grad_(), abs=False
        )
        torch.testing.assert_close(ours[k], reference, rtol=1e-5, atol=1e-7)


def test_completeness_converges_and_gauss_legendre_needs_fewer_steps(case):
    agent, inputs, layers = case
    explained = explain_agent(agent)
    outputs = explained.outputs(["value", "logits"])

    def error(steps, rule):
        result = integrated_gradients(explained, inputs, layers[0], outputs, steps=steps, rule=rule)
        return float(completeness_error(explained, inputs, result, outputs).median())

    riemann10 = error(10, "riemann")
    # Attributions sum to f(a) - f(0) in the limit: 256 steps cut the error at least fourfold.
    assert error(256, "riemann") < min(0.01, riemann10 / 4)
    # Measured here: Gauss-Legendre matches 10 Riemann steps with 6 (nature, clear) or 8 (impala).
    matching = next(n for n in range(1, 11) if error(n, "gauss-legendre") <= riemann10)
    assert matching < 10


def test_batched_outputs_equal_one_pass_per_output_and_chunking_is_invisible():
    from understanding_rl_vision.agents import make_agent
    from understanding_rl_vision.envs.spec import parse_env_id

    agent = with_random_biases(
        make_agent("clear", parse_env_id("coinrun"), (64, 64, 3), [str(i) for i in range(15)], seed=3)
    )
    explained = explain_agent(agent)
    inputs = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    outputs = explained.outputs(["value", "logit:3", "groups"])
    together = integrated_gradients(explained, inputs, "relu2b", outputs, steps=5)
    for k, output in enumerate(outputs):
        alone = integrated_gradients(explained, inputs, "relu2b", [output], steps=5)
        torch.testing.assert_close(together.values[k], alone.values[0], rtol=1e-5, atol=1e-7)
    chunked = integrated_gradients(explained, inputs, "relu2b", outputs, steps=5, memory_budget=1)
    torch.testing.assert_close(chunked.values, together.values, rtol=1e-5, atol=1e-7)
    # vmap runs the same sums on another kernel schedule, which torch does not promise to round
    # alike: here (AMD EPYC, 2 threads) the input gradients differ by up to 1.7e-9 (7e-7 of their
    # largest, 2.3e-3), equal on 1 thread. atol 1e-7 is 4e-5 of the largest value, under the
    # 784-term reduction of conv1a's backward (16 channels x 7x7) x float32 eps (1.2e-7) = 9e-5.
    vmapped = integrated_gradients(explained, inputs, "relu2b", outputs, steps=5, batching="vmap")
    torch.testing.assert_close(vmapped.values, together.values, rtol=1e-5, atol=1e-7)
    sequential = input_gradients(explained, inputs, outputs)
    vmapped_gradients = input_gradients(explained, inputs, outputs, batching="vmap")
    torch.testing.assert_close(vmapped_gradients, sequential, rtol=1e-5, atol=1e-7)


def test_policy_outputs_cost_one_backward_pass_per_entry_and_equal_one_pass_per_output(monkeypatch):
    """The value, the action taken, every logit and the groups (1 + 1 + 15 + 5 = 22 outputs) combine
    16 entries of the output vector: 16 backward passes, each output's sum equal to its own pass."""
    from understanding_rl_vision.agents import make_agent
    from understanding_rl_vision.envs.spec import parse_env_id

    names = ["LEFT+DOWN", "LEFT", "LEFT+UP", "DOWN", "NOOP", "UP", "RIGHT+DOWN", "RIGHT", "RIGHT+UP"]
    names += ["D", "A", "W", "S", "Q", "E"]  # procgen's 15 actions: 5 groups (4 arrows, no arrow)
    agent = with_random_biases(make_agent("impala", parse_env_id("coinrun"), (64, 64, 3), names, seed=4))
    explained = explain_agent(agent)
    inputs = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    actions = torch.tensor([3, 0, 14, 7])
    outputs = explained.outputs(["value", "action", "logits", "groups"])
    assert len(outputs) == 1 + 1 + 15 + 5
    passes = []
    grad = torch.autograd.grad

    def counted(*args, **kwargs):
        passes.append(1)
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counted)
    together = integrated_gradients(explained, inputs, "stacks.1.res1", outputs, steps=3, actions=actions)
    assert len(passes) == 16
    passes.clear()
    gradients = input_gradients(explained, inputs, outputs, actions=actions)
    assert len(passes) == 16
    for k, output in enumerate(outputs):
        alone = integrated_gradients(explained, inputs, "stacks.1.res1", [output], steps=3, actions=actions)
        torch.testing.assert_close(together.values[k], alone.values[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gradients[k], input_gradients(explained, inputs, [output], actions=actions)[0])
    # Two outputs of 16 entries still take two passes, not 16.
    passes.clear()
    integrated_gradients(
        explained, inputs, "stacks.1.res1", explained.outputs(["value", "action"]), steps=3, actions=actions
    )
    assert len(passes) == 2


@pytest.mark.parametrize("steps", [2, 7, 10, 32])  # Captum refuses 1 step
def test_quadrature_nodes_are_captums_and_integrate_exactly(steps):
    from captum.attr._utils.approximation_methods import approximation_parameters

    for rule, captum_rule in CAPTUM_RULE.items():
        nodes, weights = quadrature(steps, rule)
        captum_weights, captum_nodes = (f(steps) for f in approximation_parameters(captum_rule))
        # Bit-identical float32 nodes: the network is evaluated at exactly Captum's points.
        assert torch.equal(torch.tensor(nodes, dtype=torch.float32), torch.tensor(captum_nodes, dtype=torch.float32))
        assert weights == pytest.approx(captum_weights, rel=1e-12)
        assert weights.sum() == pytest.approx(1.0, rel=1e-12)
    nodes, weights = quadrature(steps, "gauss-legendre")
    degree = 2 * steps - 1  # n Gauss-Legendre nodes integrate polynomials of degree 2n - 1 exactly
    assert (weights * nodes**degree).sum() == pytest.approx(1 / (degree + 1), rel=1e-12)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_step_counts_and_rules_fail_clearly(bad):
    from understanding_rl_vision.errors import UserError

    with pytest.raises(UserError, match="positive integer"):
        quadrature(bad)
    with pytest.raises(UserError, match="riemann or gauss-legendre"):
        quadrature(4, "simpson")


def test_trained_agent_on_coinrun_frames_matches_captum_at_the_lowest_layer():
    """The bundled agent on its own CoinRun frames: flat backgrounds give max-pool windows of equal
    values, where the gradient's route depends on float rounding, so this is where ours and Captum
    would drift apart if the integration nodes differed by even one ulp."""
    from understanding_rl_vision.agents import load_checkpoint
    from understanding_rl_vision.config import TrajectoryConfig
    from understanding_rl_vision.demo import bundled_agent_path
    from understanding_rl_vision.rollout import collect_trajectories

    agent = load_checkpoint(bundled_agent_path())
    trajectories = collect_trajectories(agent, TrajectoryConfig(num_envs=8, num_steps=8), seed=0, progress=False)
    inputs = agent.preprocess(trajectories.observations.reshape(-1, *agent.observation_shape))
    explained = explain_agent(agent)
    outputs = explained.outputs(["value", "logit:RIGHT"])
    ours = integrated_gradients(explained, inputs, "stacks.0.res0", outputs, steps=10)
    for k, output in enumerate(outputs):
        reference = captum_layer_ig(explained, inputs, "stacks.0.res0", torch.tensor(output.weights), 10, "riemann")
        difference = (ours.values[k] - reference).abs().max() / reference.abs().max()
        assert difference <= 1e-4, (output.name, float(difference))


def test_hooks_are_removed_after_an_exception(coinrun_agent):
    explained = explain_agent(coinrun_agent)
    outputs = explained.outputs("value")

    def broken(x):
        explained_forward(x)
        raise RuntimeError("boom")

    explained_forward = explained.forward
    from dataclasses import replace

    with pytest.raises(RuntimeError, match="boom"):
        integrated_gradients(replace(explained, forward=broken), torch.rand(2, 3, 64, 64), "stacks.1.res1", outputs)
    assert hook_count(coinrun_agent.model) == 0
    assert all(p.requires_grad for p in coinrun_agent.model.parameters())


def test_attribute_api_on_uint8_observations(coinrun_agent):
    observations = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    result = attribute(coinrun_agent, observations, outputs="value,group:RIGHT")
    assert result.layer == "stacks.1.res1"  # the middle discovered layer, 2b
    assert result.outputs == ("value", "group:RIGHT")
    assert result.values.shape == (2, 2, 32, 16, 16)
    by_label = attribute(coinrun_agent, observations, layer="2b", outputs="value")
    torch.testing.assert_close(by_label.values[0], result.for_output("value"))
    gradients = attribute(coinrun_agent, observations, layer="input", outputs="value")
    assert gradients.values.shape == (1, 2, 3, 64, 64)


def test_every_available_device_gives_the_cpu_result(coinrun_agent):
    """CUDA joins when present: inputs, weights and work stay on the model's device; results come back on the CPU."""
    import copy

    explained_cpu = explain_agent(coinrun_agent)
    outputs = explained_cpu.outputs(["value", "group:RIGHT"])
    inputs = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    expected = integrated_gradients(explained_cpu, inputs, "stacks.1.res1", outputs, steps=4)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        agent = copy.deepcopy(coinrun_agent)
        agent.model.to(device)
        explained = explain_agent(agent)
        result = integrated_gradients(explained, inputs.to(device), "stacks.1.res1", outputs, steps=4)
        assert result.values.device.type == "cpu"
        torch.testing.assert_close(result.values, expected.values, rtol=1e-4, atol=1e-6)
        gradients = input_gradients(explained, inputs.to(device), outputs)
        assert gradients.device.type == "cpu" and gradients.shape == (2, 3, 3, 64, 64)


def test_runs_under_module_hook_tools_such_as_the_flop_counter(coinrun_agent):
    """FlopCounterMode hooks every module's backward; the engine's substituted tensor must not be a leaf."""
    from torch.utils.flop_counter import FlopCounterMode

    explained = explain_agent(coinrun_agent)
    outputs = explained.outputs(["value", "logit:RIGHT"])
    inputs = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    plain = integrated_gradients(explained, inputs, "stacks.1.res1", outputs, steps=3)
    with FlopCounterMode(display=False) as counter:
        counted = integrated_gradients(explained, inputs, "stacks.1.res1", outputs, steps=3)
    assert counter.get_total_flops() > 0
    assert torch.equal(counted.values, plain.values)
    assert hook_count(coinrun_agent.model) == 0
