"""Built-in architectures: shapes, hookability, L2 pooling, seeding and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from understanding_rl_vision.agents import (
    ARCHITECTURES,
    Agent,
    ArchitectureSpec,
    build_model,
    make_agent,
)
from understanding_rl_vision.agents.architectures import ClearCNN, L2Pool2d, ResidualBlock
from understanding_rl_vision.envs.spec import AtariSpec, ProcgenSpec
from understanding_rl_vision.errors import ObservationShapeError, UserError

PROCGEN_ACTIONS = tuple(f"A{i}" for i in range(15))
NATIVE = {
    "impala": ((64, 64, 3), 15),
    "clear": ((64, 64, 3), 15),
    "nature": ((84, 84, 4), 4),
}


def _agent(name: str, seed: int = 0) -> Agent:
    shape, actions = NATIVE[name]
    return make_agent(name, None, shape, [f"A{i}" for i in range(actions)], seed=seed)


def _obs(shape: tuple[int, int, int], n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_output_shapes(name: str) -> None:
    agent = _agent(name)
    shape, actions = NATIVE[name]
    out = agent(_obs(shape, n=5))
    assert out.logits.shape == (5, actions)
    assert out.value.shape == (5,)
    assert out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.value).all()
    # raw model contract: float NCHW in, (logits, value (N,)) out
    logits, value = agent.model(torch.rand(2, shape[2], shape[0], shape[1]))
    assert logits.shape == (2, actions) and value.shape == (2,)


def test_registry_and_parameter_counts() -> None:
    assert set(ARCHITECTURES) == {"impala", "nature", "clear", "lstm", "impala-lstm", "nature-lstm", "attention", "fls"}
    counts = {n: sum(p.numel() for p in _agent(n).model.parameters()) for n in NATIVE}
    # Impala's fc is 32*8*8 -> 256, Nature's 64*7*7 -> 512, Clear's 32*4*4 -> 256
    assert counts == {"impala": 626_256, "nature": 1_686_693, "clear": 363_216}
    attention = sum(p.numel() for p in make_agent("attention", None, (84, 84, 4), "ABCD", heads=2).model.parameters())
    assert attention == 1_686_693 + (64 * 512 + 512) + (512 * 2 + 2)  # nature + the hidden and score 1x1 convs


def test_module_names_are_readable() -> None:
    clear = set(dict(_agent("clear").model.named_modules()))
    for name in (
        "conv1a",
        "relu1a",
        "pool1",
        "conv2a",
        "relu2a",
        "conv2b",
        "relu2b",
        "pool2",
        "conv3a",
        "relu3a",
        "pool3",
        "conv4a",
        "relu4a",
        "pool4",
        "fc1",
        "relu_fc1",
        "fc2",
        "relu_fc2",
        "policy",
        "value",
    ):
        assert name in clear
    impala = dict(_agent("impala").model.named_modules())
    for name in (
        "stacks.0.conv",
        "stacks.0.pool",
        "stacks.0.res0.relu0",
        "stacks.2.res1.conv1",
        "relu",
        "fc",
        "relu_fc",
        "policy",
        "value",
    ):
        assert name in impala
    assert isinstance(impala["stacks.1.res0"], ResidualBlock)
    assert isinstance(dict(_agent("clear").model.named_modules())["pool2"], L2Pool2d)


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_every_relu_captures_exactly_one_tensor(name: str) -> None:
    agent = _agent(name)
    relus = {n: m for n, m in agent.model.named_modules() if isinstance(m, nn.ReLU)}
    expected = {"impala": 3 * 2 * 2 + 2, "nature": 4, "clear": 7}[name]
    assert len(relus) == expected
    assert len({id(m) for m in relus.values()}) == expected  # no instance is shared
    calls: dict[str, list[torch.Tensor]] = {n: [] for n in relus}
    handles = [m.register_forward_hook(lambda _m, _i, out, n=n: calls[n].append(out)) for n, m in relus.items()]
    try:
        agent(_obs(NATIVE[name][0], n=2))
    finally:
        for handle in handles:
            handle.remove()
    assert {n: len(c) for n, c in calls.items()} == {n: 1 for n in relus}
    for n, (out,) in calls.items():
        assert (out >= 0).all(), n
        assert out.shape[0] == 2


def test_relus_are_not_bypassed() -> None:
    """Replacing the hooked ReLU output changes the result, so the module really is used."""
    agent = _agent("clear")
    obs = _obs((64, 64, 3))
    before = agent(obs).value
    handle = agent.model.relu2b.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        after = agent(obs).value
    finally:
        handle.remove()
    assert not torch.allclose(before, after)


def test_l2_pool_matches_hand_computation() -> None:
    x = torch.tensor([[[[1.0, 2.0, 0.0, -3.0], [3.0, 4.0, 0.0, 0.0], [-1.0, 1.0, 2.0, 2.0], [1.0, -1.0, 2.0, 2.0]]]])
    out = L2Pool2d(2)(x)
    expected = [
        [math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-8), math.sqrt(9 / 4 + 1e-8)],
        [math.sqrt(4 / 4 + 1e-8), math.sqrt(16 / 4 + 1e-8)],
    ]
    assert out.shape == (1, 1, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor(expected), rtol=0, atol=1e-6)
    assert out[0, 0, 1, 1].item() == pytest.approx(2.0)
    # all-zero input stays finite and differentiable thanks to eps
    zeros = torch.zeros(1, 1, 2, 2, requires_grad=True)
    L2Pool2d(2)(zeros).sum().backward()
    assert torch.isfinite(zeros.grad).all()


def test_initialisation_is_ppo_standard() -> None:
    model = _agent("impala").model
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(module.bias) == 0
    # orthogonal rows: W W^T = gain^2 I (more columns than rows for these heads)
    for head, gain in ((model.policy, 0.01), (model.value, 1.0)):
        w = head.weight.detach().double()
        torch.testing.assert_close(w @ w.T, gain**2 * torch.eye(w.shape[0], dtype=torch.float64), rtol=0, atol=1e-5)
    w = model.fc.weight.detach().double()  # (256, 2048): rows orthonormal times sqrt(2)
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(256, dtype=torch.float64), rtol=0, atol=1e-5)


def test_seeded_make_agent_is_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = _agent("impala", seed=7)
    b = _agent("impala", seed=7)
    c = _agent("impala", seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fc.weight"], sc["fc.weight"])
    obs = _obs((64, 64, 3))
    assert torch.equal(a(obs).logits, b(obs).logits)


def test_make_agent_records_everything() -> None:
    spec = ProcgenSpec(game="coinrun")
    agent = make_agent(
        "impala", spec, (64, 64, 3), PROCGEN_ACTIONS, gamma=0.99, lam=0.9, seed=0, channels=(8, 16), hidden_size=64
    )
    expected = ArchitectureSpec("impala", {"channels": [8, 16], "hidden_size": 64})
    assert agent.architecture == expected
    assert agent.env_spec == spec and agent.gamma == 0.99 and agent.lam == 0.9
    assert agent.action_names == PROCGEN_ACTIONS and agent.num_actions == 15
    assert len(agent.model.stacks) == 2 and agent.model.fc.out_features == 64
    assert agent.model.fc.in_features == 16 * 16 * 16  # two stacks: 64 -> 32 -> 16


def test_flatten_size_follows_observation_shape() -> None:
    agent = make_agent("clear", None, (96, 80, 1), ["A", "B"], seed=0)
    assert agent.model.fc1.in_features == 32 * 6 * 5
    assert agent(_obs((96, 80, 1), n=1)).logits.shape == (1, 2)
    nature = make_agent("nature", AtariSpec(), (36, 36, 4), ["A"], seed=0)  # the minimum
    assert nature(_obs((36, 36, 4), n=1)).value.shape == (1,)


@pytest.mark.parametrize(
    ("name", "shape", "minimum"),
    [
        ("nature", (8, 8, 4), 36),
        ("nature", (84, 35, 4), 36),
        ("clear", (15, 64, 3), 16),
    ],
)
def test_too_small_observations_name_the_minimum(name, shape, minimum) -> None:
    with pytest.raises(ObservationShapeError) as info:
        make_agent(name, None, shape, ["A", "B"], seed=0)
    message = str(info.value)
    assert str(shape) in message and f"{minimum}x{minimum}" in message and name in message


def test_agent_rejects_wrong_observation_shape() -> None:
    agent = _agent("impala")
    with pytest.raises(ObservationShapeError) as info:
        agent(np.zeros((2, 84, 84, 4), dtype=np.uint8))
    assert "(2, 84, 84, 4)" in str(info.value) and "64, 64, 3" in str(info.value)


def test_build_model_rejects_unknown_names_and_arguments() -> None:
    known = (
        "unknown architecture 'resnet'; known: attention, clear, fls, impala, impala-lstm, lstm, nature, nature-lstm"
    )
    with pytest.raises(UserError, match=known):
        build_model(ArchitectureSpec("resnet"), (64, 64, 3), 15)
    with pytest.raises(UserError, match="bad arguments for the 'clear' architecture"):
        build_model(ArchitectureSpec("clear", {"width": 3}), (64, 64, 3), 15)
    with pytest.raises(UserError, match="JSON"):
        make_agent("impala", None, (64, 64, 3), ["A"], channels={1, 2})
    assert isinstance(build_model(ArchitectureSpec("clear"), (64, 64, 3), 15), ClearCNN)
