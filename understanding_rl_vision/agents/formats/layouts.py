"""Recognise another library's state dict and rename it onto one of our architectures.

Stable-Baselines3, CleanRL and most hand-written Atari/Procgen agents use the same two networks
as ours (the Nature CNN and the IMPALA CNN) under other module names. A :class:`Layout` knows one
such naming: which tensors it must have, how to read the architecture's sizes off their shapes,
and how each name maps onto ours. Rebuilding our own module (rather than running theirs) gives
every format the same hookable layers (``conv3``, ``stacks.1.res0``...) and needs none of the
other library's code. Recurrent agents (sb3-contrib's ``RecurrentPPO`` ``CnnLstmPolicy``, CleanRL's
``ppo_atari_lstm``) put one-layer LSTMs after the Nature CNN: they become a
:class:`~.recurrent_imports.NatureLSTM`, their ``nn.LSTM`` tensors (``weight_ih_l0``...) renamed onto
its ``nn.LSTMCell`` ones (``weight_ih``...).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import CheckpointError
from ..base import ArchitectureSpec
from ..limits import MAX_WEIGHT_BYTES
from .recurrent_imports import ACTIVATIONS, NatureLSTM  # importing it registers the architecture

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


def _shared_extractor(state: StateDict, extractor: str = "features_extractor") -> StateDict:
    """``state`` without SB3's copies of its one features extractor (``pi_``/``vf_features_extractor``),
    refusing separate actor and critic extractors."""
    copies = ("pi_features_extractor", "vf_features_extractor")
    for copy in copies:  # SB3 registers the shared extractor under these names too
        for key in [k for k in state if k.startswith(copy + ".")]:
            twin = extractor + key[len(copy) :]
            if twin not in state or not _same(state[key], state[twin]):
                raise CheckpointError(
                    "this Stable-Baselines3 policy has separate actor and critic feature extractors "
                    "(share_features_extractor=False), which is not supported yet"
                )
    return {k: v for k, v in state.items() if not k.startswith(tuple(c + "." for c in copies))}


def _sb3_actor_critic(state: StateDict) -> Recognised | None:
    extractor = "features_extractor"
    if f"{extractor}.cnn.0.weight" not in state:
        return None
    kept = _shared_extractor(state, extractor)
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


CLEANRL_ATARI = {
    "network.0": "conv1",
    "network.2": "conv2",
    "network.4": "conv3",
    "network.7": "fc",
    "actor": "policy",
    "critic": "value",
}
"""CleanRL's Atari agents' module names (``ppo_atari``, ``ppo_atari_lstm``) -> ours."""


def _cleanrl_ppo_atari(state: StateDict) -> Recognised | None:
    return _nature("cleanrl ppo_atari Agent", state, CLEANRL_ATARI, "actor-critic")


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


_LSTM_PARAMETER = re.compile(r"(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?")


def _lstm_cell(state: StateDict, theirs: str, ours: str) -> tuple[StateDict, StateDict]:
    """A one-layer ``nn.LSTM`` named ``theirs`` as our ``nn.LSTMCell`` ``ours`` (``weight_ih_l0`` ->
    ``weight_ih``), and the other tensors; empty when there is none. Stacked, bidirectional and
    projected LSTMs are refused: their state is not one ``(h, c)`` pair of the output's size."""
    cell: StateDict = {}
    rest: StateDict = {}
    layers, reverse, projected = 0, False, False
    for key, tensor in state.items():
        found = _LSTM_PARAMETER.fullmatch(key[len(theirs) + 1 :]) if key.startswith(theirs + ".") else None
        if found is None:
            rest[key] = tensor  # an unknown parameter stays a leftover: the layout then does not match
            continue
        layers = max(layers, int(found.group(2)) + 1)
        reverse |= found.group(3) is not None
        projected |= found.group(1) == "weight_hr"
        cell[f"{ours}.{found.group(1)}"] = tensor
    if layers > 1:
        raise CheckpointError(
            f"its LSTM {theirs} has {layers} layers; only one-layer LSTMs are supported (n_lstm_layers=1)"
        )
    if reverse or projected:
        kind = "bidirectional" if reverse else "projected (proj_size)"
        raise CheckpointError(f"its LSTM {theirs} is {kind}, which is not supported")
    return cell, rest


def _hidden_sizes(ours: StateDict, net: str, layout: str) -> list[int]:
    """Widths of SB3's ``mlp_extractor`` hidden layers ``{net}.0``, ``{net}.2``... (Linear, activation)."""
    indices = sorted(int(key.split(".")[1]) for key in ours if key.startswith(net + ".") and key.endswith(".weight"))
    if indices != list(range(0, 2 * len(indices), 2)) or any(ours[f"{net}.{i}.weight"].dim() != 2 for i in indices):
        raise CheckpointError(f"its {net} is not a sequence of Linear layers and activations, as {layout} has")
    return [int(ours[f"{net}.{i}.weight"].shape[0]) for i in indices]


