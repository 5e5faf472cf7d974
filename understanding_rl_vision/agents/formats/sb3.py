"""Stable-Baselines3 ``.zip`` files, read without Stable-Baselines3 and without unpickling.

An SB3 zip holds ``data`` (JSON; entries SB3 could not write as JSON are cloudpickled, base64,
under ``:serialized:``), ``policy.pth`` (the policy's state dict, ``torch.save``) and more. We
read the plain JSON fields, take class names out of the pickled entries with ``pickletools``
(which lists a pickle's opcodes without running it), and load ``policy.pth`` with
``torch.load(weights_only=True)``, which refuses anything but tensors and containers.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import pickletools
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ..limits import (
    MAX_JSON_BYTES,
    MAX_PICKLE_BYTES,
    MAX_SMALL_ENTRY_BYTES,
    MAX_WEIGHT_BYTES,
    check_fraction,
    check_num_actions,
    check_observation_shape,
    is_int,
    load_json,
)
from .archive import load_torch, open_zip, read_entry
from .layouts import Recognised, recognise, sb3_recurrent_layout
from .recurrent_imports import ACTIVATIONS

PIXEL_POLICIES = {"ActorCriticCnnPolicy", "CnnPolicy"}
"""Policy classes whose features extractor is the Nature CNN (PPO/A2C's and DQN's "CnnPolicy")."""
RECURRENT_POLICIES = {"RecurrentActorCriticCnnPolicy", "CnnLstmPolicy"}
"""sb3-contrib's ``RecurrentPPO`` with ``CnnLstmPolicy``: the Nature CNN, then LSTMs (see :mod:`.recurrent_imports`)."""
VECTOR_POLICIES = {"ActorCriticPolicy", "MlpPolicy", "DQNPolicy", "MultiInputActorCriticPolicy", "MultiInputPolicy"}
RECURRENT_VECTOR_POLICIES = {
    "RecurrentActorCriticPolicy",
    "MlpLstmPolicy",
    "RecurrentMultiInputActorCriticPolicy",
    "MultiInputLstmPolicy",
}
_ACTIVATION_CLASS = re.compile(r"<class 'torch\.nn\.modules\.activation\.(\w+)'>")
_NAME_OPS = 10_000
"""Opcodes read for names: a class pickled by reference takes a handful; a hostile entry could
hold millions, each a microsecond to list."""


@dataclass(frozen=True)
class SB3Agent:
    recognised: Recognised
    policy_class: str
    observation_shape: tuple[int, ...]  # as SB3 stored it: (C, H, W) after VecTransposeImage
    num_actions: int
    gamma: float | None
    gae_lambda: float | None
    normalize_images: bool
    version: str


def is_sb3_zip(names: set[str]) -> bool:
    return "data" in names and ("policy.pth" in names or "_stable_baselines3_version" in names)


def _pickled_names(entry: Any) -> list[str]:
    """The strings inside a ``:serialized:`` entry, read opcode by opcode, never executed.
    For a class pickled by reference these include its module and name."""
    if not isinstance(entry, dict) or not isinstance(entry.get(":serialized:"), str):
        return []
    names: list[str] = []
    try:
        raw = base64.b64decode(entry[":serialized:"], validate=True)
        for _, arg, _ in itertools.islice(pickletools.genops(raw), _NAME_OPS):
            if isinstance(arg, str):
                names.append(arg)
    except (binascii.Error, ValueError, EOFError, OverflowError, struct.error):  # damaged: the names so far
        pass
    return names


def _policy_class(data: dict[str, Any]) -> str:
    entry = data.get("policy_class")
    names = _pickled_names(entry)
    ours = PIXEL_POLICIES | VECTOR_POLICIES | RECURRENT_POLICIES | RECURRENT_VECTOR_POLICIES
    known = [n for n in names if n in ours or n.endswith("Policy")]
    if known:
        return known[-1]
    init = entry.get("__init__", "") if isinstance(entry, dict) else ""
    if isinstance(init, str) and init.startswith("<function ") and ".__init__" in init:
        return init.removeprefix("<function ").split(".__init__")[0]
    return "unknown"


def _activation(kwargs: Any) -> str | None:
    """The class name of ``policy_kwargs``' ``activation_fn`` (a recurrent policy's ``mlp_extractor``
    activation; ``Tanh`` when not set), or None for one we do not know. A class is not JSON: SB3
    pickles the whole ``policy_kwargs`` and writes each item's ``str`` beside it, which we read."""
    if not isinstance(kwargs, dict) or "activation_fn" not in kwargs:
        return "Tanh"
    found = _ACTIVATION_CLASS.fullmatch(str(kwargs["activation_fn"]))
    return found.group(1) if found and found.group(1) in ACTIVATIONS else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON Infinity
        return None


