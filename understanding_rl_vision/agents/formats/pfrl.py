"""PFRL agents (``agent.save(dirname)``), read without PFRL and without unpickling.

PFRL saves each of an agent's ``saved_attributes`` as ``dirname/<name>.pt``, a ``torch.save``d
state dict; ``model.pt`` holds the network (``target_model.pt``, ``optimizer.pt`` and the rest are
not needed to explain it). PFRL networks are ``nn.Sequential``s and PFRL's own modules, so their
tensors are named by Sequential indices and PFRL's attribute names (``child_modules`` of
``Branched``, ``layers``/``output`` of ``LargeAtariCNN``, ``a_stream``/``v_stream`` of
``DuelingDQN``). The layouts below map those of PFRL's Atari examples
(https://github.com/pfnet/pfrl/tree/master/examples/atari) onto our Nature CNN, which they all
build on; PFRL networks we cannot rebuild are named in the error, not left as "no layout".

Every one of those examples feeds its network ``np.asarray(obs, dtype=np.float32) / 255``
(its ``phi``) of channels-first frames: our default preprocessing of (H, W, C) uint8 frames
(scaled by 1/255, transposed to NCHW), equal to PFRL's input to within one float32 rounding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from pathlib import Path

import torch

from ...errors import CheckpointError
from ..base import Preprocessing
from ..limits import MAX_PARAMETERS
from ..safetensors_header import regular_file_size
from .foreign import Foreign
from .layouts import Layout, Recognised, StateDict, _nature

MODEL_FILE = "model.pt"
"""What ``agent.save`` names the network's state dict (the ``model`` saved attribute)."""
FORMAT = "pfrl"
PREFIX = "pfrl "
"""Every PFRL layout's name starts so; :func:`is_pfrl` tells a PFRL file given as a bare state dict."""

PPO_SEQUENTIAL = PREFIX + "train_ppo_ale.py model (Nature CNN Sequential, Branched softmax policy and value)"
BRANCHED_LARGE_CNN = PREFIX + "LargeAtariCNN with a Branched softmax policy and value"
DQN_NATURE = PREFIX + "train_dqn_ale.py --arch nature (LargeAtariCNN, Linear, DiscreteActionValueHead)"
DQN_DOUBLE = PREFIX + "train_dqn_ale.py --arch doubledqn (LargeAtariCNN, bias-free Linear, SingleSharedBias)"
DUELING = PREFIX + "DuelingDQN (train_dqn_ale.py --arch dueling)"

SEQUENTIAL_CNN = {"0": "conv1", "2": "conv2", "4": "conv3", "7": "fc"}
"""train_ppo_ale.py's Sequential: conv, ReLU, conv, ReLU, conv, ReLU, Flatten, Linear, ReLU, then
the Branched heads at index 9."""
LARGE_CNN = {"0.layers.0": "conv1", "0.layers.1": "conv2", "0.layers.2": "conv3", "0.output": "fc"}
"""``pfrl.nn.LargeAtariCNN`` first in a Sequential: three convs and the dense layer, each followed
by a ReLU inside it, so the head sits at index 1."""


def _actor_critic(state: StateDict) -> Recognised | None:
    """``Branched(Sequential(Linear, SoftmaxCategoricalHead), Linear)`` after the Nature CNN: the
    PPO example's network (the A2C/A3C examples' shape, on the Nature CNN). The softmax head has no
    weights; our policy layer gives the logits it normalises."""
    for trunk, head, name in ((SEQUENTIAL_CNN, "9", PPO_SEQUENTIAL), (LARGE_CNN, "1", BRANCHED_LARGE_CNN)):
        branches = f"{head}.child_modules"
        if f"{branches}.0.0.weight" in state:
            prefixes = {**trunk, f"{branches}.0.0": "policy", f"{branches}.1": "value"}
            return _nature(name, state, prefixes, "actor-critic")
    return None


def _dqn(state: StateDict) -> Recognised | None:
    """``Sequential(LargeAtariCNN, Linear, DiscreteActionValueHead)``; with ``--arch doubledqn``
    the Linear has no bias and a ``SingleSharedBias`` (one value added to every action) follows,
    which is the same as the Linear's bias holding that value for every action."""
    if "0.layers.0.weight" not in state or "1.weight" not in state:
        return None
    name = DQN_NATURE
    if "1.bias" not in state and "2.bias" in state:
        weight, shared = state["1.weight"], state["2.bias"]
        if weight.dim() != 2 or shared.numel() != 1:
            return None
        state = {k: v for k, v in state.items() if k != "2.bias"}
        state["1.bias"] = shared.reshape(1).repeat(weight.shape[0])
        name = DQN_DOUBLE
    return _nature(name, state, {**LARGE_CNN, "1": "q"}, "q")


