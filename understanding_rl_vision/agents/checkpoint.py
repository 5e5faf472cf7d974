"""The native checkpoint format: one ``.safetensors`` file, never a pickle.

Weights are plain tensors; everything needed to rebuild the agent (architecture, observation
shape, action names, environment, GAE settings) is a JSON string in the safetensors metadata,
so a checkpoint can be inspected without loading torch and can never run code when opened.
Every way a file can be wrong becomes a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import __version__
from ..common.files import atomic_path
from ..envs.spec import spec_from_dict, spec_to_dict
from ..errors import CheckpointError, UserError, first_line
from .architectures import build_model
from .base import Agent, ArchitectureSpec, Preprocessing

FORMAT = "understanding-rl-vision"
FORMAT_VERSION = 1
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header
_BYO_HINT = "see the README 'Bring your own agent'"
_REQUIRED = ("architecture", "observation_shape", "action_names", "gamma", "lam")


def save_checkpoint(
    agent: Agent, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``agent`` to ``path`` atomically: a crash leaves the old file or none, never half.

    ``extra`` is free JSON (training step counts, returns...) returned under ``"extra"`` by
    :func:`read_checkpoint_metadata`.
    """
    if agent.architecture is None:
        raise UserError(
            "only agents with a built-in architecture can be saved as checkpoints; "
            f"a custom model is rebuilt by your own code ({_BYO_HINT})"
        )
    config = {
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
    """Rebuild the saved agent, in eval mode, on ``device``."""
    path = Path(path)
    _, config = _read_header(path)
    arch = config["architecture"]
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: bad 'architecture' entry")
    try:
        spec = ArchitectureSpec(arch["name"], dict(arch.get("kwargs") or {}))
        shape = tuple(int(d) for d in config["observation_shape"])
        names = tuple(str(n) for n in config["action_names"])
        env = config.get("env_spec")
        env_spec = None if env is None else spec_from_dict(env)
        model = build_model(spec, shape, len(names))
    except UserError as exc:
        raise CheckpointError(f"cannot rebuild the agent in {path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: {exc}") from None

    try:
        tensors = load_file(path, device="cpu")
    except Exception as exc:  # safetensors' own error: keep it to one line
        raise CheckpointError(f"corrupt checkpoint {path}: {first_line(exc)}") from None
    problem = _state_dict_mismatch(model.state_dict(), tensors)
    if problem:
        raise CheckpointError(
            f"checkpoint weights in {path} do not fit the {spec.name!r} architecture: {problem}"
        )
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    stored = config.get("preprocessing") or {}
    try:
        preprocessing = Preprocessing(float(stored.get("scale", Preprocessing.scale)),
                                      str(stored.get("layout", Preprocessing.layout)))  # fmt: skip
    except (UserError, TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: preprocessing: {exc}") from None
    return Agent(
        model=model,
        observation_shape=shape,  # type: ignore[arg-type]
        action_names=names,
        preprocessing=preprocessing,
        gamma=float(config["gamma"]),
        lam=float(config["lam"]),
        env_spec=env_spec,
        architecture=spec,
        action_outputs="q_values" if spec.kwargs.get("head") == "q" else "logits",
    )


def _state_dict_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """A one-line summary of missing, unexpected and wrongly shaped tensors ('' if none)."""

    def listing(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f", ... ({len(items) - 3} more)" if len(items) > 3 else "")

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)} expected"
        for k in sorted(set(expected) & set(found))
        if found[k].shape != expected[k].shape
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({listing(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} with the wrong shape ({listing(shapes)})")
    return "; ".join(parts)


def _is_pickle(prefix: bytes) -> bool:
    """A pickle of protocol 2-5 opens with PROTO (0x80) and the protocol number."""
    return len(prefix) >= 2 and prefix[0] == 0x80 and 2 <= prefix[1] <= 5


def _read_header(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse the safetensors header ourselves, so every failure gets a precise one-line error.

    Returns the header (tensor index) and our configuration. Nothing here unpickles: pickled
    files are recognised by their first bytes and refused.
    """
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.safetensors"))[:3]
        hint = f"; did you mean {', '.join(str(path / n) for n in inside)}?" if inside else ""
        raise CheckpointError(f"checkpoint path is a directory, not a file: {path}{hint}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            raw = handle.read(min(length, size)) if 0 < length <= _MAX_HEADER else b""
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    looks_safetensors = raw[:1] == b"{"
    if not looks_safetensors:
        if prefix.startswith(b"PK\x03\x04") or _is_pickle(prefix):
            raise CheckpointError(
                f"{path} is a pickled PyTorch file (torch.save); we never unpickle checkpoints "
                f"because unpickling can run arbitrary code: convert it or {_BYO_HINT}"
            )
        raise CheckpointError(f"not a safetensors file (unrecognised content): {path}")
    if 8 + length > size or len(raw) < length:
        raise CheckpointError(f"checkpoint is truncated (header cut short, {size} bytes): {path}")
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"corrupt safetensors header in {path}: {exc}") from None

    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__"
        and isinstance(entry, dict)
        and isinstance(entry.get("data_offsets"), list)
        and len(entry["data_offsets"]) == 2
        and isinstance(entry["data_offsets"][1], int)
    ]
    expected_size = 8 + length + max(ends, default=0)
    if size < expected_size:
        raise CheckpointError(f"checkpoint is truncated ({size} of {expected_size} bytes): {path}")

    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"not an understanding-rl-vision checkpoint (a safetensors file without our "
            f"metadata): {path}; to use weights from another library, {_BYO_HINT}"
        )
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise CheckpointError(
            f"corrupt checkpoint metadata in {path}: bad format_version"
        ) from None
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}, newer than the {FORMAT_VERSION} "
            f"this understanding-rl-vision {__version__} reads; upgrade the package"
        )
    try:
        config = json.loads(meta.get("config", ""))
        if not isinstance(config, dict):
            raise ValueError("config is not a JSON object")
    except ValueError as exc:
        raise CheckpointError(f"corrupt checkpoint metadata in {path}: {exc}") from None
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise CheckpointError(
            f"corrupt checkpoint metadata in {path}: missing {', '.join(missing)}"
        )
    config["format_version"] = version
    return header, config
