"""Run by tests/agents/test_sb3.py in its own process: the only place Stable-Baselines3 is imported.

Trains PPO, A2C and DQN (CnnPolicy) for a few hundred steps on ALE Breakout, saves their zips,
and records what SB3 itself computes on 16 Breakout observations: the distribution's logits and
the value (PPO, A2C), the Q-values (DQN). Also saves an MlpPolicy zip (CartPole) for the
"not a pixel policy" check.

    python tests/agents/sb3_reference.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import ale_py
import gymnasium
import numpy as np
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack


def main(out: Path) -> None:
    torch.set_num_threads(1)
    gymnasium.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("ALE/Breakout-v5", n_envs=2, seed=0), n_stack=4)
    models = {
        "ppo": PPO("CnnPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0).learn(256),
        "a2c": A2C("CnnPolicy", env, seed=0).learn(160),
        "dqn": DQN("CnnPolicy", env, buffer_size=500, learning_starts=64, train_freq=4, seed=0).learn(256),
    }
    # Observations as our Atari env yields them: (N, 84, 84, 4) uint8, channels last.
    obs, frames = [], env.reset()
    rng = np.random.default_rng(0)
    for _ in range(8):
        for _ in range(5):
            frames, *_ = env.step(rng.integers(0, 4, size=2))
        obs.append(frames)
    observations = np.concatenate(obs)
    outputs = {"observations": observations}
    for name, model in models.items():
        model.save(out / name)
        policy = model.policy.eval()
        with torch.no_grad():
            tensor, _ = policy.obs_to_tensor(observations)
            if name == "dqn":
                outputs["dqn_q"] = policy.q_net(tensor).numpy()
            else:
                outputs[f"{name}_logits"] = policy.get_distribution(tensor).distribution.logits.numpy()
                outputs[f"{name}_value"] = policy.predict_values(tensor).numpy().reshape(-1)
    PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0).learn(32).save(out / "mlp")
    np.savez(out / "reference.npz", **outputs)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
