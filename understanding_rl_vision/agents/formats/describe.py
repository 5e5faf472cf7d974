"""What ``understanding-rl-vision inspect`` reports about a checkpoint, as plain JSON values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ...attribution.hooks import capture
from ...envs import spec_to_dict
from ...errors import UserError, first_line
from ..attention import attention_layer
from ..base import Agent, Preprocessing
from ..checkpoint import load_checkpoint
from ..rebuild import MisfitError, float32_weights, planned_model
from . import Foreign, environment, read_foreign, sniff_format


def layer_shapes(agent: Agent) -> list[dict[str, Any]]:
    """Every named module with its output shape (C, H, W) or (D,) for one observation."""
    names = list(agent.named_layers())
    example = torch.zeros((1, *agent.observation_shape), dtype=torch.uint8)
    with capture(agent.model, names) as captured, torch.no_grad():
        try:
            agent(example.numpy())
        except UserError:
            raise
        except Exception as exc:  # a TorchScript module run as it is may raise anything
            raise UserError(
                f"the model fails on an observation of shape {agent.observation_shape} (H, W, C): {first_line(exc)}"
            ) from None
    return [
        {
            "name": name,
            "type": type(module).__name__,
            "shape": list(captured[name].shape[1:]) if isinstance(captured.get(name), torch.Tensor) else None,
        }
        for name, module in agent.named_layers().items()
    ]


def _agent_summary(agent: Agent) -> dict[str, Any]:
    return {
        "architecture": None
        if agent.architecture is None
        else {"name": agent.architecture.name, "kwargs": agent.architecture.kwargs},
        "observation_shape": list(agent.observation_shape),
        "preprocessing": {"scale": agent.preprocessing.scale, "layout": agent.preprocessing.layout},
        "action_outputs": agent.action_outputs,
        "action_names": list(agent.action_names),
        "env": None if agent.env_spec is None else spec_to_dict(agent.env_spec),
        "gamma": agent.gamma,
        "lam": agent.lam,
        "layers": layer_shapes(agent),
        **_recurrent_summary(agent),
        **_attention_summary(agent),
    }


def _attention_summary(agent: Agent) -> dict[str, Any]:
    """An attention agent's attention layer and the layer after it (see :mod:`..attention`)."""
    layer = attention_layer(agent.model)
    if layer is None:
        return {}
    return {"attention": {"layer": layer, "attended": getattr(agent.model, "attended_layer", None)}}


def _recurrent_summary(agent: Agent) -> dict[str, Any]:
    """A recurrent agent's state: its size and, where the model names them, its parts in order
    (``h_actor, c_actor, h_critic, c_critic`` for separate actor and critic LSTMs)."""
    if not agent.recurrent:
        return {}
    parts = getattr(agent.model, "state_parts", None)
    summary: dict[str, Any] = {"state_size": agent.state_size}
    if parts is not None:
        summary["state_parts"] = [{"name": name, "size": size} for name, size in parts]
    critic = getattr(agent.model, "critic_kind", None)
    if critic == "lstm":
        summary["note"] = "separate actor and critic LSTMs (lstm, lstm_critic), each with its own state"
    elif critic is not None:
        summary["note"] = "one LSTM (lstm)" + (", shared by the critic" if critic == "shared" else "; a linear critic")
    return {"recurrent": summary}


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
    try:
        agent = weights_agent(foreign)
    except MisfitError as exc:
        if foreign.observation_shape is not None or exc.names != {"fc.weight"}:
            raise
        # only the dense layer misfits: the input size guessed from it is wrong (non-square frames)
        report["note"] = f"{exc}; pass --env to check the weights against real observations"
        return report
    if agent is not None:
        report |= {k: v for k, v in _agent_summary(agent).items() if k not in ("env", "gamma", "lam")}
        report["action_names"] = None
        report["num_actions"] = agent.num_actions
    return report


def weights_agent(foreign: Foreign) -> Agent | None:
    """The agent the weights alone imply, with placeholder action names and the input size the
    file records or its dense layer implies; None for an opaque TorchScript module. (A rebuilt
    TorchScript module takes our default input, as :func:`complete` makes it.)"""
    found = foreign.recognised
    if found is None:
        return None
    h, w = foreign.observation_shape[:2] if foreign.observation_shape else found.input_size
    shape = (h, w, found.in_channels)
    found_shapes = {name: tuple(tensor.shape) for name, tensor in found.state_dict.items()}
    model = planned_model(
        found.architecture,
        shape,
        found.num_actions,
        found_shapes,
        str(foreign.path),
        f"the weights in {foreign.path} do not fit one {found.architecture.name!r} network "
        f"on {shape} (H, W, C) observations",
    )
    model.load_state_dict(float32_weights(found.state_dict, str(foreign.path)), strict=True)
    model.eval()
    return Agent(
        model=model,
        observation_shape=shape,
        action_names=tuple(f"action {i}" for i in range(found.num_actions)),
        preprocessing=Preprocessing() if foreign.scripted is not None else foreign.preprocessing,
        architecture=found.architecture,
        action_outputs="q_values" if found.architecture.kwargs.get("head") == "q" else "logits",
    )


def describe_file(path: str | os.PathLike[str], *, env: str = "", frame_stack: int = 0) -> dict[str, Any]:
    """What ``inspect`` prints: format, architecture, layers with shapes, actions, environment."""
    return describe(Path(path), env=env, frame_stack=frame_stack)