def _shape(space: Any, path: Path) -> tuple[int, ...]:
    """The observation space's ``_shape``: a list of sizes, each checked (a space that is not an
    object, or has no shape, gives ``()``)."""
    stored = space.get("_shape") if isinstance(space, dict) else None
    if stored is None:
        return ()
    if not isinstance(stored, list) or len(stored) > 8 or not all(is_int(d) for d in stored):
        raise CheckpointError(
            f"corrupt Stable-Baselines3 zip {path}: the observation space's _shape "
            f"{str(stored)[:40]} is not a list of sizes"
        )
    return tuple(stored)


def _fraction(data: dict[str, Any], key: str, path: Path) -> float | None:
    return None if data.get(key) is None else check_fraction(data[key], key, f"corrupt Stable-Baselines3 zip {path}")


def read_sb3(path: Path) -> SB3Agent:
    """Parse an SB3 zip into a recognised state dict; one :class:`CheckpointError` line on failure.
    Each entry is read through a bounded reader, its declared size checked first."""
    with open_zip(path, str(path), total_cap=None) as archive:
        names = set(archive.namelist())
        if "policy.pth" not in names:
            raise CheckpointError(f"{path} is a Stable-Baselines3 zip without policy.pth (the policy's weights)")
        data = load_json(read_entry(archive, "data", MAX_JSON_BYTES, str(path)), f"'data' in {path}")
        weights = read_entry(archive, "policy.pth", MAX_WEIGHT_BYTES + MAX_PICKLE_BYTES, str(path))
        version = "?"
        if "_stable_baselines3_version" in names:
            raw = read_entry(archive, "_stable_baselines3_version", MAX_SMALL_ENTRY_BYTES, str(path))
            version = raw.decode("utf-8", "replace")[:40]
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt Stable-Baselines3 zip {path}: 'data' is not a JSON object")

    policy = _policy_class(data)
    shape = _shape(data.get("observation_space"), path)
    if policy in VECTOR_POLICIES | RECURRENT_VECTOR_POLICIES or len(shape) != 3:
        raise CheckpointError(
            f"{path} holds a Stable-Baselines3 {policy} with observations of shape {shape or '?'}: "
            "not a pixel policy; we explain CnnPolicy and CnnLstmPolicy agents whose observations are images"
        )
    if policy not in PIXEL_POLICIES | RECURRENT_POLICIES:
        raise CheckpointError(
            f"{path} holds a Stable-Baselines3 {policy}, which is not supported; supported: "
            f"{', '.join(sorted(PIXEL_POLICIES | RECURRENT_POLICIES))} (PPO, A2C and DQN with policy='CnnPolicy', "
            "sb3-contrib RecurrentPPO with policy='CnnLstmPolicy')"
        )
    # (C, H, W) or (H, W, C): largest first puts the channels last for the caps
    check_observation_shape(tuple(sorted(shape, reverse=True)), f"corrupt Stable-Baselines3 zip {path}")
    actions = data.get("action_space") or {}
    if not isinstance(actions, dict) or "n" not in actions:
        raise CheckpointError(f"{path}: the action space is not Discrete; we explain discrete actions only")
    count = _int(actions["n"])
    if count is None:
        raise CheckpointError(
            f"corrupt Stable-Baselines3 zip {path}: the action space's n {str(actions['n'])[:40]} is not a count"
        )
    check_num_actions(count, f"corrupt Stable-Baselines3 zip {path}")
    kwargs = data.get("policy_kwargs") or {}
    normalize = bool(kwargs.get("normalize_images", True)) if isinstance(kwargs, dict) else True
    gamma, gae_lambda = _fraction(data, "gamma", path), _fraction(data, "gae_lambda", path)

    state = load_torch(weights, f"policy.pth in {path}", f"cannot read policy.pth in {path}")
    if not isinstance(state, dict):
        raise CheckpointError(f"policy.pth in {path} is not a state dict")
    if policy in RECURRENT_POLICIES:  # by the zip's content: its weights must be a recurrent policy's
        recognised = recognise(state, f"policy.pth in {path}", (sb3_recurrent_layout(_activation(kwargs)),))
    else:
        recognised = recognise(state, f"policy.pth in {path}")
    if recognised.num_actions != count:
        raise CheckpointError(f"{path}: {recognised.num_actions} action outputs but an action space of {count}")
    return SB3Agent(
        recognised=recognised,
        policy_class=policy,
        observation_shape=shape,
        num_actions=count,
        gamma=gamma,
        gae_lambda=gae_lambda,
        normalize_images=normalize,
        version=version,
    )
