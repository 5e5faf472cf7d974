"""TorchScript modules (``torch.jit.save``) that map observations to ``(logits, value)``.

TorchScript runs its submodules in C++, where Python forward hooks never fire, so layers of a
scripted module cannot be explained as they are. When its weights match a layout we know, we
rebuild our own module from them and keep it only if it gives the scripted module's outputs on
a probe batch; otherwise the module runs as it is and only the input is explained.

Settings the module cannot carry sit in a JSON file beside it (``model.pt`` -> ``model.json``
or ``model.pt.json``): ``env``, ``gamma``, ``lam``, ``scale`` (default 1/255), ``layout``
(``NCHW`` default, or ``NHWC`` for modules that permute inside), ``action_outputs``
(``logits`` default, or ``q_values``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError, UserError, first_line
from ..base import ACTION_OUTPUTS, Agent, Preprocessing
from ..limits import MAX_SMALL_ENTRY_BYTES, check_fraction, check_scale, load_json
from .archive import open_zip
from .foreign import Foreign
from .layouts import recognise

METADATA_KEYS = ("env", "gamma", "lam", "scale", "layout", "action_outputs")


def metadata_path(path: Path) -> Path | None:
    for candidate in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        try:
            if candidate.is_file():
                return candidate
        except OSError as exc:  # permission denied on the folder, a name too long
            raise CheckpointError(f"cannot read the TorchScript metadata {candidate}: {exc.strerror or exc}") from None
    return None


def _metadata(path: Path) -> dict[str, Any]:
    found = metadata_path(path)
    if found is None:
        return {}
    try:
        with open(found, "rb") as handle:
            raw = handle.read(MAX_SMALL_ENTRY_BYTES + 1)
    except OSError as exc:
        raise CheckpointError(f"cannot read the TorchScript metadata {found}: {exc.strerror or exc}") from None
    meta = load_json(raw, f"the TorchScript metadata {found}", MAX_SMALL_ENTRY_BYTES)
    if not isinstance(meta, dict):
        raise CheckpointError(f"{found} must hold a JSON object with any of {', '.join(METADATA_KEYS)}")
    unknown = sorted(set(meta) - set(METADATA_KEYS))
    if unknown:
        raise CheckpointError(f"{found}: unknown key(s) {', '.join(unknown)}; known: {', '.join(METADATA_KEYS)}")
    if meta.get("action_outputs", "logits") not in ACTION_OUTPUTS:
        raise CheckpointError(f"{found}: action_outputs must be one of {', '.join(ACTION_OUTPUTS)}")
    for key in ("env", "layout"):
        if not isinstance(meta.get(key, ""), str):
            raise CheckpointError(f"{found}: {key} must be a string")
    for key in ("gamma", "lam"):
        if key in meta:
            check_fraction(meta[key], key, str(found))
    if "scale" in meta:
        check_scale(meta["scale"], str(found))
    return meta


def read_torchscript(path: Path) -> Foreign:
    open_zip(path, f"TorchScript module {path}").close()  # every entry's declared size, before torch reads them
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; reading existing files is our job
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and others; keep it to one line
        raise CheckpointError(f"cannot load the TorchScript module {path}: {first_line(exc)}") from None
    scripted.eval()
    for parameter in scripted.parameters():
        parameter.requires_grad_(False)
    meta = _metadata(path)
    try:
        preprocessing = Preprocessing(scale=float(meta.get("scale", 1 / 255)), layout=meta.get("layout", "NCHW"))
    except UserError as exc:
        raise CheckpointError(f"TorchScript metadata for {path}: {exc}") from None
    try:
        found = recognise(scripted.state_dict(), str(path))
    except CheckpointError:
        found = None
    except Exception as exc:  # a module whose state_dict() itself fails (custom __getstate__ and the like)
        raise CheckpointError(f"cannot read the weights of the TorchScript module {path}: {first_line(exc)}") from None
    if found is not None and meta.get("action_outputs", "logits") != (
        "q_values" if found.architecture.kwargs.get("head") == "q" else "logits"
    ):
        found = None
    return Foreign(
        format="torchscript",
        path=path,
        recognised=found,
        scripted=scripted,
        gamma=float(meta["gamma"]) if "gamma" in meta else None,
        lam=float(meta["lam"]) if "lam" in meta else None,
        preprocessing=preprocessing,
        env=meta.get("env", ""),
        details={"metadata": str(metadata_path(path) or ""), "action_outputs": meta.get("action_outputs", "logits")},
    )


class ScriptedModel(nn.Module):
    """Runs a scripted module as it is. The module is kept out of ``named_modules`` (in a plain
    list), so no layer is offered for hooks that would never fire; only the input is explained."""

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.scripted = [scripted]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.scripted[0](x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise UserError("the TorchScript module must return (logits, value)")
        return out[0], out[1].reshape(-1)

    def _apply(self, fn, recurse=True):
        self.scripted[0]._apply(fn)
        return super()._apply(fn, recurse)


def rebuilt_matches(foreign: Foreign, model: nn.Module, shape: tuple[int, int, int]) -> bool:
    """Whether our rebuilt module gives the scripted module's outputs on a random batch."""
    assert foreign.scripted is not None
    obs = torch.randint(0, 256, (4, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            theirs = foreign.scripted(foreign.preprocessing(obs))
        except Exception:  # the module fails on these observations: it is run, and reported, as it is
            return False
        ours = model(Preprocessing()(obs))
    if not isinstance(theirs, (tuple, list)) or len(theirs) != 2:
        return False
    return all(
        isinstance(a, torch.Tensor)
        and a.numel() == b.numel()
        and torch.allclose(a.reshape(-1).float(), b.reshape(-1).float(), rtol=1e-4, atol=1e-5)
        for a, b in zip(theirs, ours)
    )


def opaque_agent(foreign: Foreign, *, device: str | torch.device, **common: Any) -> Agent:
    """The module run as it is, once it has mapped two observations to logits and values of the
    right shapes: a module that fails here would otherwise fail deep inside a run."""
    assert foreign.scripted is not None
    model = ScriptedModel(foreign.scripted)
    agent = Agent(model=model, action_outputs=foreign.details.get("action_outputs", "logits"), **common)
    obs = torch.zeros((2, *agent.observation_shape), dtype=torch.uint8)
    try:
        with torch.no_grad():
            out = agent(obs)
    except Exception as exc:  # the module's own code may raise anything
        raise CheckpointError(
            f"the TorchScript module {foreign.path} fails on observations of shape "
            f"{tuple(obs.shape)} (N, H, W, C): {first_line(exc)}"
        ) from None
    if tuple(out.logits.shape) != (2, agent.num_actions) or tuple(out.value.shape) != (2,):
        raise CheckpointError(
            f"the TorchScript module {foreign.path} returns logits of shape {tuple(out.logits.shape)} "
            f"and values of shape {tuple(out.value.shape)} for 2 observations; expected "
            f"(2, {agent.num_actions}) and (2,)"
        )
    model.to(device)
    return agent