DUELING_STREAMS = tuple(
    f"{stream}.{layer}.{kind}"
    for stream in ("a_stream", "v_stream")
    for layer in ("hidden_layers.0", "output")
    for kind in ("weight", "bias")
)


def _dueling(state: StateDict) -> Recognised | None:
    """``pfrl.q_functions.DuelingDQN``: the Nature convs, then an advantage and a value MLP with
    one hidden layer each, ``Q = V + A - mean(A)``. Rebuilt exactly as our Nature CNN with both
    hidden layers side by side in ``fc`` (advantage units first, then value units) and the
    combination folded into ``q``, since ``A - mean(A)`` and ``+ V`` are linear in the hidden units."""
    convs = {f"conv_layers.{i}.{kind}" for i in range(3) for kind in ("weight", "bias")}
    if "conv_layers.0.weight" not in state or set(state) != convs | set(DUELING_STREAMS):
        return None
    ours = {f"conv{int(k.split('.')[1]) + 1}.{k.split('.')[2]}": v for k, v in state.items() if k in convs}
    ours |= _fold_dueling(state)
    found = _nature(DUELING, ours, {n: n for n in ("conv1", "conv2", "conv3", "fc", "q")}, "q")
    if found is None:
        return None
    renamed = {f"conv{i + 1}": f"conv_layers.{i}" for i in range(3)}
    renamed |= {
        "fc": "a_stream.hidden_layers.0 and v_stream.hidden_layers.0, side by side",
        "q": "a_stream.output - its mean over actions + v_stream.output",
    }
    return dataclasses.replace(found, renamed=renamed)


def _fold_dueling(state: StateDict) -> StateDict:
    """The two streams as one hidden layer and one Q layer (computed in float64, stored in the
    file's dtype). Shapes that do not chain are a damaged file."""
    a_hidden, a_hidden_bias, a_out, a_out_bias, v_hidden, v_hidden_bias, v_out, v_out_bias = (
        state[k] for k in DUELING_STREAMS
    )
    for key in DUELING_STREAMS:
        if not state[key].is_floating_point():
            raise CheckpointError(
                f"the DuelingDQN stores {str(state[key].dtype).removeprefix('torch.')} weights ({key}); only "
                "floating-point weights can be loaded"
            )
    ranks = [t.dim() for t in (a_hidden, a_out, v_hidden, v_out)] + [
        t.dim() for t in (a_hidden_bias, a_out_bias, v_hidden_bias, v_out_bias)
    ]
    fits = ranks == [2, 2, 2, 2, 1, 1, 1, 1] and (
        a_hidden.shape[1] == v_hidden.shape[1]
        and a_hidden_bias.shape[0] == a_hidden.shape[0] == a_out.shape[1]
        and v_hidden_bias.shape[0] == v_hidden.shape[0] == v_out.shape[1]
        and a_out_bias.shape[0] == a_out.shape[0]
        and v_out.shape[0] == v_out_bias.shape[0] == 1
    )
    if not fits:
        shapes = ", ".join(f"{k} {tuple(state[k].shape)}" for k in DUELING_STREAMS)
        raise CheckpointError(f"the DuelingDQN's stream layers do not chain ({shapes}); the file is damaged")
    actions, hidden = a_out.shape[0], a_out.shape[1] + v_out.shape[1]
    if actions * hidden > MAX_PARAMETERS:  # the folded layer is built: bound it before it is
        raise CheckpointError(
            f"the DuelingDQN's Q layer would hold {actions * hidden:,} weights, over the {MAX_PARAMETERS:,} "
            "this tool loads"
        )
    dtype = a_out.dtype
    a_out64, v_out64 = a_out.double(), v_out.double()
    q_weight = torch.cat([a_out64 - a_out64.mean(0, keepdim=True), v_out64.expand(actions, -1)], dim=1)
    q_bias = a_out_bias.double() - a_out_bias.double().mean() + v_out_bias.double()
    return {
        "fc.weight": torch.cat([a_hidden, v_hidden]),
        "fc.bias": torch.cat([a_hidden_bias, v_hidden_bias]),
        "q.weight": q_weight.to(dtype),
        "q.bias": q_bias.to(dtype),
    }


