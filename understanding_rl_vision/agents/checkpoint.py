"""The native checkpoint format: one ``.safetensors`` file, never a pickle.

Weights are plain tensors; everything needed to rebuild the agent (architecture, observation
shape, action names, environment, GAE settings) is a JSON string in the safetensors metadata,
so a checkpoint can be inspected without loading torch and can never run code when opened.
Every way a file can be wrong becomes a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import __version__
from ..common.files import atomic_path
from ..envs.spec import EnvSpec, spec_from_dict, spec_to_dict
from ..errors import CheckpointError, UserError, first_line
from .base import Agent, ArchitectureSpec, Preprocessing
from .edits import FeatureEdit, apply_edits, check_edits, known_channels, model_edits
from .limits import (
    check_fraction,
    check_num_actions,
    check_observation_shape,
    check_scale,
    is_number,
    load_json,
)
from .rebuild import float32_weights, planned_model
from .safetensors_header import Header, read_header, read_prefix, regular_file_size

FORMAT = "understanding-rl-vision"
FORMAT_VERSION = 1
_BYO_HINT = "see the README 'Bring your own agent'"
_REQUIRED = ("architecture", "observation_shape", "action_names", "gamma", "lam")
MAX_EDITS = 1024
"""Feature edits a checkpoint may carry (each is one direction of one layer)."""
MAX_EDIT_CHANNELS = 1 << 16
"""The longest edit direction read: more channels than any layer we explain."""


def save_checkpoint(agent: Agent, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``agent`` to ``path`` atomically: a crash leaves the old file or none, never half.

    ``extra`` is free JSON (training step counts, returns...) returned under ``"extra"`` by
    :func:`read_checkpoint_metadata`.
    """
    if agent.architecture is None:
        raise UserError(
            "only agents with a built-in architecture can be saved as checkpoints; "
            f"a custom model is rebuilt by your own code ({_BYO_HINT})"
        )
    config: dict[str, Any] = {
        "architecture": {"name": agent.architecture.name, "kwargs": agent.architecture.kwargs},
        "observation_shape": list(agent.observation_shape),
        "action_names": list(agent.action_names),
        "env_spec": None if agent.env_spec is None else spec_to_dict(agent.env_spec),
        "gamma": agent.gamma,
        "lam": agent.lam,
        "preprocessing": {"scale": agent.preprocessing.scale, "layout": agent.preprocessing.layout},
        "library_version": __version__,
        "extra": dict(extra or {}),
    }
    edits = model_edits(agent.model)
    if edits:  # absent when none: an unedited checkpoint keeps its bytes
        config["edits"] = [edit.to_dict() for edit in edits]
    try:
        config_json = json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"checkpoint metadata must be JSON values: {exc}") from None
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": config_json}
    tensors = _plain_tensors(agent.model.state_dict())

    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot save a checkpoint over a directory: {path}")
    with atomic_path(path) as tmp_name:
        save_file(tensors, tmp_name, metadata=metadata)
    return path


