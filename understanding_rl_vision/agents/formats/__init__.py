"""Load an agent from whatever file the user has: ours, Stable-Baselines3, CleanRL, TorchScript.

:func:`load_agent` sniffs the file's content (never its extension alone), reads it without
unpickling, and returns the same :class:`~understanding_rl_vision.agents.Agent` every command
uses. Files from other libraries record no environment, so the environment is named by the
caller (``--env``); its observation shape and action names complete the agent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...envs import AtariSpec, EnvSpec, parse_env_id
from ...errors import CheckpointError, UserError, first_line
from ..architectures import build_model
from ..base import DEFAULT_GAMMA, DEFAULT_LAMBDA, Agent, Preprocessing
from ..checkpoint import FORMAT, load_checkpoint
from .layouts import LAYOUTS, Recognised, recognise
from .sb3 import is_sb3_zip, read_sb3

__all__ = ["LAYOUTS", "Foreign", "describe_file", "load_agent", "read_foreign", "sniff_format"]

FORMATS = ("understanding-rl-vision", "stable-baselines3", "torchscript", "state-dict")


@dataclass(frozen=True)
class Foreign:
    """A file from another library, read as far as it goes without an environment."""

    format: str
    path: Path
    recognised: Recognised | None  # None: a TorchScript module whose weights match no layout
    scripted: torch.jit.ScriptModule | None = None
    observation_shape: tuple[int, int, int] | None = None  # (H, W, C) when the file says
    gamma: float | None = None
    lam: float | None = None
    preprocessing: Preprocessing = Preprocessing()
    env: str = ""  # from a TorchScript's metadata JSON
    details: dict[str, Any] = field(default_factory=dict)  # for `inspect`


def sniff_format(path: Path) -> str:
    """One of :data:`FORMATS`, from the file's first bytes and, for zips, its member names."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path is a directory, not a file: {path}")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if len(head) == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"corrupt zip file {path}: {exc}") from None
        if is_sb3_zip(names):
            return "stable-baselines3"
        if any("/code/" in name or name.startswith("code/") for name in names):
            return "torchscript"
        if any(name.endswith("data.pkl") for name in names):
            return "state-dict"
        raise CheckpointError(f"{path} is a zip file but neither a Stable-Baselines3 model, a TorchScript "
                              "module nor a torch.save file")  # fmt: skip
    length = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    if 0 < length < 100_000_000 and head[8:9] == b"{":
        return "understanding-rl-vision" if _has_our_metadata(path, length) else "state-dict"
    if head[:1] == b"\x80":  # a legacy (non-zip) torch.save pickle
        return "state-dict"
    raise CheckpointError(f"not a checkpoint we can read (unrecognised content): {path}; we read our "
                          ".safetensors, Stable-Baselines3 .zip, torch.save state dicts (CleanRL) and TorchScript")  # fmt: skip


