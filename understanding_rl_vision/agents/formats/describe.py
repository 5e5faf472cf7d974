"""What ``understanding-rl-vision inspect`` reports about a checkpoint, as plain JSON values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...attribution.hooks import capture
from ...envs import spec_to_dict
from ...errors import UserError
from ..architectures import build_model
from ..base import Agent
from ..checkpoint import load_checkpoint
from . import environment, read_foreign, sniff_format


def layer_shapes(agent: Agent) -> list[dict[str, Any]]:
    """Every named module with its output shape (C, H, W) or (D,) for one observation."""
    names = list(agent.named_layers())
    example = torch.zeros((1, *agent.observation_shape), dtype=torch.uint8)
    with capture(agent.model, names) as captured, torch.no_grad():
        agent(example.numpy())
    return [
        {"name": name, "type": type(module).__name__,
         "shape": list(captured[name].shape[1:]) if isinstance(captured.get(name), torch.Tensor) else None}
        for name, module in agent.named_layers().items()
    ]  # fmt: skip


def _agent_summary(agent: Agent) -> dict[str, Any]:
    return {
        "architecture": None if agent.architecture is None else
        {"name": agent.architecture.name, "kwargs": agent.architecture.kwargs},
        "observation_shape": list(agent.observation_shape),
        "preprocessing": {"scale": agent.preprocessing.scale, "layout": agent.preprocessing.layout},
        "action_outputs": agent.action_outputs,
        "action_names": list(agent.action_names),
        "env": None if agent.env_spec is None else spec_to_dict(agent.env_spec),
        "gamma": agent.gamma,
        "lam": agent.lam,
        "layers": layer_shapes(agent),
    }  # fmt: skip


def describe(path: Path, *, env: str = "", frame_stack: int = 0) -> dict[str, Any]:
    kind = sniff_format(path)
    if kind == "understanding-rl-vision":
        return {"path": str(path), "format": kind, **_agent_summary(load_checkpoint(path))}
    foreign = read_foreign(path)
    found = foreign.recognised
    report: dict[str, Any] = {
        "path": str(path),
        "format": foreign.format,
        "layout": found.layout if found else "opaque TorchScript module (only the input can be explained)",
        **foreign.details,
    }
    if found is not None:
        report["renamed"] = found.renamed
    if env or foreign.env:
        from . import complete

        return {**report, **_agent_summary(complete(foreign, environment(foreign, env, frame_stack)))}
    # No environment: what the weights alone say; names and the env need --env.
    report["env"] = None
    report["note"] = "the file records no environment: pass --env for action names and a full check"
    if found is not None:
        h, w = foreign.observation_shape[:2] if foreign.observation_shape else found.input_size
        shape = (h, w, found.in_channels)
        try:
            model = build_model(found.architecture, shape, found.num_actions)
        except UserError:
            return report
        model.load_state_dict(found.state_dict)
        agent = Agent(model=model, observation_shape=shape, action_names=tuple(f"action {i}" for i in range(found.num_actions)),
                      preprocessing=foreign.preprocessing, architecture=found.architecture,
                      action_outputs="q_values" if found.architecture.kwargs.get("head") == "q" else "logits")  # fmt: skip
        report |= {k: v for k, v in _agent_summary(agent).items() if k not in ("env", "gamma", "lam")}
        report["action_names"] = None
        report["num_actions"] = found.num_actions
    return report