def _plain_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors with no shared storage, which safetensors requires
    (tied weights are stored twice and re-tied by ``load_state_dict`` copying into them)."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen and tensor.numel() > 0:
            tensor = tensor.clone()
        seen.add(pointer)
        tensors[name] = tensor
    return tensors


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's configuration (plus ``format_version``), read without loading weights."""
    return _read_header(Path(path))[1]


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Agent:
    """Rebuild the saved agent, in eval mode, on ``device``. Nothing is allocated before the
    metadata and the tensor index agree with each other and with the caps in ``limits``."""
    path = Path(path)
    header, config = _read_header(path)
    arch = config["architecture"]
    spec = ArchitectureSpec(arch["name"], dict(arch.get("kwargs") or {}))
    shape = tuple(config["observation_shape"])
    names = tuple(config["action_names"])
    env_spec = _env_spec(config.get("env_spec"), path)
    found = {name: entry[1] for name, entry in header.tensors.items()}
    misfit = f"checkpoint weights in {path} do not fit the {spec.name!r} architecture"
    model = planned_model(spec, shape, len(names), found, str(path), misfit)
    try:
        tensors = load_file(path, device="cpu")
    except Exception as exc:  # safetensors' own error: keep it to one line
        raise CheckpointError(f"corrupt checkpoint {path}: {first_line(exc)}") from None
    model.load_state_dict(float32_weights(tensors, str(path)), strict=True)
    model.to(device).eval()
    _apply_stored_edits(model, config.get("edits") or [], path)
    stored = config.get("preprocessing") or {}
    try:
        preprocessing = Preprocessing(
            float(stored.get("scale", Preprocessing.scale)), str(stored.get("layout", Preprocessing.layout))
        )
    except UserError as exc:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: preprocessing: {exc}") from None
    agent = Agent(
        model=model,
        observation_shape=shape,
        action_names=names,
        preprocessing=preprocessing,
        gamma=float(config["gamma"]),
        lam=float(config["lam"]),
        env_spec=env_spec,
        architecture=spec,
        action_outputs="q_values" if spec.kwargs.get("head") == "q" else "logits",
    )
    try:
        check_edits(agent)
    except UserError as exc:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: edits: {exc}") from None
    return agent


def _apply_stored_edits(model: torch.nn.Module, stored: list[dict[str, Any]], path: Path) -> None:
    """The saved edits (types already checked by :func:`_check_config`), each refused with the
    problem named where its layer is missing or its direction does not fit the layer."""
    what = f"corrupt checkpoint metadata in {path}: edits"
    modules = dict(model.named_modules())
    edits = []
    for index, item in enumerate(stored):
        layer = item["layer"]
        if layer not in modules or not layer:
            raise CheckpointError(f"{what}[{index}]: no layer {layer!r} in the {type(model).__name__} model")
        channels = known_channels(modules[layer])
        if channels is not None and channels != len(item["direction"]):
            raise CheckpointError(
                f"{what}[{index}]: a direction over {len(item['direction'])} channels for layer {layer}, "
                f"which has {channels}"
            )
        try:
            edits.append(FeatureEdit(layer, tuple(item["direction"]), item.get("name", "")))
        except UserError as exc:
            raise CheckpointError(f"{what}[{index}]: {exc}") from None
    try:
        apply_edits(model, edits)
    except UserError as exc:
        raise CheckpointError(f"{what}: {exc}") from None


def _env_spec(value: Any, path: Path) -> EnvSpec | None:
    """The stored environment, with every field of the type its default has."""
    if value is None:
        return None
    try:
        spec = spec_from_dict(value)
    except UserError as exc:
        raise CheckpointError(f"cannot rebuild the agent in {path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: env_spec: {exc}") from None
    for item in dataclasses.fields(spec):
        default, stored = item.default, getattr(spec, item.name)
        kind = type(default) if isinstance(default, (bool, int, float, str)) else None
        fits = kind is None or (is_number(stored) if kind is float else type(stored) is kind)
        if not fits:
            raise CheckpointError(
                f"corrupt checkpoint metadata in {path}: env_spec {item.name} must be a "
                f"{kind.__name__}, not {stored!r:.40}"  # type: ignore[union-attr]
            )
    return spec


