"""Recognise another library's state dict and rename it onto one of our architectures.

Stable-Baselines3, CleanRL and most hand-written Atari/Procgen agents use the same two networks
as ours (the Nature CNN and the IMPALA CNN) under other module names. A :class:`Layout` knows one
such naming: which tensors it must have, how to read the architecture's sizes off their shapes,
and how each name maps onto ours. Rebuilding our own module (rather than running theirs) gives
every format the same hookable layers (``conv3``, ``stacks.1.res0``...) and needs none of the
other library's code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from ...errors import CheckpointError
from ..base import ArchitectureSpec
from ..limits import MAX_WEIGHT_BYTES

StateDict = dict[str, torch.Tensor]
SHARING = 4
"""How many names may view the same data: SB3 registers its one features extractor under three."""


@dataclass(frozen=True)
class Recognised:
    """A state dict matched to one of our architectures, with the sizes read off its tensors."""

    layout: str
    architecture: ArchitectureSpec
    state_dict: StateDict  # renamed to our module names
    in_channels: int
    num_actions: int
    input_size: tuple[int, int]  # (H, W) the flatten size implies (a guess when several do)
    renamed: dict[str, str] = field(default_factory=dict)  # our module -> theirs, for `inspect`


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    recognise: Callable[[StateDict], Recognised | None]


def _rename(state: StateDict, prefixes: dict[str, str]) -> tuple[StateDict, list[str]]:
    """Map each key through the first matching ``theirs -> ours`` prefix; return the leftovers."""
    out: StateDict = {}
    leftover = []
    for key, tensor in state.items():
        for theirs, ours in prefixes.items():
            if key.startswith(theirs + "."):
                out[ours + key[len(theirs) :]] = tensor
                break
        else:
            leftover.append(key)
    return out, leftover


def _has(state: StateDict, *keys: str) -> bool:
    return all(k in state and isinstance(state[k], torch.Tensor) for k in keys)


def _require_ranks(state: StateDict, layout: str, ranks: dict[str, int]) -> None:
    """Sizes are read off these tensors' shapes: refuse any of the wrong rank, naming it."""
    for key, rank in ranks.items():
        if state[key].dim() != rank:
            raise CheckpointError(
                f"{key} has shape {tuple(state[key].shape)} where the {layout} layout has a "
                f"{rank}-D tensor; the file is damaged"
            )