def _has_our_metadata(path: Path, length: int) -> bool:
    with open(path, "rb") as handle:
        handle.seek(8)
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return True  # let the native reader report the corruption precisely
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``'d or safetensors state dict, without unpickling code."""
    try:
        with open(path, "rb") as handle:
            safetensors = handle.read(9)[8:9] == b"{"
        if safetensors:
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses arbitrary objects with an UnpicklingError
        raise CheckpointError(f"cannot read {path} as a state dict without unpickling code: {first_line(exc)}") from None
    for key in ("state_dict", "model_state_dict", "model"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _hwc(shape: tuple[int, ...], channels: int) -> tuple[int, int, int] | None:
    """(H, W, C) from a stored image shape in either channel order."""
    if len(shape) != 3:
        return None
    if shape[0] == channels:
        return (shape[1], shape[2], shape[0])
    if shape[2] == channels:
        return (shape[0], shape[1], shape[2])
    return None


def read_foreign(path: str | os.PathLike[str]) -> Foreign:
    """Read a file from another library (not one of our checkpoints)."""
    path = Path(path)
    kind = sniff_format(path)
    if kind == "stable-baselines3":
        sb3 = read_sb3(path)
        found = sb3.recognised
        return Foreign(
            format=kind, path=path, recognised=found,
            observation_shape=_hwc(sb3.observation_shape, found.in_channels),
            gamma=sb3.gamma, lam=sb3.gae_lambda,
            preprocessing=Preprocessing(scale=1 / 255 if sb3.normalize_images else 1.0),
            details={"policy": sb3.policy_class, "stable_baselines3_version": sb3.version},
        )  # fmt: skip
    if kind == "torchscript":
        from .torchscript import read_torchscript

        return read_torchscript(path)
    if kind == "state-dict":
        found = recognise(_load_state_dict(path), str(path))
        return Foreign(format=kind, path=path, recognised=found)
    raise CheckpointError(f"{path} is an understanding-rl-vision checkpoint; load it with load_checkpoint")


def environment(foreign: Foreign, env: str | EnvSpec, frame_stack: int = 0) -> EnvSpec:
    """The spec for ``env``, with the Atari frame stack and screen size the network implies."""
    name = env or foreign.env
    if not name:
        raise UserError(f"{foreign.path.name} ({foreign.format}) does not record its environment; "
                        "name it with --env (e.g. --env ALE/Breakout-v5 or --env coinrun)")  # fmt: skip
    spec = parse_env_id(name) if isinstance(name, str) else name
    found = foreign.recognised
    if isinstance(spec, AtariSpec):
        channels = found.in_channels if found else (foreign.observation_shape or (0, 0, spec.frame_stack))[2]
        if frame_stack and channels and frame_stack != channels:
            raise UserError(f"--frame-stack {frame_stack} does not fit the network, whose first layer takes "
                            f"{channels} stacked frames")  # fmt: skip
        size = foreign.observation_shape[0] if foreign.observation_shape else (found.input_size[0] if found else 84)
        spec = dataclasses.replace(spec, frame_stack=frame_stack or channels or spec.frame_stack, screen_size=size)
    elif frame_stack:
        raise UserError(f"--frame-stack applies to Atari games, not {spec.id}")
    return spec


def complete(foreign: Foreign, spec: EnvSpec, device: str | torch.device = "cpu") -> Agent:
    """Build the agent for ``spec``: the environment gives the observation shape and action names."""
    from ...envs import make_vec_env

    with make_vec_env(spec, num_envs=1, seed=0) as env:
        shape, names = tuple(env.observation_shape), tuple(env.action_names)
    found = foreign.recognised
    common = dict(observation_shape=shape, action_names=names, env_spec=spec, preprocessing=foreign.preprocessing,
                  gamma=DEFAULT_GAMMA if foreign.gamma is None else foreign.gamma,
                  lam=DEFAULT_LAMBDA if foreign.lam is None else foreign.lam)  # fmt: skip
    if found is None:  # an opaque TorchScript module
        from .torchscript import opaque_agent

        return opaque_agent(foreign, device=device, **common)
    if found.in_channels != shape[2]:
        raise UserError(f"{foreign.path.name} takes {found.in_channels}-channel observations but {spec.id} "
                        f"yields {shape} (H, W, C)")  # fmt: skip
    if found.num_actions != len(names):
        raise UserError(f"{foreign.path.name} has {found.num_actions} actions but {spec.id} has {len(names)}; "
                        "is this the environment it was trained on?")  # fmt: skip
    model = build_model(found.architecture, shape, len(names))
    try:
        model.load_state_dict(found.state_dict, strict=True)
    except RuntimeError as exc:
        detail = str(exc).splitlines()[-1].strip() if str(exc) else ""
        raise UserError(f"{foreign.path.name} does not fit {spec.id}'s observations {shape}: {detail}") from None
    if foreign.scripted is not None:
        from .torchscript import opaque_agent, rebuilt_matches

        if not rebuilt_matches(foreign, model, shape):
            return opaque_agent(foreign, device=device, **common)
        common["preprocessing"] = Preprocessing()  # what our rebuilt module expects
    model.to(device).eval()
    head = found.architecture.kwargs.get("head", "actor-critic")
    return Agent(model=model, architecture=found.architecture,
                 action_outputs="q_values" if head == "q" else "logits", **common)  # type: ignore[arg-type]


def load_agent(
    path: str | os.PathLike[str],
    *,
    env: str | EnvSpec = "",
    frame_stack: int = 0,
    device: str | torch.device = "cpu",
) -> Agent:
    """Any supported file as an :class:`Agent`. ``env`` names the environment for files that do
    not record one (and must match the one ours record); ``frame_stack`` overrides Atari's."""
    path = Path(path)
    if sniff_format(path) == "understanding-rl-vision":
        return load_checkpoint(path, device=device)
    foreign = read_foreign(path)
    return complete(foreign, environment(foreign, env, frame_stack), device)


def describe_file(path: str | os.PathLike[str], *, env: str = "", frame_stack: int = 0) -> dict[str, Any]:
    """What ``inspect`` prints: format, architecture, layers with shapes, actions, environment."""
    from .describe import describe

    return describe(Path(path), env=env, frame_stack=frame_stack)
