"""Load an agent from whatever file the user has: ours, Stable-Baselines3, CleanRL, PFRL, TorchScript.

:func:`load_agent` sniffs the file's content (never its extension alone), reads it without
unpickling, and returns the same :class:`~understanding_rl_vision.agents.Agent` every command
uses. Files from other libraries record no environment, so the environment is named by the
caller (``--env``); its observation shape and action names complete the agent.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import cast

import torch

from ...common.files import file_digest
from ...envs import AtariSpec, EnvSpec, MarioSpec, parse_env_id
from ...envs.spec import MARIO_ACTION_COUNTS
from ...errors import CheckpointError, UserError, first_line
from ..base import DEFAULT_GAMMA, DEFAULT_LAMBDA, Agent, Preprocessing
from ..checkpoint import FORMAT, load_checkpoint
from ..limits import MAX_HEADER_BYTES, load_json
from ..rebuild import float32_weights, planned_model
from ..safetensors_header import declared_header_length, read_header, read_prefix, regular_file_size
from .archive import load_torch, open_zip
from .foreign import Foreign
from .layouts import LAYOUTS, recognise
from .pfrl import PFRL_LAYOUTS, agent_weights, is_directory, is_pfrl, pfrl_foreign
from .sb3 import is_sb3_zip, read_sb3

__all__ = [
    "KNOWN_LAYOUTS",
    "LAYOUTS",
    "Foreign",
    "checkpoint_identity",
    "load_agent",
    "read_foreign",
    "sniff_format",
    "weights_file",
]

FORMATS = ("understanding-rl-vision", "stable-baselines3", "torchscript", "state-dict", "pfrl")
KNOWN_LAYOUTS = LAYOUTS + PFRL_LAYOUTS
"""What a bare state dict may be: PFRL's ``model.pt`` is one too, told apart by its layout."""


def sniff_format(path: Path) -> str:
    """One of :data:`FORMATS`, from the file's first bytes and, for zips, its member names; a
    directory is a PFRL agent's (``pfrl``) if it holds ``model.pt``, else one error line."""
    if is_directory(path):
        agent_weights(path)
        return "pfrl"
    regular_file_size(path)
    head = read_prefix(path, 16)
    if head.startswith(b"PK\x03\x04"):
        with open_zip(path, str(path), total_cap=None) as archive:
            names = set(archive.namelist())
        if is_sb3_zip(names):
            return "stable-baselines3"
        if any("/code/" in name or name.startswith("code/") for name in names):
            return "torchscript"
        if any(name.endswith("data.pkl") for name in names):
            return "state-dict"
        raise CheckpointError(
            f"{path} is a zip file but neither a Stable-Baselines3 model, a TorchScript module nor a torch.save file"
        )
    length = declared_header_length(head) if len(head) >= 9 else 0
    if length > 0 and head[8:9] == b"{":
        return "understanding-rl-vision" if _has_our_metadata(path, length) else "state-dict"
    if head[:1] == b"\x80":  # a legacy (non-zip) torch.save pickle
        return "state-dict"
    raise CheckpointError(
        f"not a checkpoint we can read (unrecognised content): {path}; we read our "
        ".safetensors, Stable-Baselines3 .zip, torch.save state dicts (CleanRL, PFRL's model.pt) and TorchScript"
    )


def weights_file(path: str | os.PathLike[str]) -> Path:
    """The file whose bytes are the agent (a PFRL agent directory's ``model.pt``): what a cache
    digest of the checkpoint reads."""
    path = Path(path)
    return agent_weights(path) if is_directory(path) else path


def checkpoint_identity(path: str | os.PathLike[str]) -> str:
    """The sha256 that names an agent file: the bytes of its weights, and a TorchScript module's
    metadata file too (its settings are part of the agent). The cache keys products by it, and a
    generator of states (:mod:`...states`) records it so that it is never used with another agent."""
    path = Path(path)
    if sniff_format(path) == "torchscript":
        from .torchscript import metadata_path

        sidecar = metadata_path(path)
        if sidecar is not None:
            return file_digest(path) + file_digest(sidecar)
    return file_digest(weights_file(path))


def _has_our_metadata(path: Path, length: int) -> bool:
    """Whether the safetensors header names our format; a header we cannot parse counts as ours,
    so that the native reader reports what is wrong with it precisely."""
    if length > MAX_HEADER_BYTES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(8)
            header = load_json(handle.read(length), str(path), MAX_HEADER_BYTES)
    except (OSError, CheckpointError):
        return True
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``'d or safetensors state dict, without unpickling code."""
    size = regular_file_size(path)
    state: object
    if read_prefix(path, 9)[8:9] == b"{":
        from safetensors.torch import load_file

        read_header(path, size, "state dict")  # sizes and offsets checked before the file is mapped
        try:
            state = load_file(path, device="cpu")
        except Exception as exc:  # safetensors' own error: keep it to one line
            raise CheckpointError(f"cannot read {path} as a safetensors state dict: {first_line(exc)}") from None
    else:
        state = load_torch(path, str(path), f"cannot read {path} as a state dict without unpickling code")
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
            format=kind,
            path=path,
            recognised=found,
            observation_shape=_hwc(sb3.observation_shape, found.in_channels),
            gamma=sb3.gamma,
            lam=sb3.gae_lambda,
            preprocessing=Preprocessing(scale=1 / 255 if sb3.normalize_images else 1.0),
            details={"policy": sb3.policy_class, "stable_baselines3_version": sb3.version},
        )
    if kind == "torchscript":
        from .torchscript import read_torchscript

        return read_torchscript(path)
    if kind == "pfrl":
        weights = agent_weights(path)
        return pfrl_foreign(path, recognise(_load_state_dict(weights), str(weights), PFRL_LAYOUTS))
    if kind == "state-dict":
        found = recognise(_load_state_dict(path), str(path), KNOWN_LAYOUTS)
        return pfrl_foreign(path, found) if is_pfrl(found) else Foreign(format=kind, path=path, recognised=found)
    raise CheckpointError(f"{path} is an understanding-rl-vision checkpoint; load it with load_checkpoint")


