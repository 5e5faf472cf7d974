"""Your own agent, in Python: say how to get the logits and the value, and which module to hook.

    agent = custom_agent(
        my_net,                                   # an nn.Module: its submodules are the layers
        features=lambda x: my_net.trunk(x),       # optional: shared work, run once per batch
        logits=lambda h: my_net.pi(h),            # -> (N, A)
        value=lambda h: my_net.v(h),              # -> (N,) or (N, 1)
        env="coinrun",                            # observation shape and action names from here
    )
    rl_clarity.run(agent=agent, output_dir="out")

``features`` (default: the module itself) gets the preprocessed input, float (N, C, H, W) in
[0, 1] unless ``preprocessing`` says otherwise; ``logits`` and ``value`` get its output. Running
the shared part once matters: each layer is hooked, and a hook must fire once per forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..envs import EnvSpec, make_vec_env, parse_env_id
from ..errors import UserError
from .base import DEFAULT_GAMMA, DEFAULT_LAMBDA, Agent, Preprocessing


def custom_agent(
    module: nn.Module,
    *,
    logits: Callable[[object], torch.Tensor],
    value: Callable[[object], torch.Tensor],
    env: str | EnvSpec,
    features: Callable[[torch.Tensor], object] | None = None,
    preprocessing: Preprocessing = Preprocessing(),  # frozen: one shared default is safe
    action_outputs: str = "logits",
    action_names: Sequence[str] | None = None,
    gamma: float = DEFAULT_GAMMA,
    lam: float = DEFAULT_LAMBDA,
) -> Agent:
    """An :class:`Agent` around any module. ``action_outputs="q_values"`` for a Q-network (then
    ``value`` is usually ``lambda q: q.max(-1).values``). The environment supplies the
    observation shape and, unless given, the action names; both are checked on one batch here."""
    if not isinstance(module, nn.Module):
        raise UserError(f"custom_agent needs a torch.nn.Module to hook, got {type(module).__name__}")
    spec = parse_env_id(env) if isinstance(env, str) else env
    with make_vec_env(spec, num_envs=1, seed=0) as vec:
        shape, names = tuple(vec.observation_shape), tuple(vec.action_names)
        first = vec.reset().obs
    if action_names is not None:
        if len(action_names) != len(names):
            raise UserError(f"{len(action_names)} action names given, but {spec.id} has {len(names)} actions")
        names = tuple(str(n) for n in action_names)
    trunk = features if features is not None else module

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = trunk(x)
        return logits(hidden), value(hidden).reshape(-1)

    agent = Agent(
        model=module,
        observation_shape=shape,  # type: ignore[arg-type]
        action_names=names,
        preprocessing=preprocessing,
        gamma=gamma,
        lam=lam,
        env_spec=spec,
        action_outputs=action_outputs,
        forward=forward,
    )
    _check(agent, first)
    return agent


def _check(agent: Agent, obs: object) -> None:
    """One forward pass on a real observation: shapes wrong here would fail deep in a run."""
    try:
        with torch.no_grad():
            out = agent(obs)  # type: ignore[arg-type]
    except UserError:
        raise
    except Exception as exc:  # the user's functions may raise anything
        raise UserError(
            f"the custom agent failed on an observation of shape {tuple(obs.shape)}: "  # type: ignore[attr-defined]
            f"{type(exc).__name__}: {exc}"
        ) from None
    n = len(obs)  # type: ignore[arg-type]
    if tuple(out.logits.shape) != (n, agent.num_actions):
        raise UserError(f"logits must have shape (N, {agent.num_actions}); got {tuple(out.logits.shape)}")
    if tuple(out.value.shape) != (n,):
        raise UserError(f"value must have one number per observation; got shape {tuple(out.value.shape)}")