def nature_side(flat: int, channels: int = 64) -> list[int]:
    """Square input sizes whose Nature-CNN feature map flattens to ``flat`` values."""
    sides = []
    for side in range(36, 400):
        out = ((side - 8) // 4 + 1 - 4) // 2 + 1 - 2
        if out * out * channels == flat:
            sides.append(side)
    return sides


def impala_side(flat: int, channels: int, stacks: int) -> list[int]:
    """Square input sizes whose IMPALA feature map (each stack halves, rounding up) flattens to ``flat``."""
    sides = []
    for side in range(1, 400):
        out = side
        for _ in range(stacks):
            out = (out + 1) // 2
        if out * out * channels == flat:
            sides.append(side)
    return sides


def _pick(sides: list[int], preferred: int) -> tuple[int, int]:
    side = preferred if preferred in sides or not sides else sides[0]
    return side, side


def _nature(layout: str, state: StateDict, prefixes: dict[str, str], head: str) -> Recognised | None:
    """Nature CNN under ``prefixes`` (theirs -> ours); None unless every tensor is accounted for."""
    ours, leftover = _rename(state, prefixes)
    needed = ["conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"]
    needed += ["q.weight"] if head == "q" else ["policy.weight", "value.weight"]
    if leftover or not _has(ours, *needed):
        return None
    _require_ranks(ours, layout, {name: 4 if name.startswith("conv") else 2 for name in needed})
    hidden, flat = ours["fc.weight"].shape
    actions = ours["q.weight" if head == "q" else "policy.weight"].shape[0]
    kwargs: dict[str, object] = {"hidden_size": int(hidden)}
    if head == "q":
        kwargs["head"] = "q"
    return Recognised(
        layout=layout,
        architecture=ArchitectureSpec("nature", kwargs),
        state_dict=ours,
        in_channels=int(ours["conv1.weight"].shape[1]),
        num_actions=int(actions),
        input_size=_pick(nature_side(int(flat), int(ours["conv3.weight"].shape[0])), 84),
        renamed={o: t for t, o in prefixes.items()},
    )


def _impala(
    layout: str, state: StateDict, prefix: str, names: tuple[str, str, str], heads: dict[str, str]
) -> Recognised | None:
    """IMPALA CNN whose stacks are ``{prefix}.{i}`` with conv/res-block names ``names``, the
    dense layer at ``{prefix}.{stacks + 2}`` (after Flatten and ReLU), heads renamed by ``heads``."""
    conv, res0, res1 = names
    stacks = 0
    while f"{prefix}.{stacks}.{conv}.weight" in state:
        stacks += 1
    if stacks == 0:
        return None
    prefixes: dict[str, str] = {}
    for i in range(stacks):
        prefixes |= {
            f"{prefix}.{i}.{conv}": f"stacks.{i}.conv",
            f"{prefix}.{i}.{res0}": f"stacks.{i}.res0",
            f"{prefix}.{i}.{res1}": f"stacks.{i}.res1",
        }
    prefixes |= {f"{prefix}.{stacks + 2}": "fc", **heads}
    ours, leftover = _rename(state, prefixes)
    if leftover or not _has(ours, "fc.weight", "policy.weight", "value.weight"):
        return None
    _require_ranks(
        ours, layout, {**{f"stacks.{i}.conv.weight": 4 for i in range(stacks)}, "fc.weight": 2, "policy.weight": 2}
    )
    channels = [int(ours[f"stacks.{i}.conv.weight"].shape[0]) for i in range(stacks)]
    hidden, flat = ours["fc.weight"].shape
    return Recognised(
        layout=layout,
        architecture=ArchitectureSpec("impala", {"channels": channels, "hidden_size": int(hidden)}),
        state_dict=ours,
        in_channels=int(ours["stacks.0.conv.weight"].shape[1]),
        num_actions=int(ours["policy.weight"].shape[0]),
        input_size=_pick(impala_side(int(flat), channels[-1], stacks), 64),
        renamed={o: t for t, o in prefixes.items()},
    )


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.layout == b.layout and bool(torch.equal(a, b))


def _sb3_actor_critic(state: StateDict) -> Recognised | None:
    extractor = "features_extractor"
    if f"{extractor}.cnn.0.weight" not in state:
        return None
    copies = ("pi_features_extractor", "vf_features_extractor")
    for copy in copies:  # SB3 registers the shared extractor under these names too
        for key in [k for k in state if k.startswith(copy + ".")]:
            twin = extractor + key[len(copy) :]
            if twin not in state or not _same(state[key], state[twin]):
                raise CheckpointError(
                    "this Stable-Baselines3 policy has separate actor and critic feature extractors "
                    "(share_features_extractor=False), which is not supported yet"
                )
    kept = {k: v for k, v in state.items() if not k.startswith(tuple(c + "." for c in copies))}
    if any(k.startswith("mlp_extractor.") for k in kept):
        raise CheckpointError(
            "this Stable-Baselines3 policy has hidden layers after the CNN (a custom net_arch), "
            "which is not supported yet (CnnPolicy's default net_arch has none)"
        )
    prefixes = {
        f"{extractor}.cnn.0": "conv1",
        f"{extractor}.cnn.2": "conv2",
        f"{extractor}.cnn.4": "conv3",
        f"{extractor}.linear.0": "fc",
        "action_net": "policy",
        "value_net": "value",
    }
    return _nature("stable-baselines3 ActorCriticCnnPolicy (NatureCNN)", kept, prefixes, "actor-critic")


def _sb3_dqn(state: StateDict) -> Recognised | None:
    if "q_net.features_extractor.cnn.0.weight" not in state:
        return None
    kept = {k: v for k, v in state.items() if not k.startswith("q_net_target.")}
    extractor = "q_net.features_extractor"
    if any(k.startswith("q_net.q_net.") and not k.startswith("q_net.q_net.0.") for k in kept):
        raise CheckpointError(
            "this Stable-Baselines3 DQN policy has hidden layers after the CNN (a custom net_arch), "
            "which is not supported yet"
        )
    prefixes = {
        f"{extractor}.cnn.0": "conv1",
        f"{extractor}.cnn.2": "conv2",
        f"{extractor}.cnn.4": "conv3",
        f"{extractor}.linear.0": "fc",
        "q_net.q_net.0": "q",
    }
    return _nature("stable-baselines3 DQN CnnPolicy (NatureCNN)", kept, prefixes, "q")


def _cleanrl_ppo_atari(state: StateDict) -> Recognised | None:
    prefixes = {
        "network.0": "conv1",
        "network.2": "conv2",
        "network.4": "conv3",
        "network.7": "fc",
        "actor": "policy",
        "critic": "value",
    }
    return _nature("cleanrl ppo_atari Agent", state, prefixes, "actor-critic")


def _cleanrl_dqn_atari(state: StateDict) -> Recognised | None:
    prefixes = {"network.0": "conv1", "network.2": "conv2", "network.4": "conv3", "network.7": "fc", "network.9": "q"}
    return _nature("cleanrl dqn_atari QNetwork", state, prefixes, "q")


def _cleanrl_ppo_procgen(state: StateDict) -> Recognised | None:
    return _impala(
        "cleanrl ppo_procgen Agent",
        state,
        "network",
        ("conv", "res_block0", "res_block1"),
        {"actor": "policy", "critic": "value"},
    )


def _native(state: StateDict) -> Recognised | None:
    """A state dict of one of our own modules (``torch.save(agent.model.state_dict())``)."""
    if "conv1.weight" in state and "conv2.weight" in state and "fc.weight" in state:
        head = "q" if "q.weight" in state else "actor-critic"
        names = ["conv1", "conv2", "conv3", "fc", *(["q"] if head == "q" else ["policy", "value"])]
        return _nature("understanding-rl-vision nature", state, {n: n for n in names}, head)
    if "stacks.0.conv.weight" in state:
        return _impala(
            "understanding-rl-vision impala",
            state,
            "stacks",
            ("conv", "res0", "res1"),
            {"fc": "fc", "policy": "policy", "value": "value"},
        )
    return None


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "sb3-actor-critic",
        "Stable-Baselines3 PPO/A2C CnnPolicy: features_extractor.cnn.*, action_net, value_net",
        _sb3_actor_critic,
    ),
    Layout("sb3-dqn", "Stable-Baselines3 DQN CnnPolicy: q_net.features_extractor.cnn.*, q_net.q_net.0", _sb3_dqn),
    Layout("cleanrl-ppo-atari", "CleanRL ppo_atari: network.{0,2,4,7}, actor, critic", _cleanrl_ppo_atari),
    Layout("cleanrl-dqn-atari", "CleanRL dqn_atari: network.{0,2,4,7,9}", _cleanrl_dqn_atari),
    Layout(
        "cleanrl-ppo-procgen",
        "CleanRL ppo_procgen: network.{0,1,2}.conv/res_block0/res_block1, network.5, actor, critic",
        _cleanrl_ppo_procgen,
    ),
    Layout(
        "native",
        "understanding-rl-vision's own nature/impala modules: conv1.., stacks.*, fc, policy, value (or q)",
        _native,
    ),
)