def _nature_lstm(layout: str, ours: StateDict, kwargs: dict[str, Any], renamed: dict[str, str]) -> Recognised | None:
    """The :class:`~.recurrent_imports.NatureLSTM` that ``ours`` (renamed to its names) fills."""
    needed = ["conv1.weight", "conv2.weight", "conv3.weight", "fc.weight", "lstm.weight_ih", "lstm.weight_hh"]
    needed += ["policy.weight", "value.weight"]
    if not _has(ours, *needed):
        return None
    _require_ranks(ours, layout, {name: 4 if name.startswith("conv") else 2 for name in needed})
    hidden, flat = ours["fc.weight"].shape
    kwargs = {
        "hidden_size": int(hidden),
        "lstm_size": int(ours["lstm.weight_hh"].shape[1]),
        "lstm_bias": "lstm.bias_ih" in ours,
        **kwargs,
    }
    return Recognised(
        layout=layout,
        architecture=ArchitectureSpec(NatureLSTM.name, kwargs),
        state_dict=ours,
        in_channels=int(ours["conv1.weight"].shape[1]),
        num_actions=int(ours["policy.weight"].shape[0]),
        input_size=_pick(nature_side(int(flat), int(ours["conv3.weight"].shape[0])), 84),
        renamed=renamed,
    )


SB3_CRITICS = {
    "lstm": "separate actor and critic LSTMs",
    "shared": "one LSTM shared by the actor and the critic",
    "linear": "an actor LSTM and a linear critic",
}


def _sb3_recurrent(state: StateDict, activation: str | None = None) -> Recognised | None:
    """sb3-contrib's ``RecurrentActorCriticCnnPolicy``. ``activation`` names the ``mlp_extractor``'s
    activation (the zip's ``policy_kwargs`` say; a bare state dict does not)."""
    extractor = "features_extractor"
    if f"{extractor}.cnn.0.weight" not in state or not any(k.startswith("lstm_actor.") for k in state):
        return None
    actor, kept = _lstm_cell(_shared_extractor(state, extractor), "lstm_actor", "lstm")
    critic, kept = _lstm_cell(kept, "lstm_critic", "lstm_critic")
    prefixes = {
        f"{extractor}.cnn.0": "conv1",
        f"{extractor}.cnn.2": "conv2",
        f"{extractor}.cnn.4": "conv3",
        f"{extractor}.linear.0": "fc",
        "critic": "critic_fc",
        "mlp_extractor.policy_net": "policy_net",
        "mlp_extractor.value_net": "value_net",
        "action_net": "policy",
        "value_net": "value",
    }
    ours, leftover = _rename(kept, prefixes)
    if leftover:
        return None
    ours |= actor | critic
    kind = "lstm" if critic else "linear" if "critic_fc.weight" in ours else "shared"
    layout = f"stable-baselines3 RecurrentPPO CnnLstmPolicy (NatureCNN, {SB3_CRITICS[kind]})"
    layers = {net: _hidden_sizes(ours, net, layout) for net in ("policy_net", "value_net")}
    if any(layers.values()) and activation is None:
        raise CheckpointError(
            "this sb3-contrib recurrent policy has hidden layers after the LSTM (net_arch) whose activation is "
            "unknown: a bare state dict does not record it, and a zip's activation_fn must be one of torch.nn's "
            f"{', '.join(ACTIVATIONS)}"
        )
    kwargs = {
        "critic": kind,
        "policy_layers": layers["policy_net"],
        "value_layers": layers["value_net"],
        "activation": activation or "Tanh",
    }
    renamed = {o: t for t, o in prefixes.items() if any(k.startswith(o + ".") for k in ours)}
    renamed |= {"lstm": "lstm_actor"} | ({"lstm_critic": "lstm_critic"} if critic else {})
    return _nature_lstm(layout, ours, kwargs, renamed)


def sb3_recurrent_layout(activation: str | None) -> Layout:
    """The sb3-contrib recurrent layout, for a zip whose ``policy_kwargs`` name the activation."""
    return Layout(
        "sb3-recurrent",
        "sb3-contrib RecurrentPPO CnnLstmPolicy: features_extractor.cnn.*, lstm_actor, lstm_critic or critic, "
        "action_net, value_net",
        functools.partial(_sb3_recurrent, activation=activation),
    )


def _cleanrl_ppo_atari_lstm(state: StateDict) -> Recognised | None:
    """CleanRL's ``ppo_atari_lstm.py`` Agent: the Nature CNN on one frame, ``nn.LSTM(512, 128)``, and
    the actor and critic heads on the LSTM's output."""
    if not _has(state, "network.0.weight", "actor.weight") or not any(k.startswith("lstm.") for k in state):
        return None
    cell, kept = _lstm_cell(state, "lstm", "lstm")
    ours, leftover = _rename(kept, CLEANRL_ATARI)
    if leftover or not cell:
        return None
    renamed = {o: t for t, o in CLEANRL_ATARI.items()} | {"lstm": "lstm"}
    return _nature_lstm("cleanrl ppo_atari_lstm Agent", ours | cell, {"critic": "shared"}, renamed)


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
    sb3_recurrent_layout(None),  # before sb3-actor-critic, which would call its net_arch unsupported
    Layout(
        "sb3-actor-critic",
        "Stable-Baselines3 PPO/A2C CnnPolicy: features_extractor.cnn.*, action_net, value_net",
        _sb3_actor_critic,
    ),
    Layout("sb3-dqn", "Stable-Baselines3 DQN CnnPolicy: q_net.features_extractor.cnn.*, q_net.q_net.0", _sb3_dqn),
    Layout(
        "cleanrl-ppo-atari-lstm",
        "CleanRL ppo_atari_lstm: network.{0,2,4,7}, lstm (one layer), actor, critic",
        _cleanrl_ppo_atari_lstm,
    ),
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
