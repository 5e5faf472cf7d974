"""Proximal Policy Optimisation for pixel-based agents, as one loop you can read top to bottom.

The algorithm is baselines' PPO2 as the original used it on Procgen (and as CleanRL's
``ppo_procgen.py`` has it): clipped policy and value losses, GAE, an entropy bonus, per-minibatch
advantage normalisation, and rewards divided by a running std of discounted returns. Without that
scaling the value loss of a game paying 10 per level swamps the policy gradient. The settings
live in :class:`~.config.PPOConfig`, the files a run writes in :mod:`.run_dir`.

A recurrent agent (``--architecture lstm``) carries its state through the rollout, and its
minibatches are whole environments' sequences re-run from the state they started with, as in
CleanRL's ``ppo_atari_lstm.py`` and sb3-contrib's ``RecurrentPPO`` (:func:`replay`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical
from tqdm.auto import tqdm

from ..advantages import gae
from ..agents import Agent, make_agent
from ..agents.attention import attention_entropy, attention_layer, capture_attention
from ..common.device import check_device
from ..common.machine import available_memory, format_bytes
from ..envs import EnvSpec, make_vec_env
from ..envs.gymnasium_env import MAX_SEED
from ..errors import UserError
from .config import PPOConfig
from .run_dir import (
    CHECKPOINT,
    Progress,
    RunLog,
    checkpoint_update,
    load_state,
    refuse_existing_run,
    save_run,
)


class RewardScaler:
    """Divides rewards by the running std of each env's discounted return, then clips them.

    The statistic of baselines' ``VecNormalize(ob=False)``: the scale adapts to the game, so one
    set of loss weights fits games whose rewards differ by orders of magnitude.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float, epsilon: float = 1e-8):
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.returns = np.zeros(num_envs)  # restarts with the envs, so it is not saved
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + reward
        self._update(self.returns)
        scaled = np.clip(reward / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)
        self.returns[done] = 0.0
        return scaled.astype(np.float32)

    def _update(self, batch: np.ndarray) -> None:
        """Merge the batch's mean and variance into the running ones (Chan et al.)."""
        batch_mean, batch_var, batch_count = float(batch.mean()), float(batch.var()), batch.size
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.mean += delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count
        self.var = (m2 + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


@dataclass
class Learner:
    """What an update changes and a resumed run restores."""

    agent: Agent
    optimizer: torch.optim.Optimizer
    scaler: RewardScaler
    generator: torch.Generator  # samples actions and shuffles minibatches

    def state_dict(self) -> dict[str, Any]:
        model = self.agent.model.state_dict()
        return {
            "model": {name: tensor.detach().cpu().contiguous() for name, tensor in model.items()},
            "optimizer": self.optimizer.state_dict(),
            "reward_scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # moves its tensors to the params'
        self.scaler.load_state_dict(state["reward_scaler"])
        self.generator.set_state(state["generator"])


def make_learner(
    config: PPOConfig,
    env_spec: EnvSpec,
    observation_shape: tuple[int, int, int],
    action_names: tuple[str, ...],
    state: Mapping[str, Any] | None = None,
) -> Learner:
    """A freshly seeded learner on ``config.device``, or one restored from a saved ``state``."""
    seeds = _seeds(config)
    agent = make_agent(
        config.architecture,
        env_spec,
        observation_shape,
        action_names,
        gamma=config.gamma,
        lam=config.gae_lambda,
        seed=seeds["agent"],
        **config.architecture_options,
    )
    device = check_device(config.device)
    # Observations arrive NHWC, so channels-last weights keep convolutions in one layout
    # (about 10% faster on CPU, more on CUDA tensor cores).
    agent.model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(agent.model.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    scaler = RewardScaler(config.num_envs, config.gamma, config.reward_clip)
    learner = Learner(agent, optimizer, scaler, torch.Generator().manual_seed(seeds["sampling"]))
    if state is not None:
        learner.load_state_dict(state)
        for group in optimizer.param_groups:  # a resumed run may change the step size (RESUMABLE_CHANGES)
            group["lr"] = config.learning_rate
    return learner


def _seeds(config: PPOConfig) -> dict[str, int]:
    """Independent seeds for the weights, the environments and action sampling."""
    agent, env, sampling = np.random.SeedSequence(config.seed).generate_state(3)
    return {"agent": int(agent), "env": int(env), "sampling": int(sampling)}


FRAME_BYTES = 84 * 84 * 4
"""An upper bound of one stored observation: Atari's four stacked 84x84 frames (Procgen's is 64x64x3)."""
STEP_BYTES = 64
"""Per stored step besides the frame: action, log-probability, value, reward, done, advantage, return."""
ENV_BYTES = 2_000_000
"""One environment's own memory (a Procgen game or an emulator)."""


def check_memory(num_envs: int, num_steps: int, what: str = "training") -> None:
    """Refuse, before any environment exists, ``num_envs`` environments that store ``num_steps``
    steps each and cannot fit in memory (else environments are made until the machine runs out)."""
    per_env = num_steps * (FRAME_BYTES + STEP_BYTES) + ENV_BYTES
    available = available_memory()
    if available is None or num_envs * per_env <= available:
        return
    steps = (available // num_envs - ENV_BYTES) // (FRAME_BYTES + STEP_BYTES)
    if steps >= 1:
        fits = f"lower --num-steps (at most ~{steps:,} fit) or --num-envs"
    else:
        fits = f"lower --num-envs (at most ~{available // per_env:,} fit)" if per_env <= available else "lower both"
    raise UserError(
        f"{what} with {num_envs:,} envs x {num_steps:,} steps needs about "
        f"{format_bytes(num_envs * per_env)} of memory but {format_bytes(available)} is available; {fits}"
    )


def train(
    config: PPOConfig,
    save_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train an agent with PPO; returns the path of the checkpoint written in ``save_dir``.

    With ``resume``, continue the run saved there: weights, optimiser, reward scaling, RNG and
    step count as saved, the log appended. The environments restart on a seed derived from the
    update number (and a recurrent agent's state at zeros), so a resumed run is a faithful
    continuation, not a bit-exact replay.
    """
    save_dir = Path(save_dir)
    if save_dir.exists() and not save_dir.is_dir():
        raise UserError(f"--save-dir {save_dir} exists and is not a folder")
    check_memory(config.num_envs, config.num_steps)
    device = check_device(config.device)
    env_spec = config.env_spec()
    if resume:
        state, so_far = load_state(save_dir, config)
    else:
        refuse_existing_run(save_dir)
        state, so_far = None, Progress()
    save_dir.mkdir(parents=True, exist_ok=True)
    E, T = config.num_envs, config.num_steps
    env_seed = (_seeds(config)["env"] + so_far.update) % (MAX_SEED - E)  # resumed: new levels

    with (
        RunLog(save_dir, resume, so_far.update) as log,
        tqdm(
            total=config.num_updates * config.batch_size,
            initial=so_far.global_step,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not progress,
        ) as bar,
        make_vec_env(env_spec, num_envs=E, seed=env_seed) as env,
    ):
        shape = env.observation_shape
        learner = make_learner(config, env_spec, shape, env.action_names, state)
        agent, generator = learner.agent, learner.generator
        if resume and checkpoint_update(save_dir) != so_far.update:  # the last save was cut short
            save_run(save_dir, config, agent, learner.state_dict(), so_far)

        # Rollout storage, indexed (env, step) like the rest of the package.
        observations = torch.empty((E, T, *shape), dtype=torch.uint8)
        actions = torch.empty((E, T), dtype=torch.long)
        logprobs = torch.empty((E, T))
        values = np.empty((E, T), np.float32)
        rewards = np.empty((E, T), np.float32)
        dones = np.empty((E, T), bool)
        firsts = np.empty((E, T), bool)

        step = env.reset()
        # A recurrent agent's state, carried from step to step ((E, 0) for a feed-forward agent).
        # Checkpoints hold weights only and a resumed run restarts the envs, so it starts at zeros.
        agent_state = agent.initial_state(E)
        while so_far.update < config.num_updates:
            started = time.perf_counter()

            # 1. Rollout: T steps of the current policy in each of the E envs.
            agent.model.eval()
            start_states = agent.reset_state(agent_state, step.first)  # what the update re-runs from
            for t in range(T):
                observations[:, t] = torch.from_numpy(step.obs)
                firsts[:, t] = step.first  # observation t starts an episode
                agent_state = agent.reset_state(agent_state, step.first)  # zeros where an episode starts
                with _autocast(device, config.bf16):
                    action, logits, values[:, t], agent_state = agent.act(step.obs, generator, agent_state)
                actions[:, t] = torch.from_numpy(action)
                policy = Categorical(logits=torch.from_numpy(logits))
                logprobs[:, t] = policy.log_prob(actions[:, t])
                step = env.step(action)
                reward = step.reward
                if config.normalize_rewards:
                    reward = learner.scaler(reward, step.first)
                rewards[:, t] = reward
                dones[:, t] = step.first  # action t ended the episode
                so_far.recent.extend(step.episodes)
                bar.update(E)
            with torch.no_grad(), _autocast(device, config.bf16):
                last_state = agent.reset_state(agent_state, step.first)
                last_values = agent(step.obs, last_state).value.float().cpu().numpy()

            # 2. Advantages (GAE), bootstrapped from the value of the observation after the rollout.
            advantages = gae(rewards, values, dones, config.gamma, config.gae_lambda, last_values)
            batch = {
                "obs": observations,
                "actions": actions,
                "logprobs": logprobs,
                "values": torch.from_numpy(values),
                "advantages": torch.from_numpy(advantages),
                "returns": torch.from_numpy(advantages + values),
            }

            # 3. Optimise the clipped objective for a few epochs of shuffled minibatches: of single
            # steps, or for a recurrent agent of whole envs' sequences with the state each started from.
            agent.model.train()
            if agent.recurrent:
                sequences = {**batch, "firsts": torch.from_numpy(firsts), "states": torch.from_numpy(start_states)}
                stats = _recurrent_ppo_update(learner, sequences, config, device)
            else:
                stats = _ppo_update(learner, {k: v.flatten(0, 1) for k, v in batch.items()}, config, device)

            # 4. Count, log, save.
            seconds = time.perf_counter() - started
            so_far.update += 1
            so_far.global_step += config.batch_size
            so_far.seconds += seconds
            log.write(so_far, config.batch_size / seconds, stats)
            mean_return = f"{so_far.mean_return():.2f}" if so_far.recent else "-"
            bar.set_postfix(ret=mean_return, refresh=False)
            if so_far.update % config.save_every == 0 or so_far.update == config.num_updates:
                save_run(save_dir, config, agent, learner.state_dict(), so_far)
    return save_dir / CHECKPOINT


def _ppo_update(
    learner: Learner, batch: dict[str, torch.Tensor], config: PPOConfig, device: torch.device
) -> dict[str, float]:
    """PPO2's update: a few epochs of shuffled minibatches, one optimiser step each.

    A minibatch is fed through the model in chunks whose weighted gradients add up to the
    minibatch's; returns each loss statistic averaged over all minibatches.
    """
    agent, optimizer = learner.agent, learner.optimizer
    size, chunk_size = config.minibatch_size, config.chunk_size_on(device)
    sums: dict[str, torch.Tensor] = {}
    for _ in range(config.update_epochs):
        order = torch.randperm(config.batch_size, generator=learner.generator)
        for start in range(0, config.batch_size, size):
            minibatch = {k: v[order[start : start + size]] for k, v in batch.items()}
            if config.normalize_advantages:  # over the whole minibatch, before it is chunked
                adv = minibatch["advantages"]
                minibatch["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
            optimizer.zero_grad(set_to_none=True)
            for parts in zip(*(v.split(chunk_size) for v in minibatch.values())):
                chunk = {k: v.to(device) for k, v in zip(minibatch, parts)}
                weight = len(chunk["actions"]) / size
                with _autocast(device, config.bf16), _attention(agent.model) as attention:
                    out = agent(chunk["obs"])
                losses = _ppo_losses(out.logits, out.value, chunk, config)
                if attention is not None:  # seed 002's penalty: sharper maps for a lower loss
                    losses["attention_entropy"] = attention_entropy(attention[-1]).mean()
                    losses["loss"] = losses["loss"] + config.attention_entropy_coef * losses["attention_entropy"]
                (weight * losses["loss"]).backward()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0) + weight * value.detach()
            nn.utils.clip_grad_norm_(agent.model.parameters(), config.max_grad_norm)
            optimizer.step()
    count = config.update_epochs * config.num_minibatches
    return {name: float(total) / count for name, total in sums.items() if name != "loss"}


def _recurrent_ppo_update(
    learner: Learner, batch: dict[str, torch.Tensor], config: PPOConfig, device: torch.device
) -> dict[str, float]:
    """PPO for a recurrent agent: each minibatch is ``num_envs / num_minibatches`` whole envs.

    ``batch`` is indexed by env: (E, T, ...) per step, plus ``firsts`` (E, T) and ``states`` (E, S),
    the state each env entered the rollout with. Every minibatch is re-run through time by
    :func:`replay` with the current weights, so the loss sees the states those weights make and its
    gradient flows back through the whole sequence; one pass and one optimiser step per minibatch.
    """
    agent, optimizer = learner.agent, learner.optimizer
    envs_per_minibatch = config.num_envs // config.num_minibatches
    sums: dict[str, torch.Tensor] = {}
    for _ in range(config.update_epochs):
        order = torch.randperm(config.num_envs, generator=learner.generator)
        for start in range(0, config.num_envs, envs_per_minibatch):
            minibatch = {k: v[order[start : start + envs_per_minibatch]].to(device) for k, v in batch.items()}
            with _autocast(device, config.bf16):
                logits, value = replay(agent, minibatch["obs"], minibatch["firsts"], minibatch["states"])
            steps = {k: minibatch[k].flatten(0, 1) for k in ("actions", "logprobs", "values", "advantages", "returns")}
            if config.normalize_advantages:
                adv = steps["advantages"]
                steps["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
            losses = _ppo_losses(logits.flatten(0, 1), value.flatten(0, 1), steps, config)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            for name, total in losses.items():
                sums[name] = sums.get(name, 0) + total.detach()
            nn.utils.clip_grad_norm_(agent.model.parameters(), config.max_grad_norm)
            optimizer.step()
    count = config.update_epochs * config.num_minibatches
    return {name: float(total) / count for name, total in sums.items() if name != "loss"}


def replay(
    agent: Agent, obs: torch.Tensor, firsts: torch.Tensor, states: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A recurrent agent's logits (N, T, A) and values (N, T) over N envs' sequences of T steps.

    ``obs`` (N, T, H, W, C) uint8 are run step by step from ``states`` (N, S), the state each env
    entered step 0 with; the state is reset to zeros at steps whose observation starts an episode
    (``firsts`` (N, T)), exactly as the rollout carried it. With the rollout's weights this gives
    the rollout's outputs again.
    """
    count, steps = firsts.shape
    x = agent.preprocess(obs.flatten(0, 1))
    model: Any = agent.model  # encode and recur, when it has them (agents/recurrent.py)
    split = hasattr(model, "encode") and hasattr(model, "recur")
    if split:  # the part before the memory once for the whole sequence, only the rest step by step
        x = model.encode(x)
    x = x.unflatten(0, (count, steps))
    state = states
    logits, values = [], []
    for t in range(steps):
        state = torch.where(firsts[:, t, None], 0.0, state)
        if split:
            step_logits, value, state = model.recur(x[:, t], state)
        else:
            out = agent.forward_preprocessed(x[:, t], state)
            if out.state is None:
                raise UserError("a recurrent agent's model must return its next state")
            step_logits, value, state = out.logits, out.value, out.state
        logits.append(step_logits)
        values.append(value.reshape(-1))
    return torch.stack(logits, dim=1), torch.stack(values, dim=1)


def _ppo_losses(
    logits: torch.Tensor, value: torch.Tensor, mb: dict[str, torch.Tensor], config: PPOConfig
) -> dict[str, torch.Tensor]:
    """The clipped surrogate objective and the statistics logged with it, as means over ``mb``,
    given the current policy's ``logits`` and ``value`` for its steps."""
    dist = Categorical(logits=logits.float())
    value = value.float()
    logratio = dist.log_prob(mb["actions"]) - mb["logprobs"]
    ratio = logratio.exp()

    advantages = mb["advantages"]
    clipped_ratio = ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
    policy_loss = torch.max(-advantages * ratio, -advantages * clipped_ratio).mean()

    value_error = (value - mb["returns"]) ** 2
    if config.clip_value_loss:  # penalise the worse of the moved and the clipped value
        moved = (value - mb["values"]).clamp(-config.clip_coef, config.clip_coef)
        value_error = torch.max(value_error, (mb["values"] + moved - mb["returns"]) ** 2)
    value_loss = 0.5 * value_error.mean()
    entropy = dist.entropy().mean()

    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()  # the low-variance estimator
        clip_fraction = ((ratio - 1).abs() > config.clip_coef).float().mean()
    return {
        "loss": policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
    }


@contextmanager
def _attention(model: nn.Module) -> Iterator[list[torch.Tensor] | None]:
    """The attention maps of the forward passes inside the block, for an attention model
    (:mod:`..agents.attention`); None for any other."""
    if attention_layer(model) is None:
        yield None
        return
    with capture_attention(model) as captured:
        yield captured


def _autocast(device: torch.device, bf16: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