def _unsupported(state: StateDict) -> Recognised | None:
    """PFRL networks we know but cannot rebuild, named so that the error says why (None otherwise)."""
    keys = list(state)
    if "1.z_values" in state or any(k.startswith("main_stream.") for k in keys):
        raise CheckpointError(
            "this is a PFRL distributional (categorical) Q-function (train_categorical_dqn_ale.py, "
            "Rainbow's DistributionalDuelingDQN), which is not supported: we explain Q-values, not return distributions"
        )
    if all(any(k.startswith(f"{part}.") for k in keys) for part in ("psi", "phi", "f")):
        raise CheckpointError("this is a PFRL implicit quantile network (IQN), which is not supported")
    if any(k.rsplit(".", 1)[-1].startswith(("weight_ih_l", "weight_hh_l")) for k in keys):
        raise CheckpointError(
            "this network is recurrent (a GRU or LSTM, as PFRL's train_ppo_ale.py --recurrent and "
            "train_drqn_ale.py build), which is not supported"
        )
    small_sequential = (
        [state[k].dim() if k in state else 0 for k in ("0.weight", "2.weight", "4.weight", "5.weight")] == [4, 4, 0, 2]
        and any(k.startswith("7.") for k in keys)  # the heads after Flatten, Linear, ReLU
    )
    small_module = "0.layers.1.weight" in state and "0.layers.2.weight" not in state and "0.output.weight" in state
    if small_sequential or small_module:
        raise CheckpointError(
            "this is PFRL's two-convolution NIPS 2013 CNN (train_a2c_ale.py, train_a3c.py, train_acer_ale.py, "
            "SmallAtariCNN, train_dqn_ale.py --arch nips), which is not supported yet: we rebuild the "
            "three-convolution Nature CNN (train_ppo_ale.py, train_dqn_ale.py --arch nature/doubledqn/dueling)"
        )
    return None


PFRL_LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "pfrl-actor-critic",
        "PFRL PPO/A2C/A3C (train_ppo_ale.py): 0,2,4 convs, 7 dense, 9.child_modules.{0.0,1} policy and value "
        "(or LargeAtariCNN 0.layers.*, 0.output, then 1.child_modules.*)",
        _actor_critic,
    ),
    Layout(
        "pfrl-dqn",
        "PFRL DQN/DoubleDQN (train_dqn_ale.py --arch nature/doubledqn): LargeAtariCNN 0.layers.*, 0.output, "
        "then 1 (and 2.bias, a SingleSharedBias)",
        _dqn,
    ),
    Layout("pfrl-dueling-dqn", "PFRL DuelingDQN: conv_layers.*, a_stream.*, v_stream.*", _dueling),
    Layout(
        "pfrl-unsupported",
        "PFRL networks named only to refuse them: the NIPS CNN (A2C/A3C examples), recurrent, distributional, IQN",
        _unsupported,
    ),
)


def is_pfrl(found: Recognised) -> bool:
    return found.layout.startswith(PREFIX)


def is_directory(path: Path) -> bool:
    """Whether ``path`` is a directory; False when it cannot be looked at (the file reader then
    says why in one line: a name too long, a permission)."""
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def agent_weights(directory: Path) -> Path:
    """``directory/model.pt`` of a PFRL agent directory; one error line for any other directory."""
    weights = directory / MODEL_FILE
    if not os.path.lexists(weights):
        try:
            regular_file_size(directory)  # its message, with a hint at any .safetensors inside
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc}; the only directories read are PFRL agent directories (agent.save), which hold {MODEL_FILE}"
            ) from None
    return weights


def pfrl_foreign(path: Path, found: Recognised) -> Foreign:
    """A PFRL network, from its agent directory or its ``model.pt`` alone. PFRL records neither
    the environment nor the discount in the weights."""
    details: dict[str, object] = {}
    if is_directory(path):
        with contextlib.suppress(OSError):  # the names are for `inspect` only
            details["saved"] = sorted(p.name for p in path.glob("*.pt"))[:8]
    return Foreign(
        format=FORMAT, path=path, recognised=found, preprocessing=Preprocessing(scale=1 / 255), details=details
    )
