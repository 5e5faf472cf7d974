"""A trained generator on disk: ``generator.safetensors`` in its folder, the weights plus a JSON
header (the agent's identity, the observation shape, the settings, how far it trained).

The header names the agent by :func:`~..agents.formats.checkpoint_identity`, the sha256 the cache
also keys by, and :func:`load_generator` refuses any other agent: a generator trained for one agent's
perception and saliency would show another agent states it never learned to make.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..common.files import atomic_path
from ..errors import CheckpointError, UserError, first_line
from .config import GeneratorConfig, make_generator_config
from .model import StateVAE

GENERATOR = "generator.safetensors"
FORMAT = "understanding-rl-vision-generator"
FORMAT_VERSION = 1


def save_generator(
    vae: StateVAE,
    directory: Path,
    agent_identity: str,
    config: GeneratorConfig,
    extra: dict[str, Any],
    name: str = GENERATOR,
) -> Path:
    """Write the generator atomically; ``extra`` is free JSON (epochs trained, held-out PSNR...)."""
    header = {
        "agent": agent_identity,
        "observation_shape": list(vae.shape),
        "config": asdict(config),
        "extra": extra,
    }
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "header": json.dumps(header)}
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in vae.state_dict().items()}
    path = directory / name
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The generator's JSON header, without loading weights."""
    path = generator_file(Path(path))
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= 1 << 20:
                raise ValueError("no safetensors header")
            document = json.loads(handle.read(length))
        metadata = document.get("__metadata__") if isinstance(document, dict) else None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise ValueError("not a generator of states")
        if metadata.get("format_version") != str(FORMAT_VERSION):
            raise ValueError(f"format version {metadata.get('format_version')}, this version reads {FORMAT_VERSION}")
        header = json.loads(metadata["header"])
        if not isinstance(header, dict):
            raise ValueError("its header is not an object")
        return header
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read the generator {path}: {first_line(exc)}") from None


def load_generator(
    path: str | os.PathLike[str], agent_identity: str, device: str | torch.device = "cpu"
) -> tuple[StateVAE, dict[str, Any]]:
    """The generator in ``path`` (its folder or file), in eval mode, and its header; refused unless
    it was trained for the agent named by ``agent_identity``."""
    file = generator_file(Path(path))
    header = read_header(file)
    if header.get("agent") != agent_identity:
        raise UserError(
            f"the generator {file} was trained for another agent (sha256 {str(header.get('agent'))[:12]}, "
            f"this one's is {agent_identity[:12]}); train one for this agent with `states train`"
        )
    try:
        config = make_generator_config(**header["config"])
        vae = StateVAE(tuple(header["observation_shape"]), config.latent_size, config.width)
        vae.load_state_dict(load_file(file, device="cpu"), strict=True)
    except (UserError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"corrupt generator {file}: {first_line(exc)}") from None
    return vae.to(device).eval(), header


def generator_file(path: Path) -> Path:
    """The generator file in a folder (or the file itself)."""
    file = path / GENERATOR if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"no generator at {path}: train one with `understanding-rl-vision states train`")
    return file
