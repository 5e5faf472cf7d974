"""A Stable-Baselines3 PPO agent on Breakout, trained here (or your own zip), explained by ``run``.

What it shows: SB3 zips are read as they are: ``rl_clarity.run`` takes the zip (never unpickling it:
the policy's tensors are read with ``torch.load(weights_only=True)`` and the network rebuilt as our
Nature CNN), with ``env=`` naming the game, since an SB3 zip records none. The agent is trained
the way our importer expects: ``CnnPolicy`` on SB3's Atari wrappers (``make_atari_env``: 84x84
grey, frame skip 4) with a 4-frame ``VecFrameStack``, the DeepMind preprocessing our ``ALE/...``
environments apply. ``attr_policy`` also explains every logit (``logit:FIRE``...) and action group.

Needs: ``pip install stable-baselines3`` (with ``ale-py``, a dependency of this package) to train;
explaining a zip needs no SB3 at all.

Time on 2 CPU cores: about 5 minutes at full size (50,000 training steps at about 215 steps/s, a
start and no more: rl-zoo trains 10 million; then 2 trajectories of 256 frames, every layer, in
about 1 minute); about 10 seconds with RLV_EXAMPLE_QUICK=1 (256 training steps, a tiny run).

    python examples/sb3_breakout.py                 # train, then explain
    python examples/sb3_breakout.py ppo-Breakout.zip    # explain your own zip (PPO, A2C or DQN CnnPolicy)
"""

from __future__ import annotations

import sys
from pathlib import Path

from _quick import QUICK, output_dir

from understanding_rl_vision import rl_clarity

out = output_dir("sb3-breakout")

if len(sys.argv) > 1:
    zip_path = Path(sys.argv[1])
else:  # train one: SB3 is needed only here
    import ale_py
    import gymnasium
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gymnasium.register_envs(ale_py)  # the ALE/... ids
    env = VecFrameStack(make_atari_env("ALE/Breakout-v5", n_envs=2 if QUICK else 8, seed=0), n_stack=4)
    if QUICK:
        model = PPO("CnnPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0).learn(256)
    else:  # rl-zoo's Atari settings, for far fewer steps
        model = PPO("CnnPolicy", env, n_steps=128, n_epochs=4, batch_size=256, learning_rate=2.5e-4, clip_range=0.1)
        model.learn(50_000)
    env.close()
    zip_path = out / "ppo-breakout.zip"
    model.save(zip_path)
    print(f"trained {zip_path}")

if QUICK:
    size = dict(num_envs=1, num_steps=12, obs_num_envs=2, num_obs=4, obs_every=4, layers=("conv3",))
    size |= dict(nmf_features=2, num_bookmarks=1)
else:
    size = dict(num_envs=2, num_steps=256, obs_num_envs=16, num_obs=64, obs_every=32)

result = rl_clarity.run(
    zip_path,
    out / "vision",
    env="ALE/Breakout-v5",  # an SB3 zip records no environment
    attr_policy=True,  # every logit and action group too
    overwrite=True,
    progress=not QUICK,
    **size,
)
print(f"interface: {result.path}")