def environment(foreign: Foreign, env: str | EnvSpec, frame_stack: int = 0) -> EnvSpec:
    """The spec for ``env``, with the Atari frame stack and screen size the network implies."""
    name = env or foreign.env
    if not name:
        raise UserError(
            f"{foreign.path.name} ({foreign.format}) does not record its environment; "
            "name it with --env (e.g. --env ALE/Breakout-v5 or --env coinrun)"
        )
    spec = parse_env_id(name) if isinstance(name, str) else name
    found = foreign.recognised
    if isinstance(spec, AtariSpec):
        channels = found.in_channels if found else (foreign.observation_shape or (0, 0, spec.frame_stack))[2]
        if frame_stack and channels and frame_stack != channels:
            raise UserError(
                f"--frame-stack {frame_stack} does not fit the network, whose first layer takes "
                f"{channels} stacked frames"
            )
        size = foreign.observation_shape[0] if foreign.observation_shape else (found.input_size[0] if found else 84)
        spec = dataclasses.replace(spec, frame_stack=frame_stack or channels or spec.frame_stack, screen_size=size)
    elif frame_stack:
        raise UserError(f"--frame-stack applies to Atari games, not {spec.id}")
    if isinstance(spec, MarioSpec) and found is not None:
        spec = _mario_fit(spec, found.num_actions, found.in_channels, buttons_given=not isinstance(name, str))
    return spec


def _mario_fit(spec: MarioSpec, num_actions: int, channels: int, buttons_given: bool) -> MarioSpec:
    """A Mario network says its action set by its number of outputs (5, 7 or 12), and its frame
    stack by its first layer's input channels."""
    chosen = spec.action_set if buttons_given else MARIO_ACTION_COUNTS.get(num_actions)
    if chosen is None:
        sizes = ", ".join(f"{name} {count}" for count, name in MARIO_ACTION_COUNTS.items())
        raise UserError(f"the network has {num_actions} actions; Super Mario Bros' action sets have {sizes}")
    return dataclasses.replace(spec, action_set=chosen, frame_stack=channels or spec.frame_stack)


def complete(foreign: Foreign, spec: EnvSpec, device: str | torch.device = "cpu") -> Agent:
    """Build the agent for ``spec``: the environment gives the observation shape and action names."""
    from ...envs import make_vec_env

    with make_vec_env(spec, num_envs=1, seed=0) as env:
        shape, names = tuple(env.observation_shape), tuple(env.action_names)
    found = foreign.recognised
    common = {
        "observation_shape": shape,
        "action_names": names,
        "env_spec": spec,
        "preprocessing": foreign.preprocessing,
        "gamma": DEFAULT_GAMMA if foreign.gamma is None else foreign.gamma,
        "lam": DEFAULT_LAMBDA if foreign.lam is None else foreign.lam,
    }
    if found is None:  # an opaque TorchScript module
        from .torchscript import opaque_agent

        return opaque_agent(foreign, device=device, **common)
    if found.in_channels != shape[2]:
        raise UserError(
            f"{foreign.path.name} takes {found.in_channels}-channel observations but {spec.id} yields {shape} (H, W, C)"
        )
    if found.num_actions != len(names):
        raise UserError(
            f"{foreign.path.name} has {found.num_actions} actions but {spec.id} has {len(names)}; "
            "is this the environment it was trained on?"
        )
    found_shapes = {name: tuple(tensor.shape) for name, tensor in found.state_dict.items()}
    model = planned_model(
        found.architecture,
        shape,
        len(names),
        found_shapes,
        str(foreign.path),
        f"{foreign.path.name} does not fit {spec.id}'s observations {shape}",
    )
    model.load_state_dict(float32_weights(found.state_dict, str(foreign.path)), strict=True)
    if foreign.scripted is not None:
        from .torchscript import opaque_agent, rebuilt_matches

        if not rebuilt_matches(foreign, model, cast("tuple[int, int, int]", shape)):  # an env's (H, W, C)
            return opaque_agent(foreign, device=device, **common)
        common["preprocessing"] = Preprocessing()  # what our rebuilt module expects
    model.to(device).eval()
    head = found.architecture.kwargs.get("head", "actor-critic")
    outputs = "q_values" if head == "q" else "logits"
    return Agent(model=model, architecture=found.architecture, action_outputs=outputs, **common)  # type: ignore[arg-type]


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