def _check_config(config: dict[str, Any], path: Path) -> None:
    """Every field ``load_checkpoint`` and ``read_checkpoint_metadata``'s callers use, by type and
    range: a hand-edited file fails here with the field named, never later with a traceback."""
    what = f"corrupt checkpoint metadata in {path}"
    arch = config["architecture"]
    if not (
        isinstance(arch, dict) and isinstance(arch.get("name"), str) and isinstance(arch.get("kwargs") or {}, dict)
    ):
        raise CheckpointError(f"{what}: bad 'architecture' entry")
    check_observation_shape(config["observation_shape"], what)
    names = config["action_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{what}: action_names must be a list of strings")
    check_num_actions(len(names), what)
    check_fraction(config["gamma"], "gamma", what)
    check_fraction(config["lam"], "lam", what)
    stored = config.get("preprocessing")
    if stored is not None:
        if not isinstance(stored, dict):
            raise CheckpointError(f"{what}: preprocessing must be an object with scale and layout")
        check_scale(stored.get("scale", Preprocessing.scale), what)
        if not isinstance(stored.get("layout", Preprocessing.layout), str):
            raise CheckpointError(f"{what}: preprocessing layout must be a string")
    if not isinstance(config.get("env_spec"), (dict, type(None))):
        raise CheckpointError(f"{what}: env_spec must be an object or null")
    if not isinstance(config.get("extra", {}), dict):
        raise CheckpointError(f"{what}: extra must be an object")
    _check_edits(config.get("edits", []), what)


def _check_edits(edits: Any, what: str) -> None:
    """The stored edits' types: a list of {layer, direction, name} with finite numbers (whether
    each fits its layer is checked on loading, where the model is known)."""
    if not isinstance(edits, list):
        raise CheckpointError(f"{what}: edits must be a list")
    if len(edits) > MAX_EDITS:
        raise CheckpointError(f"{what}: {len(edits)} edits, over the {MAX_EDITS} this tool loads")
    for index, item in enumerate(edits):
        where = f"{what}: edits[{index}]"
        if not isinstance(item, dict) or set(item) - {"layer", "direction", "name"}:
            raise CheckpointError(f"{where} must be an object with layer, direction and name")
        if not isinstance(item.get("layer"), str) or not isinstance(item.get("name", ""), str):
            raise CheckpointError(f"{where}: layer and name must be strings")
        direction = item.get("direction")
        if not isinstance(direction, list) or not direction or len(direction) > MAX_EDIT_CHANNELS:
            raise CheckpointError(f"{where}: direction must be a list of 1 to {MAX_EDIT_CHANNELS} numbers")
        if not all(is_number(x) for x in direction):
            raise CheckpointError(f"{where}: direction must hold finite numbers only")
        if not any(direction):
            raise CheckpointError(f"{where}: direction is all zeros")


def _is_pickle(prefix: bytes) -> bool:
    """A pickle of protocol 2-5 opens with PROTO (0x80) and the protocol number."""
    return len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5


def _read_header(path: Path) -> tuple[Header, dict[str, Any]]:
    """Parse the safetensors header ourselves, so every failure gets a precise one-line error.

    Returns the checked header (tensor index) and our configuration, every field of which has
    been checked. Nothing here unpickles: pickled files are recognised by their first bytes and
    refused.
    """
    size = regular_file_size(path)
    prefix = read_prefix(path, 9)
    if prefix[8:9] != b"{":
        if prefix.startswith(b"PK\x03\x04") or _is_pickle(prefix):
            raise CheckpointError(
                f"{path} is a pickled PyTorch file (torch.save); we never unpickle checkpoints "
                f"because unpickling can run arbitrary code: convert it or {_BYO_HINT}"
            )
        raise CheckpointError(f"not a safetensors file (unrecognised content): {path}")
    header = read_header(path, size, "checkpoint")
    meta = header.metadata
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"not an understanding-rl-vision checkpoint (a safetensors file without our "
            f"metadata): {path}; to use weights from another library, {_BYO_HINT}"
        )
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: bad format_version") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than the {FORMAT_VERSION} "
            f"this understanding-rl-vision {__version__} reads; upgrade the package"
        )
    if version < 1:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: bad format_version {version}")
    config = load_json(meta.get("config", ""), f"the checkpoint metadata in {path}")
    if not isinstance(config, dict):
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: config is not a JSON object")
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: missing {', '.join(missing)}")
    _check_config(config, path)
    config["format_version"] = version
    return header, config
