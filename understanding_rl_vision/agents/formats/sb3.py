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
import io
import json
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError, first_line
from .layouts import Recognised, recognise

PIXEL_POLICIES = {"ActorCriticCnnPolicy", "CnnPolicy"}
"""Policy classes whose features extractor is the Nature CNN (PPO/A2C's and DQN's "CnnPolicy")."""
VECTOR_POLICIES = {"ActorCriticPolicy", "MlpPolicy", "DQNPolicy", "MultiInputActorCriticPolicy",
                   "MultiInputPolicy"}  # fmt: skip


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
    try:
        raw = base64.b64decode(entry[":serialized:"], validate=True)
        return [arg for _, arg, _ in pickletools.genops(raw) if isinstance(arg, str)]
    except (binascii.Error, ValueError):
        return []


def _policy_class(data: dict[str, Any]) -> str:
    entry = data.get("policy_class")
    names = _pickled_names(entry)
    known = [n for n in names if n in PIXEL_POLICIES | VECTOR_POLICIES or n.endswith("Policy")]
    if known:
        return known[-1]
    init = entry.get("__init__", "") if isinstance(entry, dict) else ""
    if isinstance(init, str) and init.startswith("<function ") and ".__init__" in init:
        return init.removeprefix("<function ").split(".__init__")[0]
    return "unknown"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_sb3(path: Path) -> SB3Agent:
    """Parse an SB3 zip into a recognised state dict; one :class:`CheckpointError` line on failure."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"corrupt Stable-Baselines3 zip {path}: {exc}") from None
    with archive:
        names = set(archive.namelist())
        if "policy.pth" not in names:
            raise CheckpointError(f"{path} is a Stable-Baselines3 zip without policy.pth (the policy's weights)")
        try:
            data = json.loads(archive.read("data"))
            weights = archive.read("policy.pth")
            version = archive.read("_stable_baselines3_version").decode() if "_stable_baselines3_version" in names else "?"
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"corrupt Stable-Baselines3 zip {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt Stable-Baselines3 zip {path}: 'data' is not a JSON object")

    policy = _policy_class(data)
    space = data.get("observation_space") or {}
    shape = tuple(int(d) for d in space.get("_shape") or ()) if isinstance(space, dict) else ()
    if policy in VECTOR_POLICIES or len(shape) != 3:
        raise CheckpointError(
            f"{path} holds a Stable-Baselines3 {policy} with observations of shape {shape or '?'}: "
            "not a pixel policy; we explain CnnPolicy agents whose observations are images"
        )
    if policy not in PIXEL_POLICIES:
        raise CheckpointError(
            f"{path} holds a Stable-Baselines3 {policy}, which is not supported; supported: "
            f"{', '.join(sorted(PIXEL_POLICIES))} (PPO, A2C and DQN with policy='CnnPolicy')"
        )
    actions = data.get("action_space") or {}
    if not isinstance(actions, dict) or _int(actions.get("n")) is None:
        raise CheckpointError(f"{path}: the action space is not Discrete; we explain discrete actions only")
    kwargs = data.get("policy_kwargs") or {}
    normalize = bool(kwargs.get("normalize_images", True)) if isinstance(kwargs, dict) else True

    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's unpickler raises many types; keep it to one line
        raise CheckpointError(f"cannot read policy.pth in {path}: {first_line(exc)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"policy.pth in {path} is not a state dict")
    recognised = recognise(state, f"policy.pth in {path}")
    if recognised.num_actions != _int(actions["n"]):
        raise CheckpointError(f"{path}: {recognised.num_actions} action outputs but an action space of {actions['n']}")
    return SB3Agent(
        recognised=recognised,
        policy_class=policy,
        observation_shape=shape,
        num_actions=int(actions["n"]),
        gamma=float(data["gamma"]) if isinstance(data.get("gamma"), (int, float)) else None,
        gae_lambda=float(data["gae_lambda"]) if isinstance(data.get("gae_lambda"), (int, float)) else None,
        normalize_images=normalize,
        version=version,
    )