def _check_sizes(tensors: StateDict, what: str) -> None:
    """Refuse tensors holding more values than the file's data: a ``torch.save`` file stores views
    with their strides, so a one-value storage expanded (stride 0) can pose as a huge tensor, and
    one storage can be viewed by thousands of names; building the network would allocate it all."""
    held: dict[int, int] = {}
    declared = 0
    for name, tensor in tensors.items():
        storage = tensor.untyped_storage()
        size = tensor.numel() * tensor.element_size()
        if size > storage.nbytes():
            raise CheckpointError(
                f"{what}: tensor {name[:80]} of shape {tuple(tensor.shape)} views {storage.nbytes():,} "
                "bytes of data (a stride of 0): the file is damaged or hostile"
            )
        held[storage.data_ptr()] = storage.nbytes()
        declared += size
    if declared > MAX_WEIGHT_BYTES or declared > SHARING * sum(held.values()) + (1 << 20):
        raise CheckpointError(
            f"{what}: its tensors view {declared:,} bytes of weights in {sum(held.values()):,} "
            "bytes of data: the file is damaged or hostile"
        )


def recognise(state: StateDict, what: str, layouts: Sequence[Layout] = LAYOUTS) -> Recognised:
    """The first of ``layouts`` that accounts for every tensor in ``state``; otherwise one error
    line that lists them (formats with layouts of their own, like PFRL's, pass them in)."""
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{what} holds no tensors")
    odd = [k for k in tensors if not isinstance(k, str)]
    if odd:
        raise CheckpointError(f"{what} holds a tensor under {odd[0]!r:.40}, which is not a module name")
    _check_sizes(tensors, what)
    for layout in layouts:
        try:
            found = layout.recognise(tensors)
        except CheckpointError as exc:  # the layout fits but something in it is not supported or damaged
            raise CheckpointError(f"{what}: {exc}") from None
        if found is not None:
            return found
    sample = ", ".join(key[:80] for key in list(tensors)[:4]) + (", ..." if len(tensors) > 4 else "")
    known = "; ".join(f"{layout.name} ({layout.description})" for layout in layouts)
    raise CheckpointError(f"{what} matches no layout we know (its keys: {sample}); known layouts: {known}")
