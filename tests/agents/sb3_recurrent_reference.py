"""Run by tests/agents/test_sb3_recurrent.py in its own process: the only place sb3-contrib is imported.

Trains sb3-contrib's RecurrentPPO (CnnLstmPolicy) briefly on ALE Breakout in three forms: the default
separate actor and critic LSTMs; one LSTM shared by the critic (``shared_lstm=True``); and an actor
LSTM with a linear critic and hidden layers after it (``net_arch``, ReLU). Saves their zips, then runs
each policy with its own state handling over a sequence of Breakout observations from two
environments, forcing episode starts (state resets) at some steps, and records the distribution's
logits, the value and the LSTM states after each step. Also saves the zips the importer refuses: an
MlpLstmPolicy (CartPole) and a two-layer LSTM.

    python tests/agents/sb3_recurrent_reference.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import ale_py
import gymnasium
import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

STEPS = 10
STARTS = {0: (0, 1), 4: (1,), 7: (0,)}
"""Steps at which episodes (re)start, by environment: every row starts at 0, then one row at a time."""
KINDS = {
    "separate": {"lstm_hidden_size": 32},
    "shared": {"lstm_hidden_size": 32, "shared_lstm": True, "enable_critic_lstm": False},
    "linear": {
        "lstm_hidden_size": 16,
        "enable_critic_lstm": False,
        "net_arch": {"pi": [16], "vf": [24, 8]},
        "activation_fn": torch.nn.ReLU,
    },
}


def record(model: RecurrentPPO, observations: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """What the policy computes step by step, resetting states where ``starts`` says."""
    policy = model.policy.eval()
    shape = policy.lstm_hidden_state_shape[0], observations.shape[1], policy.lstm_hidden_state_shape[2]
    zeros = (torch.zeros(shape), torch.zeros(shape))
    states = RNNStates(zeros, zeros)
    logits, values, following = [], [], []
    for frames, first in zip(observations, starts):
        with torch.no_grad():
            tensor, _ = policy.obs_to_tensor(frames)
            episode_starts = torch.as_tensor(first, dtype=torch.float32)
            distribution, _ = policy.get_distribution(tensor, states.pi, episode_starts)
            _, value, _, states = policy(tensor, states, episode_starts)
        logits.append(distribution.distribution.logits.numpy())
        values.append(value.numpy().reshape(-1))
        parts = [*states.pi] + ([*states.vf] if policy.lstm_critic is not None else [])
        following.append(torch.cat([part[0] for part in parts], dim=1).numpy())
    return {"logits": np.stack(logits), "values": np.stack(values), "states": np.stack(following)}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    gymnasium.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("ALE/Breakout-v5", n_envs=2, seed=0), n_stack=4)
    for name, kwargs in KINDS.items():
        model = RecurrentPPO("CnnLstmPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0, policy_kwargs=kwargs)
        model.learn(32).save(out / name)
    # Observations as our Atari env yields them: (N, 84, 84, 4) uint8, channels last.
    frames, rng, observations = env.reset(), np.random.default_rng(0), []
    for _ in range(STEPS):
        for _ in range(3):
            frames, *_ = env.step(rng.integers(0, 4, size=2))
        observations.append(frames)
    starts = np.zeros((STEPS, 2), bool)
    for step, rows in STARTS.items():
        starts[step, list(rows)] = True
    outputs: dict[str, np.ndarray] = {"observations": np.stack(observations), "starts": starts}
    for name in KINDS:
        model = RecurrentPPO.load(out / f"{name}.zip")
        outputs |= {f"{name}_{key}": value for key, value in record(model, outputs["observations"], starts).items()}
    RecurrentPPO("CnnLstmPolicy", env, n_steps=16, seed=0, policy_kwargs={"n_lstm_layers": 2}).save(out / "stacked")
    RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=16, seed=0).save(out / "mlp")
    np.savez(out / "reference.npz", **outputs)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
